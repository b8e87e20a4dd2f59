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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from module_sdk._validate import integer, number
from module_sdk.errors import ConfigurationError, ErrorCode, PolicyRejection

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.pipeline import Handler, Invocation

__all__ = [
    "BucketSpec",
    "BucketStore",
    "Grant",
    "Limit",
    "MemoryBucketStore",
    "RateLimit",
    "RateLimitPolicy",
    "take",
    "take_slots",
]

logger = logging.getLogger(__name__)

RateLimitMode = Literal["reject", "wait"]


@dataclass(frozen=True, slots=True)
class Limit:
    """One token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    ``burst`` defaults to ``max(1, rate)`` (one second's worth, and at least one call).
    """

    rate: float
    burst: float | None = None

    def __post_init__(self) -> None:
        rate = number("rate", self.rate, owner="Limit")
        object.__setattr__(self, "rate", rate)
        burst = max(1.0, rate) if self.burst is None else self.burst
        burst = number("burst", burst, owner="Limit", minimum=1, strict_minimum=False)
        object.__setattr__(self, "burst", burst)

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
        max_keys: how many per-user and per-community buckets (together) are kept in
            memory; the least recently used are forgotten first (Redis expires idle buckets
            instead).
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
            number("max_wait", self.max_wait, owner="RateLimit", strict_minimum=False)
        for name in ("per_user", "per_community"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Limit):
                raise ConfigurationError(
                    f"RateLimit({name}={value!r}) is invalid: use Limit(rate, burst) or None"
                )
        integer("max_keys", self.max_keys, owner="RateLimit")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigurationError("RateLimit(name=...) must be a non-empty string or None")

    @property
    def adapter_limit(self) -> Limit | None:
        """The adapter-wide bucket, or None."""
        return None if self.rate is None else Limit(self.rate, self.burst)


class BucketSpec(NamedTuple):
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


_GO = Grant(True, 0.0)


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
    """Bucket levels in this process: fixed buckets kept, keyed ones in a bounded LRU.

    A slot is ``[tokens, updated, capacity, rate]``. The LRU is a plain ``OrderedDict``
    (``move_to_end`` / ``popitem`` are C calls). This is the store the adapter uses in
    process, and the one the Lua-parity tests check against the Redis script.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._fixed: dict[str, list[float]] = {}
        self._keyed: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._fixed) + len(self._keyed)

    def fixed_slot(self, key: str, limit: Limit, now: float) -> list[float]:
        """The slot of a bucket that is never evicted (created full)."""
        slot = self._fixed.get(key)
        if slot is None:
            slot = self._fixed[key] = [limit.capacity, now, limit.capacity, limit.rate]
        return slot

    def keyed_slot(self, key: str, limit: Limit, now: float) -> list[float]:
        """The slot of a per-user / per-community bucket (least recently used evicted)."""
        keyed = self._keyed
        slot = keyed.get(key)
        if slot is None:
            slot = keyed[key] = [limit.capacity, now, limit.capacity, limit.rate]
            if len(keyed) > self.max_keys:
                keyed.popitem(last=False)
        else:
            keyed.move_to_end(key)
        return slot

    async def acquire(self, buckets: Sequence[BucketSpec], now: float, max_wait: float) -> Grant:
        """Take one token from every bucket, or from none."""
        slots = [
            self.keyed_slot(key, limit, now) if keyed else self.fixed_slot(key, limit, now)
            for key, limit, keyed in buckets
        ]
        return take_slots(slots, now, max_wait)


def take_slots(slots: list[list[float]], now: float, max_wait: float) -> Grant:
    """Refill ``slots`` to ``now``; take a token from each, or from none (see :func:`take`)."""
    wait = 0.0
    for slot in slots:
        if now > slot[1]:
            slot[0] = min(slot[2], slot[0] + (now - slot[1]) * slot[3])
            slot[1] = now
        if slot[0] < 1.0:
            need = (1.0 - slot[0]) / slot[3]
            if need > wait:
                wait = need
    if wait > max_wait:
        return Grant(False, wait)
    for slot in slots:
        slot[0] -= 1.0
    return _GO if wait == 0.0 else Grant(True, wait)


class RateLimitPolicy:
    """The pipeline step: take tokens, then wait (bounded) or refuse with ``rate_limited``.

    Args:
        config: the limits.
        name: the bucket name (``config.name`` wins when set).
        store: where the buckets live (:class:`MemoryBucketStore` or a shared store).
        now: the time given to the store (it must mean the same to every user of the store).
        clock: the adapter's clock, for the request's deadline and for waiting.
    """

    def __init__(
        self,
        config: RateLimit,
        *,
        name: str,
        store: BucketStore,
        now: Callable[[], float],
        clock: Clock,
    ) -> None:
        self.config = config
        self.name = config.name or name
        self.store = store
        self._now = now
        self.clock = clock
        adapter_limit = config.adapter_limit
        # "{name}" is a Redis Cluster hash tag: one call's buckets share a slot.
        prefix = "{" + self.name + "}"
        self._user_prefix = prefix + ":user:"
        self._community_prefix = prefix + ":community:"
        self._fixed = [] if adapter_limit is None else [BucketSpec(prefix, adapter_limit)]

    def buckets(self, invocation: Invocation) -> list[BucketSpec]:
        """The buckets this call draws from, adapter-wide first."""
        specs = list(self._fixed)
        request = invocation.request
        per_user, per_community = self.config.per_user, self.config.per_community
        if per_user is not None:
            specs.append(BucketSpec(self._user_prefix + request.user_id, per_user, True))
        if per_community is not None:
            specs.append(
                BucketSpec(self._community_prefix + request.community_id, per_community, True)
            )
        return specs

    def _max_wait(self, invocation: Invocation) -> float:
        if self.config.mode == "reject":
            return 0.0
        bound = math.inf if self.config.max_wait is None else self.config.max_wait
        if invocation.deadline is not None:
            bound = min(bound, max(0.0, invocation.deadline - self.clock.monotonic()))
        return bound

    def _why(self, max_wait: float) -> str:
        if self.config.mode == "reject":
            return "mode='reject'"
        if self.config.max_wait is not None and max_wait >= self.config.max_wait:
            return f"max_wait={self.config.max_wait:g}s"
        if math.isinf(max_wait):
            return "no wait bound"
        return f"only {max_wait:.2f}s left before total_timeout"

    def _refuse(self, grant: Grant, max_wait: float) -> PolicyRejection:
        return PolicyRejection(
            f"rate limit of {self.name!r} reached: the next token is due in "
            f"{grant.wait:.2f}s ({self._why(max_wait)})",
            error_code=ErrorCode.RATE_LIMITED,
            retry_after=grant.wait,
        )

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """Take a token from each bucket (waiting if configured), then call ``call_next``."""
        max_wait = self._max_wait(invocation)
        grant = await self.store.acquire(self.buckets(invocation), self._now(), max_wait)
        if not grant.granted:
            raise self._refuse(grant, max_wait)
        if grant.wait > 0.0:
            await self.clock.sleep(grant.wait)
        return await call_next(invocation)
