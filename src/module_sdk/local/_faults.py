"""Fault injection: deterministic (seeded) latency, throttles, 5xx, drops and slow replies."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from module_sdk.errors import ConfigurationError

__all__ = ["FaultDecision", "FaultPlan", "Faults"]

FaultKind = Literal["latency", "throttle", "error", "drop", "slow"]


def _rate(name: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0.0 <= value <= 1.0:  # type: ignore[arg-type,operator]
        raise ConfigurationError(f"Faults.{name}={value!r} is invalid: use a rate from 0.0 to 1.0")
    return float(value)  # type: ignore[arg-type]


def _seconds(name: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        raise ConfigurationError(f"Faults.{name}={value!r} is invalid: use seconds >= 0")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Faults:
    """What to inject into invocations (every rate is a probability per call, 0.0-1.0).

    Attributes:
        latency: extra seconds before the function runs (added to every call).
        latency_jitter: up to this many more seconds, drawn uniformly per call.
        throttle_rate: answer 429 TooManyRequestsException (Reason
            ``FunctionInvocationRateLimitExceeded``) with ``Retry-After: retry_after``.
        error_rate: answer 500 ServiceException.
        drop_rate: close the connection without any answer.
        drop_after_run: drop only after the function has run (the caller retries a call
            that already happened: the duplicate-invocation case).
        slow_rate: run the function, then hold the reply ``slow_seconds`` (past a client's
            read timeout, the caller gives up while the function has already run).
        slow_seconds: how long a slow reply is held.
        retry_after: the ``Retry-After`` seconds of injected throttles.
    """

    latency: float = 0.0
    latency_jitter: float = 0.0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_run: bool = False
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "error_rate", "drop_rate", "slow_rate"):
            _rate(name, getattr(self, name))
        for name in ("latency", "latency_jitter", "slow_seconds", "retry_after"):
            _seconds(name, getattr(self, name))

    @property
    def active(self) -> bool:
        """Whether anything at all is injected."""
        return bool(
            self.latency
            or self.latency_jitter
            or self.throttle_rate
            or self.error_rate
            or self.drop_rate
            or self.slow_rate
        )


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What happens to one call (decided before it runs)."""

    delay: float = 0.0
    throttle: bool = False
    error: bool = False
    drop: bool = False
    drop_after_run: bool = False
    slow: float = 0.0
    retry_after: float = 1.0


_NONE = FaultDecision()


class FaultPlan:
    """Global and per-function :class:`Faults`, drawn from per-function seeded generators.

    Every call draws the same number of values from its function's own generator, so a
    given seed and call order per function always gives the same faults, whatever other
    functions do meanwhile.
    """

    def __init__(
        self,
        default: Faults | None = None,
        functions: Mapping[str, Faults] | None = None,
        *,
        seed: int | str | None = None,
    ) -> None:
        self.default = default or Faults()
        self.functions: dict[str, Faults] = dict(functions or {})
        self.seed = seed
        self._rngs: dict[str, random.Random] = {}
        self._scripts: dict[str, list[FaultDecision]] = {}

    def script(self, function: str, *decisions: FaultDecision) -> None:
        """Queue exact decisions for the next calls to ``function``, in order.

        They are used before any random draw (``FaultDecision()`` is a clean call), so a
        test can say "throttle the first call, answer the second" without a seed search.
        """
        self._scripts.setdefault(function, []).extend(decisions)

    def set(self, faults: Faults | None, function: str | None = None) -> None:
        """Replace the global faults (``function=None``) or one function's (None removes)."""
        if function is None:
            self.default = faults or Faults()
        elif faults is None:
            self.functions.pop(function, None)
        else:
            self.functions[function] = faults

    def faults_for(self, function: str) -> Faults:
        """The faults that apply to ``function``."""
        return self.functions.get(function, self.default)

    def _rng(self, function: str) -> random.Random:
        rng = self._rngs.get(function)
        if rng is None:
            rng = random.Random(None if self.seed is None else f"{self.seed}:{function}")
            self._rngs[function] = rng
        return rng

    def decide(self, function: str) -> FaultDecision:
        """Draw the faults of one call to ``function`` (a scripted decision first)."""
        scripted = self._scripts.get(function)
        if scripted:
            return scripted.pop(0)
        faults = self.faults_for(function)
        if not faults.active:
            return _NONE
        rng = self._rng(function)
        draws = [rng.random() for _ in range(5)]
        delay = faults.latency + faults.latency_jitter * draws[4]
        drop = draws[0] < faults.drop_rate
        return FaultDecision(
            delay=delay,
            drop=drop and not faults.drop_after_run,
            drop_after_run=drop and faults.drop_after_run,
            throttle=not drop and draws[1] < faults.throttle_rate,
            error=not drop and draws[2] < faults.error_rate,
            slow=faults.slow_seconds if draws[3] < faults.slow_rate else 0.0,
            retry_after=faults.retry_after,
        )
