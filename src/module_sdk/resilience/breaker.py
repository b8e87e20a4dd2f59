"""The circuit breaker: stop calling a function that keeps failing, then probe it.

::

    CLOSED --(failure rate >= threshold over the last `window_size` calls, once at least
    |         `minimum_calls` were seen; or `consecutive_failures` in a row)--> OPEN
    OPEN   --(`open_duration` seconds later)--> HALF_OPEN
    HALF_OPEN: at most `half_open_max_calls` trial calls at a time;
               a trial fails -> OPEN again; `half_open_max_calls` trials succeed -> CLOSED

While OPEN, a call is refused at once with ``error_code="circuit_open"`` and no network call.
One breaker exists per function (region, name, qualifier): every adapter of that function in
the process (or, with Redis state, in every process) shares it.

What counts as a failure is an ``error_code`` in ``failure_codes``: by default the outage kinds
of :mod:`module_sdk.outcomes` (throttling, timeouts, connection and service errors, an
exhausted deadline or retry budget).
The function's own errors (``function_error``) and business answers (``module_error``) are
answers, so they count as successes unless you add their codes. Refusals made before any
network call (bad request, rate limit) are not counted at all.

The same state machine runs in :class:`BreakerState` (in-process) and in the Redis Lua
scripts (:mod:`module_sdk.resilience.redis_state`); the tests run both through one suite.
Why hand-written: purgatory (async, Redis-shared) counts consecutive failures only, with no
failure-rate window and no injectable clock; aiobreaker is unmaintained.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from module_sdk._validate import integer, number
from module_sdk.aws_lambda.redact import without_userinfo
from module_sdk.errors import ConfigurationError, ErrorCode, ModuleSDKError, PolicyRejection
from module_sdk.outcomes import NOT_REACHED_CODES, OUTAGE_CODES
from module_sdk.resilience.clock import SystemClock

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.aws_lambda.naming import FunctionTarget
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.pipeline import Handler, Invocation

__all__ = [
    "DEFAULT_FAILURE_CODES",
    "BreakerState",
    "BreakerStore",
    "CircuitBreakerConfig",
    "CircuitBreakerPolicy",
    "CircuitState",
    "MemoryBreakerStore",
    "Outcome",
    "Permit",
    "breaker_key",
    "process_breakers",
]

logger = logging.getLogger(__name__)


class CircuitState(StrEnum):
    """The breaker's states (the values appear in ``get_health_status()["circuit_state"]``)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    """How one call is counted."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


# Enum attribute lookups cost a descriptor call each on Python 3.11; the hot paths use these.
_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
_SUCCESS, _FAILURE, _IGNORED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.IGNORED

