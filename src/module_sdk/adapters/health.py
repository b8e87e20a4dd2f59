"""The adapter's health tracker: the seed's seven keys, latency percentiles, last error,
throttles.

:class:`HealthWindow` is an :class:`~module_sdk.resilience.pipeline.InvocationObserver` that
every :class:`~module_sdk.adapters.LambdaAdapter` carries. It decides how each finished call
counts from the call itself and the outcome table (:mod:`module_sdk.outcomes`), and records
it in the adapter's :class:`~module_sdk.adapters.base_adapter.HealthStatus` (``adapter.health``).
It costs one ``deque.append`` and a few attribute writes per call; percentiles are computed
only when someone asks (``adapter.get_health_status()``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from module_sdk._health import HealthStatus
from module_sdk._validate import integer, number
from module_sdk.errors import ErrorCode
from module_sdk.outcomes import counts_for_health, is_error

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.errors import InvocationError
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.pipeline import Invocation

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_WINDOW", "HealthWindow", "percentile"]

DEFAULT_WINDOW = 1000
"""Calls kept for the latency percentiles."""
DEFAULT_MAX_AGE = 300.0
"""Seconds after which a call no longer counts towards the percentiles."""

_THROTTLED = ErrorCode.THROTTLED.value


def percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of an ascending list, or None."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


class HealthWindow:
    """Latency over a sliding window, the last error, and throttle and retry counts.

    Args:
        clock: the adapter's clock (monotonic time ages samples, wall time stamps errors).
        window: at most this many recent calls feed the percentiles.
        max_age: calls older than this many seconds are left out of the percentiles.
        circuit_state: a callable returning the breaker's state name (``"closed"``,
            ``"open"``, ``"half_open"``...), or None when there is no breaker.
        status: the seed's health counters to record each call in (the adapter passes its
            ``health``); None records nothing there.

    Latency is the duration a caller saw for each call that entered the pipeline (including
    retries and backoff sleeps, and refusals by a policy such as an open breaker). A business
    answer (``module_error``) is not an error here, as in the seed's health. ``status`` counts
    only calls that say something about the path to the function: not cache hits, not
    refusals made before any call, not cancelled calls.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        window: int = DEFAULT_WINDOW,
        max_age: float = DEFAULT_MAX_AGE,
        circuit_state: Callable[[], str] | None = None,
        status: HealthStatus | None = None,
    ) -> None:
        integer("window", window)
        self._clock = clock
        self.max_age = number("max_age", max_age, unit="a finite number of seconds")
        self.circuit_state = circuit_state
        self.status = status
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self.in_flight = 0
        self.throttle_count = 0
        self.retry_count = 0
        self.last_error: str | None = None
        self.last_error_code: str | None = None
        self.last_error_at: datetime | None = None

    # -- InvocationObserver ---------------------------------------------------------------

    def on_start(self, invocation: Invocation) -> None:
        """Count the call in flight."""
        self.in_flight += 1

    def on_attempt(self, invocation: Invocation) -> None:
        """Nothing to do per attempt."""

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Count the retry (and the throttle behind it)."""
        self.retry_count += 1
        if error.error_code == ErrorCode.THROTTLED:
            self.throttle_count += 1

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Record the latency, the outcome and, for a failure, the error."""
        self.in_flight = max(0, self.in_flight - 1)
        self._samples.append((self._clock.monotonic(), duration))
        final = invocation.final_error
        if final is not None and final.error_code == ErrorCode.THROTTLED:
            self.throttle_count += 1
        code = response.error_code
        failed = not response.success and (code is None or is_error(code))
        if failed:
            self.last_error = response.error
            self.last_error_code = code
            self.last_error_at = self._clock.utcnow()
        status = self.status
        if status is None or invocation.cache_hit or not counts_for_health(code):
            return  # a cached reply or a refusal says nothing about the path to the function
        if failed:
            status.record_failure(self._clock.utcnow())
        else:
            status.record_success(self._clock.utcnow())

    # -- reading ------------------------------------------------------------------------------

    def latencies(self) -> list[float]:
        """The durations in the window (oldest first), dropping those older than max_age."""
        cutoff = self._clock.monotonic() - self.max_age
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()
        return [duration for _, duration in self._samples]

    def get_status(self) -> dict[str, Any]:
        """The extra health keys (see the module docs for their meaning)."""
        ordered = sorted(self.latencies())
        state: str | None = None
        if self.circuit_state is not None:
            try:
                state = str(self.circuit_state())
            except Exception:
                state = "unknown"
        return {
            "latency_p50_seconds": percentile(ordered, 50),
            "latency_p95_seconds": percentile(ordered, 95),
            "latency_p99_seconds": percentile(ordered, 99),
            "latency_samples": len(ordered),
            "last_error": self.last_error,
            "last_error_code": self.last_error_code,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "throttle_count": self.throttle_count,
            "retry_count": self.retry_count,
            "in_flight": self.in_flight,
            "circuit_state": state,
        }
