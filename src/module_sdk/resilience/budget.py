"""The retry budget: botocore's standard-mode retry quota, for ``LambdaAdapter(retry_budget=...)``.

A bucket of ``capacity`` tokens (500). Each retry takes ``retry_cost`` (5), or ``timeout_cost``
(10) after a timeout; each successful call gives back ``success_refund`` (1) up to the
capacity. When a retry cannot be paid for, it is not made and the call ends with
``error_code="retry_budget_exhausted"``. So while a function is healthy retries are free, and
when it fails for everyone the retries stop after ``capacity / retry_cost`` of them (100) until
successes refill the bucket: retries add at most about ``success_refund / retry_cost`` (20 %)
extra load in the long run.

The budget counts calls, not time, so it needs no clock. Share one instance between several
adapters to give them one budget.
"""

from __future__ import annotations

import threading

from module_sdk._validate import number
from module_sdk.errors import ErrorCode, InvocationError

__all__ = ["StandardRetryBudget"]


def _amount(name: str, value: object) -> float:
    return number(name, value, owner="StandardRetryBudget", strict_minimum=False)


class StandardRetryBudget:
    """botocore's retry quota (capacity 500, retry 5, timeout 10, success refund 1).

    Implements :class:`module_sdk.resilience.retry.RetryBudget`. Thread-safe.
    """

    def __init__(
        self,
        capacity: float = 500,
        *,
        retry_cost: float = 5,
        timeout_cost: float = 10,
        success_refund: float = 1,
    ) -> None:
        self.capacity = number("capacity", capacity, owner="StandardRetryBudget")
        self.retry_cost = _amount("retry_cost", retry_cost)
        self.timeout_cost = _amount("timeout_cost", timeout_cost)
        self.success_refund = _amount("success_refund", success_refund)
        self._available = self.capacity
        self._lock = threading.Lock()
        self.refused = 0
        """Retries refused since creation."""

    def __repr__(self) -> str:
        return f"<StandardRetryBudget {self._available:g}/{self.capacity:g}>"

    @property
    def available(self) -> float:
        """Tokens left."""
        return self._available

    def cost(self, error: InvocationError) -> float:
        """What a retry after ``error`` costs."""
        return self.timeout_cost if error.error_code == ErrorCode.TIMEOUT else self.retry_cost

    def try_acquire(self, error: InvocationError) -> bool:
        """Pay for one retry; False (and nothing taken) when the budget cannot cover it."""
        cost = self.cost(error)
        with self._lock:
            if cost > self._available:
                self.refused += 1
                return False
            self._available -= cost
            return True

    def record_success(self) -> None:
        """A call succeeded: give back ``success_refund`` (never above the capacity)."""
        if self._available >= self.capacity:
            return  # the common case: full, nothing to do and no lock taken
        with self._lock:
            self._available = min(self.capacity, self._available + self.success_refund)