DEFAULT_FAILURE_CODES: frozenset[str] = OUTAGE_CODES
"""Error codes that count as failures unless ``failure_codes`` says otherwise (the outage
column of :mod:`module_sdk.outcomes`)."""
_KNOWN_CODES = frozenset(code.value for code in ErrorCode)


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """Circuit-breaker settings for ``LambdaAdapter(circuit_breaker=...)``.

    Args:
        failure_rate_threshold: open when this share (0-1] of the last ``window_size`` calls
            failed, once at least ``minimum_calls`` were made.
        window_size: how many recent calls the failure rate is computed over.
        minimum_calls: calls needed in the window before the rate is judged.
        consecutive_failures: also open after this many failures in a row (None: rate only).
        open_duration: seconds to stay open before trial calls are let through.
        half_open_max_calls: trial calls allowed at a time; this many successes close it.
        failure_codes: the ``error_code`` values that count as failures (add
            ``"function_error"`` or ``"module_error"`` to trip on the function's answers).
    """

    failure_rate_threshold: float = 0.5
    window_size: int = 20
    minimum_calls: int = 10
    consecutive_failures: int | None = 5
    open_duration: float = 30.0
    half_open_max_calls: int = 1
    failure_codes: frozenset[str] = field(default=DEFAULT_FAILURE_CODES)

    def __post_init__(self) -> None:
        try:
            number("rate", self.failure_rate_threshold, maximum=1.0)
        except ConfigurationError:
            raise ConfigurationError(
                f"CircuitBreakerConfig(failure_rate_threshold={self.failure_rate_threshold!r}) "
                "is invalid: use a number in (0, 1], such as 0.5 for 50 %"
            ) from None
        for name in ("window_size", "minimum_calls", "half_open_max_calls"):
            integer(name, getattr(self, name), owner="CircuitBreakerConfig")
        if self.consecutive_failures is not None:
            integer("consecutive_failures", self.consecutive_failures, owner="CircuitBreakerConfig")
        if self.minimum_calls > self.window_size:
            raise ConfigurationError(
                f"CircuitBreakerConfig(minimum_calls={self.minimum_calls}) is larger than "
                f"window_size={self.window_size}: the rate could never be judged"
            )
        number(
            "open_duration",
            self.open_duration,
            owner="CircuitBreakerConfig",
            unit="a finite number of seconds",
        )
        codes: object = self.failure_codes
        if isinstance(codes, str) or not isinstance(codes, Collection):
            raise ConfigurationError(
                "CircuitBreakerConfig(failure_codes=...) must be a set of error codes"
            )
        unknown = sorted(str(c) for c in codes if c not in _KNOWN_CODES)
        if unknown:
            raise ConfigurationError(
                f"CircuitBreakerConfig(failure_codes=...) has unknown codes {unknown}: "
                f"use values of module_sdk.ErrorCode ({', '.join(sorted(_KNOWN_CODES))})"
            )
        object.__setattr__(self, "failure_codes", frozenset(str(c) for c in codes))

    def classify(self, error_code: str | None, attempts: int) -> Outcome:
        """Count a finished call: success, failure, or not at all."""
        if error_code is None:
            return _SUCCESS
        if error_code in NOT_REACHED_CODES:
            return _IGNORED
        if error_code in self.failure_codes:
            # The deadline ran out before anything was sent: says nothing of the function.
            if attempts == 0:
                return _IGNORED
            return _FAILURE
        return _SUCCESS


@dataclass(frozen=True, slots=True)
class Permit:
    """The breaker's answer before a call."""

    allowed: bool
    state: CircuitState
    trial: bool = False
    """The call is a half-open trial (its result decides the state)."""
    retry_after: float = 0.0
    """When refused: seconds until a trial may be let through."""


_CLOSED_PERMIT = Permit(True, _CLOSED)


class BreakerState:
    """One function's breaker in this process (the reference state machine)."""

    __slots__ = (
        "consecutive",
        "failures",
        "in_flight",
        "last_permit",
        "opened_at",
        "state",
        "trial_successes",
        "window",
    )

    def __init__(self) -> None:
        self.window: deque[bool] = deque()
        self.clear()

    def clear(self) -> None:
        """Back to closed with an empty window."""
        self.state = _CLOSED
        self.window.clear()
        self.failures = 0
        self.consecutive = 0
        self.opened_at = 0.0
        self.in_flight = 0
        self.trial_successes = 0
        self.last_permit = 0.0

    def _open(self, now: float) -> None:
        self.state = _OPEN
        self.opened_at = now
        self.in_flight = 0
        self.trial_successes = 0
        self._reset_window()

    def _reset_window(self) -> None:
        self.window.clear()
        self.failures = 0
        self.consecutive = 0

    def allow(self, config: CircuitBreakerConfig, now: float) -> Permit:
        """May a call go now? (A half-open trial takes one of the trial slots.)"""
        if self.state is _CLOSED:
            return _CLOSED_PERMIT
        if self.state is _OPEN:
            reopen_at = self.opened_at + config.open_duration
            if now < reopen_at:
                return Permit(False, _OPEN, retry_after=reopen_at - now)
            self.state = _HALF_OPEN
            self.in_flight = 0
            self.trial_successes = 0
        # HALF_OPEN. A trial whose result never came back (a crashed process) frees its slot
        # after open_duration, so the breaker cannot stay stuck half-open.
        if self.in_flight and now - self.last_permit >= config.open_duration:
            self.in_flight = 0
        if self.in_flight < config.half_open_max_calls:
            self.in_flight += 1
            self.last_permit = now
            return Permit(True, _HALF_OPEN, trial=True)
        retry_after = max(0.0, self.last_permit + config.open_duration - now)
        return Permit(False, _HALF_OPEN, retry_after=retry_after)

    def record(
        self, config: CircuitBreakerConfig, now: float, outcome: Outcome, trial: bool
    ) -> CircuitState:
        """Count a finished call; return the state after it (``now`` stamps an opening)."""
        if trial:
            if self.state is not _HALF_OPEN:
                return self.state
            self.in_flight = max(0, self.in_flight - 1)
            if outcome is _FAILURE:
                self._open(now)
            elif outcome is _SUCCESS:
                self.trial_successes += 1
                if self.trial_successes >= config.half_open_max_calls:
                    self.state = _CLOSED
                    self.in_flight = 0
                    self._reset_window()
            return self.state
        if self.state is not _CLOSED or outcome is _IGNORED:
            return self.state  # a call let through before the breaker opened: too late
        failed = outcome is _FAILURE
        window = self.window
        if not failed and not self.failures and len(window) >= config.window_size:
            # A healthy window: one more success changes nothing (no failure in the last
            # window_size calls also means no failure in a row).
            return _CLOSED
        window.append(failed)
        self.failures += failed
        while len(window) > config.window_size:
            self.failures -= window.popleft()
        self.consecutive = self.consecutive + 1 if failed else 0
        if failed and (
            (
                config.consecutive_failures is not None
                and self.consecutive >= config.consecutive_failures
            )
            or (
                len(window) >= config.minimum_calls
                and self.failures >= config.failure_rate_threshold * len(window)
            )
        ):
            self._open(now)
        return self.state


