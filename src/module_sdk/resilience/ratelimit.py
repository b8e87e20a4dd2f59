"""Rate limiting: token buckets per adapter, and optionally per user and per community.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each call
takes one token from every bucket that applies (adapter, user, community) or from none.
When a bucket is empty the call is refused at once (``mode="reject"``,
``error_code="rate_limited"``) or waits for its token (``mode="wait"``), but never longer than
``max_wait`` nor past the request's ``total_timeout`` deadline: a wait that would not fit is
refused at once instead of being started.

Waiting is a *reservation*: the token is taken now (the bucket may go negative) and the
caller sleeps until it would have refilled, so waiters are served in arrival order and the
rate holds exactly. The same arithmetic runs in :func:`take` (in-process) and in the Redis
Lua script (:mod:`module_sdk.resilience.redis_state`), so both behave alike.

Why not aiolimiter: it is a leaky bucket on the event loop's clock in one process; it cannot
refuse with a retry-after, bound a wait by a deadline, or share its level between processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from cachetools import LRUCache

from module_sdk.errors import ConfigurationError, ErrorCode, PolicyRejection

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.pipeline import Handler, Invocation
    from module_sdk.resilience.state import StateBackend

__all__ = [
    "BucketSpec",
    "BucketStore",
    "Grant",
    "Limit",
    "MemoryBucketStore",
    "RateLimit",
    "RateLimitPolicy",
    "take",
]

logger = logging.getLogger(__name__)

RateLimitMode = Literal["reject", "wait"]


def _number(owner: str, name: str, value: object, *, minimum: float, strict: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > minimum if strict else value >= minimum):  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    raise ConfigurationError(f"{owner}({name}={value!r}) is invalid: use a finite number {bound}")


@dataclass(frozen=True, slots=True)
class Limit:
    """One token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    ``burst`` defaults to ``max(1, rate)`` (one second's worth, and at least one call).
    """

    rate: float
    burst: float | None = None

    def __post_init__(self) -> None:
        rate = _number("Limit", "rate", self.rate, minimum=0, strict=True)
        object.__setattr__(self, "rate", rate)
        burst = max(1.0, rate) if self.burst is None else self.burst
        object.__setattr__(self, "burst", _number("Limit", "burst", burst, minimum=1, strict=False))

    @property
    def capacity(self) -> float:
        """``burst`` as a float (always set after construction)."""
        assert self.burst is not None
        return self.burst


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Rate-limit settings for ``LambdaAdapter(rate_limit=...)``.

    Args:
        rate / burst: the adapter-wide bucket (tokens per second, bucket size); ``rate=None``
            means no adapter-wide limit (only the per-user / per-community ones).
        mode: ``"reject"`` refuses at once when a bucket is empty; ``"wait"`` waits for the
            token, at most ``max_wait`` seconds and never past the request's deadline.
        max_wait: the longest wait in ``"wait"`` mode (None: only the deadline bounds it).
        per_user / per_community: extra buckets keyed by ``request.user_id`` /
            ``request.community_id``.
        max_keys: how many user (and community) buckets are kept in memory; the least
            recently used are forgotten first (Redis expires idle buckets instead).
        name: the bucket name in shared state; adapters (in any process) with the same name
            share one budget. Defaults to ``<module_name>:<function>``.
    """

    rate: float | None = None
    burst: float | None = None
    mode: RateLimitMode = "reject"
    max_wait: float | None = 5.0
    per_user: Limit | None = None
    per_community: Limit | None = None
    max_keys: int = 10_000
    name: str | None = None

    def __post_init__(self) -> None:
        if self.rate is None:
            if self.burst is not None:
                raise ConfigurationError("RateLimit(burst=...) needs rate=... as well")
            if self.per_user is None and self.per_community is None:
                raise ConfigurationError(
                    "RateLimit() limits nothing: give rate=..., per_user=Limit(...) or "
                    "per_community=Limit(...)"
                )
        else:
            Limit(self.rate, self.burst)  # validates
        if self.mode not in ("reject", "wait"):
            raise ConfigurationError(
                f"RateLimit(mode={self.mode!r}) is invalid: use 'reject' or 'wait'"
            )
        if self.max_wait is not None:
            _number("RateLimit", "max_wait", self.max_wait, minimum=0, strict=False)
        for name in ("per_user", "per_community"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Limit):
                raise ConfigurationError(
                    f"RateLimit({name}={value!r}) is invalid: use Limit(rate, burst) or None"
                )
        if (
            not isinstance(self.max_keys, int)
            or isinstance(self.max_keys, bool)
            or self.max_keys < 1
        ):
            raise ConfigurationError(
                f"RateLimit(max_keys={self.max_keys!r}) is invalid: use an integer >= 1"
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigurationError("RateLimit(name=...) must be a non-empty string or None")

    @property
    def adapter_limit(self) -> Limit | None:
        """The adapter-wide bucket, or None."""
        return None if self.rate is None else Limit(self.rate, self.burst)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One bucket to take a token from: its key, its limit, and whether it is one of many.

    ``keyed`` buckets (per user, per community) are kept in a bounded LRU in memory.
    """

    key: str
    limit: Limit
    keyed: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer of a bucket store.

    ``granted`` with ``wait == 0``: go now. ``granted`` with ``wait > 0``: the token is
    reserved, sleep ``wait`` seconds first. Not ``granted``: refused; a token would be
    there in ``wait`` seconds.
    """

    granted: bool
    wait: float = 0.0


def take(tokens: float, updated: float, now: float, limit: Limit) -> tuple[float, float]:
    """Refill one bucket to ``now``; return ``(tokens, seconds until one token is there)``."""
    elapsed = now - updated
    if elapsed > 0:
        tokens = min(limit.capacity, tokens + elapsed * limit.rate)
    if tokens >= 1.0:
        return tokens, 0.0
    return tokens, (1.0 - tokens) / limit.rate


class BucketStore(Protocol):
    """Where bucket levels live (this process, or Redis)."""

    async def acquire(self, buckets: Sequence[BucketSpec], now: float, max_wait: float) -> Grant:
        """Atomically take one token from every bucket, reserving up to ``max_wait`` ahead."""
        ...


class MemoryBucketStore:
    """Bucket levels in this process: the named buckets kept, keyed ones in bounded LRUs."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._fixed: dict[str, list[float]] = {}
        self._keyed: LRUCache[str, list[float]] = LRUCache(maxsize=max_keys)

    def __len__(self) -> int:
        return len(self._fixed) + len(self._keyed)

    def _slot(self, spec: BucketSpec, now: float) -> list[float]:
        table = self._keyed if spec.keyed else self._fixed
        slot = table.get(spec.key)
        if slot is None:
            slot = [spec.limit.capacity, now]
            table[spec.key] = slot
        return slot

    async def acquire(self, buckets: Sequence[BucketSpec], now: float, max_wait: float) -> Grant:
        """Take one token from every bucket, or from none (a plain function, no await)."""
        return self.acquire_now(buckets, now, max_wait)

    def acquire_now(self, buckets: Sequence[BucketSpec], now: float, max_wait: float) -> Grant:
        """:meth:`acquire` without the coroutine (the policy's fast path)."""
        slots = []
        wait = 0.0
        for spec in buckets:
            slot = self._slot(spec, now)
            tokens, need = take(slot[0], slot[1], now, spec.limit)
            slot[0] = tokens
            slot[1] = max(slot[1], now)
            slots.append(slot)
            wait = max(wait, need)
        if wait > max_wait:
            return Grant(False, wait)
        for slot in slots:
            slot[0] -= 1.0
        return Grant(True, wait)


class RateLimitPolicy:
    """The pipeline step: take tokens, then wait (bounded) or refuse with ``rate_limited``."""

    def __init__(
        self,
        config: RateLimit,
        *,
        name: str,
        clock: Clock,
        state: StateBackend | None = None,
    ) -> None:
        self.config = config
        self.name = config.name or name
        self.clock = clock
        self._state = state
        self._memory: MemoryBucketStore | None = None
        if state is None:
            self._memory = MemoryBucketStore(config.max_keys)
            self._store: BucketStore = self._memory
        else:
            self._store = state.bucket_store()
        adapter_limit = config.adapter_limit
        # "{name}" is a Redis Cluster hash tag: one call's buckets share a slot.
        self._prefix = "{" + self.name + "}"
        self._adapter_bucket = (
            None if adapter_limit is None else BucketSpec(self._prefix, adapter_limit)
        )

    def buckets(self, invocation: Invocation) -> list[BucketSpec]:
        """The buckets this call draws from, adapter-wide first."""
        specs = [] if self._adapter_bucket is None else [self._adapter_bucket]
        request = invocation.request
        if self.config.per_user is not None:
            specs.append(
                BucketSpec(f"{self._prefix}:user:{request.user_id}", self.config.per_user, True)
            )
        if self.config.per_community is not None:
            specs.append(
                BucketSpec(
                    f"{self._prefix}:community:{request.community_id}",
                    self.config.per_community,
                    True,
                )
            )
        return specs

    def _max_wait(self, invocation: Invocation) -> tuple[float, str]:
        if self.config.mode == "reject":
            return 0.0, "mode='reject'"
        bound = math.inf if self.config.max_wait is None else self.config.max_wait
        why = f"max_wait={bound:g}s"
        if invocation.deadline is not None:
            left = max(0.0, invocation.deadline - self.clock.monotonic())
            if left < bound:
                bound, why = left, f"only {left:.2f}s left before total_timeout"
        return bound, why

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """Take a token from each bucket (waiting if configured), then call ``call_next``."""
        max_wait, why = self._max_wait(invocation)
        buckets = self.buckets(invocation)
        if self._memory is not None:
            grant = self._memory.acquire_now(buckets, self.clock.monotonic(), max_wait)
        else:
            assert self._state is not None
            grant = await self._store.acquire(buckets, self._state.now(self.clock), max_wait)
        if not grant.granted:
            raise PolicyRejection(
                f"rate limit of {self.name!r} reached: the next token is due in "
                f"{grant.wait:.2f}s ({why})",
                error_code=ErrorCode.RATE_LIMITED,
                retry_after=grant.wait,
            )
        if grant.wait > 0:
            invocation.extras["rate_limit_wait"] = grant.wait
            await self.clock.sleep(grant.wait)
        return await call_next(invocation)
