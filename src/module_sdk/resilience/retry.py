"""The retry policy: capped exponential backoff with full jitter, bounded by a deadline.

It is the only retry layer (botocore's own retries are off). It retries only errors classified
as transient; a function error or a ``success: false`` answer is the function's reply and is
returned as-is.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Protocol

from module_sdk._models import ExecuteResponse
from module_sdk.errors import ErrorCode, InvocationError, PolicyRejection
from module_sdk.resilience.backoff import compute_delay
from module_sdk.resilience.clock import Clock
from module_sdk.resilience.pipeline import Handler, Invocation, InvocationObserver, RetryRecord

__all__ = ["RetryBudget", "RetryPolicy"]

logger = logging.getLogger("module_sdk.adapters.lambda_adapter")


class RetryBudget(Protocol):
    """Caps the extra load retries may add (see :mod:`module_sdk.resilience.budget`)."""

    def try_acquire(self, error: InvocationError) -> bool:
        """Take the cost of one retry; False when the budget is empty (do not retry)."""
        ...

    def record_success(self) -> None:
        """A call succeeded: refill a little."""
        ...


class RetryPolicy:
    """Retry transient failures: at most ``max_retries`` retries after the first attempt."""

    def __init__(
        self,
        *,
        max_retries: int,
        initial_delay: float,
        max_delay: float,
        retry_on_timeout: bool = True,
        clock: Clock,
        rng: random.Random,
        budget: RetryBudget | None = None,
        observers: Sequence[InvocationObserver] = (),
    ) -> None:
        self.max_retries = max_retries
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.retry_on_timeout = retry_on_timeout
        self.clock = clock
        self.rng = rng
        self.budget = budget
        self.observers = observers

    def should_retry(self, error: InvocationError) -> bool:
        """Whether this error is worth another attempt (ignoring counts and budgets)."""
        if not error.retryable:
            return False
        return not (error.error_code == ErrorCode.TIMEOUT and not self.retry_on_timeout)

    def _deadline_error(self, invocation: Invocation, cause: InvocationError | None) -> Exception:
        spent = self.clock.monotonic() - invocation.started
        text = f"total_timeout ran out after {spent:.2f}s and {invocation.attempts} attempt(s)"
        if cause is not None:
            text += f"; last error: {cause.message}"
        return PolicyRejection(text, error_code=ErrorCode.DEADLINE_EXCEEDED)

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """Run ``call_next`` until it succeeds, fails for good, or time runs out."""
        retry = 0
        while True:
            deadline = invocation.deadline
            if deadline is not None and deadline <= self.clock.monotonic():
                raise self._deadline_error(invocation, invocation.last_error)
            try:
                if deadline is None:
                    response = await call_next(invocation)
                else:
                    try:
                        async with self.clock.timeout_at(deadline):
                            response = await call_next(invocation)
                    except TimeoutError as exc:
                        raise self._deadline_error(invocation, invocation.last_error) from exc
            except InvocationError as error:
                invocation.last_error = error
                if not self.should_retry(error) or retry >= self.max_retries:
                    raise
                if self.budget is not None and not self.budget.try_acquire(error):
                    raise InvocationError(
                        f"{error.message} (not retried: the adapter's retry budget is empty)",
                        error_code=ErrorCode.RETRY_BUDGET_EXHAUSTED,
                        retryable=False,
                        status_code=error.status_code,
                        aws_code=error.aws_code,
                        reason=error.reason,
                    ) from error
                delay = compute_delay(
                    retry,
                    initial=self.initial_delay,
                    maximum=self.max_delay,
                    rng=self.rng,
                    retry_after=error.retry_after,
                )
                if (
                    invocation.deadline is not None
                    and self.clock.monotonic() + delay >= invocation.deadline
                ):
                    raise self._deadline_error(invocation, error) from error
                invocation.retries.append(
                    RetryRecord(invocation.attempts, error.reason, error.error_code.value, delay)
                )
                invocation.retried_error = error
                for observer in self.observers:
                    try:
                        observer.on_retry(invocation, error, delay)
                    except Exception:
                        logger.exception("observer %r failed in on_retry", observer)
                logger.warning(
                    "Lambda invocation failed (%s): %s. Retrying in %.2fs (attempt %d/%d, "
                    "session: %s)",
                    error.reason,
                    error.message.rstrip(". "),
                    delay,
                    invocation.attempts,
                    self.max_retries + 1,
                    invocation.session_id,
                )
                await self.clock.sleep(delay)
                retry += 1
            else:
                if self.budget is not None:
                    self.budget.record_success()
                return response