class BreakerStore(Protocol):
    """Where breaker state lives (this process, or Redis)."""

    async def allow(self, key: str, config: CircuitBreakerConfig, now: float) -> Permit:
        """Ask before a call."""
        ...

    async def record(
        self, key: str, config: CircuitBreakerConfig, now: float, outcome: Outcome, trial: bool
    ) -> CircuitState:
        """Report a finished call."""
        ...

    async def state(self, key: str) -> CircuitState:
        """The current state (for inspection)."""
        ...

    def peek(self, key: str) -> CircuitState | None:
        """The current state if known without I/O (in process), else None."""
        ...


class MemoryBreakerStore:
    """The process-wide registry of in-process breakers, one per function key."""

    def __init__(self) -> None:
        self._breakers: dict[str, BreakerState] = {}

    def get(self, key: str) -> BreakerState:
        """The breaker for ``key`` (created closed on first use)."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = BreakerState()
        return breaker

    def reset(self, key: str | None = None) -> None:
        """Close one breaker (or all) and empty its window, in place for every adapter."""
        for name, breaker in self._breakers.items():
            if key is None or name == key:
                breaker.clear()

    def clear(self) -> None:
        """Close every breaker in place and forget them all (a fresh registry, for tests)."""
        self.reset()
        self._breakers.clear()

    async def allow(self, key: str, config: CircuitBreakerConfig, now: float) -> Permit:
        """Ask before a call."""
        return self.get(key).allow(config, now)

    async def record(
        self, key: str, config: CircuitBreakerConfig, now: float, outcome: Outcome, trial: bool
    ) -> CircuitState:
        """Report a finished call."""
        return self.get(key).record(config, now, outcome, trial)

    async def state(self, key: str) -> CircuitState:
        """The current state."""
        return self.get(key).state

    def peek(self, key: str) -> CircuitState:
        """The current state, at once (for health reports)."""
        return self.get(key).state


PROCESS_BREAKERS = MemoryBreakerStore()
"""The in-process breaker registry shared by every adapter on the real clock without a
``state=`` backend."""

_TIMELINES: weakref.WeakKeyDictionary[object, MemoryBreakerStore] = weakref.WeakKeyDictionary()


def process_breakers(clock: Clock) -> MemoryBreakerStore:
    """The registry for ``clock``'s timeline.

    Every :class:`SystemClock` reads the same monotonic time, so their adapters share
    :data:`PROCESS_BREAKERS`. Any other clock (a test's ``FakeClock``) is a timeline of its
    own: a breaker opened at fake time 1000 must never be judged against the real clock.
    """
    if isinstance(clock, SystemClock):
        return PROCESS_BREAKERS
    store = _TIMELINES.get(clock)
    if store is None:
        store = _TIMELINES[clock] = MemoryBreakerStore()
    return store


def breaker_key(
    target: FunctionTarget,
    region: str,
    endpoint: str | None = None,
    identity: str | None = None,
) -> str:
    """One breaker per function version, in one account, at one endpoint.

    ``endpoint|account|region:function:qualifier``: ``endpoint`` is the Lambda API endpoint
    (``aws`` for AWS's own; any ``user:password@`` in it is dropped), ``account`` the account
    of an ARN or else ``identity`` (which credentials call: a digest, never a key or secret;
    ``default`` for the default credential chain). A dead test endpoint never opens the
    breaker of the same function name on AWS, nor one account's the other's.
    """
    where = without_userinfo(endpoint.rstrip("/")) if endpoint else "aws"
    account = _arn_account(target.function_name) or identity or "default"
    return f"{where}|{account}|{region}:{target.function_name}:{target.qualifier or '$LATEST'}"


def _arn_account(function_name: str) -> str | None:
    """The account of ``arn:aws:lambda:REGION:ACCOUNT:function:NAME`` or
    ``ACCOUNT:function:NAME``, else None."""
    fields = function_name.split(":")
    if fields[0] == "arn" and len(fields) >= 5:
        return fields[4] or None
    if len(fields) >= 3 and fields[1] == "function":
        return fields[0]
    return None


class CircuitBreakerPolicy:
    """The pipeline step: refuse with ``circuit_open`` or let the call through and count it.

    Args:
        config: the thresholds and the failure codes.
        key: the breaker's key in ``store`` (see :func:`breaker_key`).
        store: where the state lives (:func:`process_breakers`' registry or a shared store).
        now: the time given to the store (it must mean the same to every user of the store).
    """

    def __init__(
        self,
        config: CircuitBreakerConfig,
        *,
        key: str,
        store: BreakerStore,
        now: Callable[[], float],
    ) -> None:
        self.config = config
        self.key = key
        self.store = store
        self._now = now
        self._last_seen = _CLOSED

    @property
    def state(self) -> CircuitState:
        """The current state if the store knows it at once (in process), else the state this
        process last saw."""
        current = self.store.peek(self.key)
        return self._last_seen if current is None else current

    def state_name(self) -> str:
        """:attr:`state` as a plain string (``"closed"``, ``"open"``, ``"half_open"``)."""
        return self.state.value

    def _refuse(self, permit: Permit) -> PolicyRejection:
        return PolicyRejection(
            f"circuit breaker for {self.key!r} is {permit.state.value}: not calling the "
            f"function; next trial call in {permit.retry_after:.1f}s",
            error_code=ErrorCode.CIRCUIT_OPEN,
            retry_after=permit.retry_after,
        )

    def outcome_of(self, response: ExecuteResponse, invocation: Invocation) -> Outcome:
        """How a finished call's response is counted."""
        code = response.error_code
        return _SUCCESS if code is None else self.config.classify(code, invocation.attempts)

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """Refuse while open; otherwise call through and record the outcome."""
        config = self.config
        permit = await self.store.allow(self.key, config, self._now())
        self._last_seen = permit.state
        if not permit.allowed:
            raise self._refuse(permit)
        outcome = _IGNORED
        try:
            response = await call_next(invocation)
            outcome = self.outcome_of(response, invocation)
            return response
        except ModuleSDKError as exc:
            outcome = config.classify(exc.error_code.value, invocation.attempts)
            raise
        finally:
            # Cancellation and unexpected errors stay IGNORED (but free a trial slot).
            if outcome is not _IGNORED or permit.trial:
                before = self._last_seen
                try:
                    self._last_seen = await self.store.record(
                        self.key, config, self._now(), outcome, permit.trial
                    )
                except Exception:
                    logger.warning("circuit breaker %r: recording the outcome failed", self.key)
                else:
                    if self._last_seen is not before:
                        self._log_change(before, self._last_seen)

    def _log_change(self, before: CircuitState, after: CircuitState) -> None:
        log = logger.warning if after is _OPEN else logger.info
        log("circuit breaker %r: %s -> %s", self.key, before.value, after.value)
