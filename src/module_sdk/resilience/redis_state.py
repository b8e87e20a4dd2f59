"""Shared policy state in Redis: one breaker, one rate budget and one cache for many processes.

Install the extra (``pip install 'waddlebot-module-sdk[redis]'``) and pass one
:class:`RedisState` to every adapter that should share (in one process or many)::

    state = RedisState("redis://127.0.0.1:6379/0")
    adapter = LambdaAdapter(..., circuit_breaker=CircuitBreakerConfig(), state=state)
    ...
    await state.aclose()

Every read-modify-write is one Lua script (atomic on the server); the scripts mirror the
in-process code (:class:`module_sdk.resilience.breaker.BreakerState`,
:func:`module_sdk.resilience.ratelimit.take`). Times are wall-clock seconds from the adapter's
clock (``clock.utcnow()``), so hosts sharing a server need synchronized clocks (NTP); a clock
that lags only sees buckets refill late, never early.

Keys (``prefix`` defaults to ``waddlebot:``): ``cb:{region:function:qualifier}`` (a hash) and
``...:w`` (the breaker's window, a list), ``rl:{name}...`` (bucket hashes), ``cache:<sha256>``.
Breaker and bucket keys expire when idle; cache keys expire with their TTL.

When Redis cannot be reached the policies fail open: the breaker lets calls through, the
rate limit grants, the cache misses, and a warning is logged (at most every 10 seconds).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from module_sdk.errors import ConfigurationError
from module_sdk.resilience.breaker import (
    _CLOSED_PERMIT,
    CircuitBreakerConfig,
    CircuitState,
    Outcome,
    Permit,
)
from module_sdk.resilience.ratelimit import BucketSpec, Grant

if TYPE_CHECKING:
    from module_sdk.resilience.clock import Clock

__all__ = ["RedisState"]

logger = logging.getLogger(__name__)

IDLE_EXPIRY_MS = 24 * 3600 * 1000
"""Breaker state unused for this long is dropped (it would be closed again by then)."""

_BREAKER_ALLOW = """
local now = tonumber(ARGV[1])
local open_duration = tonumber(ARGV[2])
local max_trials = tonumber(ARGV[3])
local s = redis.call('HGET', KEYS[1], 's')
if not s or s == 'closed' then
  return {1, 'closed', 0, '0'}
end
if s == 'open' then
  local reopen = tonumber(redis.call('HGET', KEYS[1], 'oa')) + open_duration
  if now < reopen then
    return {0, 'open', 0, string.format('%.17g', reopen - now)}
  end
  s = 'half_open'
  redis.call('HSET', KEYS[1], 's', 'half_open', 'if', 0, 'hs', 0)
end
local inflight = tonumber(redis.call('HGET', KEYS[1], 'if')) or 0
local lp = tonumber(redis.call('HGET', KEYS[1], 'lp')) or 0
if inflight > 0 and now - lp >= open_duration then
  inflight = 0
end
if inflight < max_trials then
  redis.call('HSET', KEYS[1], 'if', inflight + 1, 'lp', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1, 'half_open', 1, '0'}
end
redis.call('HSET', KEYS[1], 'if', inflight)
local wait = lp + open_duration - now
if wait < 0 then wait = 0 end
return {0, 'half_open', 0, string.format('%.17g', wait)}
"""

_BREAKER_RECORD = """
local now = ARGV[1]
local outcome = ARGV[2]
local trial = ARGV[3] == '1'
local window_size = tonumber(ARGV[4])
local min_calls = tonumber(ARGV[5])
local consecutive_limit = tonumber(ARGV[6])
local threshold = tonumber(ARGV[7])
local max_trials = tonumber(ARGV[8])
local expiry = ARGV[9]
local s = redis.call('HGET', KEYS[1], 's') or 'closed'
local function trip()
  redis.call('HSET', KEYS[1], 's', 'open', 'oa', now, 'if', 0, 'hs', 0, 'f', 0, 'c', 0)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], expiry)
  return 'open'
end
if trial then
  if s ~= 'half_open' then return s end
  local inflight = (tonumber(redis.call('HGET', KEYS[1], 'if')) or 0) - 1
  if inflight < 0 then inflight = 0 end
  redis.call('HSET', KEYS[1], 'if', inflight)
  if outcome == 'failure' then return trip() end
  if outcome == 'success' then
    local ok = redis.call('HINCRBY', KEYS[1], 'hs', 1)
    if ok >= max_trials then
      redis.call('HSET', KEYS[1], 's', 'closed', 'if', 0, 'hs', 0, 'f', 0, 'c', 0)
      redis.call('DEL', KEYS[2])
      return 'closed'
    end
  end
  return 'half_open'
end
if s ~= 'closed' or outcome == 'ignored' then return s end
local failed = 0
if outcome == 'failure' then failed = 1 end
redis.call('RPUSH', KEYS[2], failed)
local f = redis.call('HINCRBY', KEYS[1], 'f', failed)
local n = redis.call('LLEN', KEYS[2])
while n > window_size do
  if redis.call('LPOP', KEYS[2]) == '1' then
    f = redis.call('HINCRBY', KEYS[1], 'f', -1)
  end
  n = n - 1
end
local c = 0
if failed == 1 then
  c = redis.call('HINCRBY', KEYS[1], 'c', 1)
else
  redis.call('HSET', KEYS[1], 'c', 0)
end
redis.call('PEXPIRE', KEYS[1], expiry)
redis.call('PEXPIRE', KEYS[2], expiry)
if failed == 1 and ((consecutive_limit > 0 and c >= consecutive_limit)
    or (n >= min_calls and f >= threshold * n)) then
  return trip()
end
return 'closed'
"""

_BUCKETS_ACQUIRE = """
local now = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local v = redis.call('HMGET', key, 't', 'u')
  local t = tonumber(v[1])
  local u = tonumber(v[2])
  if t == nil or u == nil then
    t = burst
    u = now
  end
  if now > u then
    t = math.min(burst, t + (now - u) * rate)
    u = now
  end
  levels[i] = {t, u, rate, burst}
  if t < 1 then
    local need = (1 - t) / rate
    if need > wait then wait = need end
  end
end
if wait > max_wait then
  return {0, string.format('%.17g', wait)}
end
for i, key in ipairs(KEYS) do
  local level = levels[i]
  local t = level[1] - 1
  redis.call('HSET', key, 't', string.format('%.17g', t), 'u', string.format('%.17g', level[2]))
  local idle = (level[4] - t) / level[3] + 60
  redis.call('PEXPIRE', key, math.ceil(idle * 1000))
end
return {1, string.format('%.17g', wait)}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Warner:
    """Logs a Redis failure at most once every 10 seconds per kind."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, kind: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) >= 10.0:
            self._last[kind] = now
            logger.warning("Redis %s failed (%s: %s); failing open", kind, type(exc).__name__, exc)


class RedisBreakerStore:
    """Breaker state in Redis (see the module docstring)."""

    def __init__(self, state: RedisState) -> None:
        self._state = state

    def _keys(self, key: str) -> list[str]:
        base = f"{self._state.prefix}cb:{{{key}}}"
        return [base, base + ":w"]

    async def allow(self, key: str, config: CircuitBreakerConfig, now: float) -> Permit:
        """Ask before a call (lets it through if Redis is unreachable)."""
        try:
            raw = await self._state.run(
                "breaker_allow",
                self._keys(key),
                [repr(now), repr(config.open_duration), config.half_open_max_calls, IDLE_EXPIRY_MS],
            )
        except self._state.errors as exc:
            self._state.warner.warn("circuit-breaker check", exc)
            return Permit(True, CircuitState.CLOSED)
        allowed, state, trial, wait = raw
        if allowed and not trial:
            return _CLOSED_PERMIT
        return Permit(bool(allowed), CircuitState(_text(state)), bool(trial), float(_text(wait)))

    async def record(
        self, key: str, config: CircuitBreakerConfig, now: float, outcome: Outcome, trial: bool
    ) -> CircuitState:
        """Report a finished call."""
        try:
            raw = await self._state.run(
                "breaker_record",
                self._keys(key),
                [
                    repr(now),
                    outcome.value,
                    "1" if trial else "0",
                    config.window_size,
                    config.minimum_calls,
                    config.consecutive_failures or 0,
                    repr(config.failure_rate_threshold),
                    config.half_open_max_calls,
                    IDLE_EXPIRY_MS,
                ],
            )
        except self._state.errors as exc:
            self._state.warner.warn("circuit-breaker update", exc)
            return CircuitState.CLOSED
        return CircuitState(_text(raw))

    async def state(self, key: str) -> CircuitState:
        """The current state (``open`` stays ``open`` until the next call asks)."""
        raw = await self._state.client.hget(self._keys(key)[0], "s")
        return CircuitState.CLOSED if raw is None else CircuitState(_text(raw))

    def peek(self, key: str) -> CircuitState | None:
        """Redis state is only known after a round trip: None (the policy keeps the state it
        last saw)."""
        return None

    async def reset(self, key: str) -> None:
        """Forget one breaker: it starts closed again."""
        await self._state.client.delete(*self._keys(key))


class RedisBucketStore:
    """Rate-limit buckets in Redis (see the module docstring)."""

    def __init__(self, state: RedisState) -> None:
        self._state = state

    async def acquire(self, buckets: Sequence[BucketSpec], now: float, max_wait: float) -> Grant:
        """Take one token from every bucket or from none, atomically (grants if unreachable)."""
        args: list[Any] = [repr(now), repr(max_wait) if math.isfinite(max_wait) else "1e308"]
        for spec in buckets:
            args += [repr(spec.limit.rate), repr(spec.limit.capacity)]
        keys = [f"{self._state.prefix}rl:{spec.key}" for spec in buckets]
        try:
            granted, wait = await self._state.run("buckets_acquire", keys, args)
        except self._state.errors as exc:
            self._state.warner.warn("rate-limit check", exc)
            return Grant(True, 0.0)
        return Grant(bool(granted), float(_text(wait)))


class RedisCacheStore:
    """Cached replies in Redis: ``<expiry>|<json>`` with a matching TTL."""

    def __init__(self, state: RedisState) -> None:
        self._state = state

    async def get(self, key: str, now: float) -> str | None:
        """The stored JSON, or None when absent or expired at ``now``."""
        raw = await self._state.client.get(f"{self._state.prefix}cache:{key}")
        if raw is None:
            return None
        expires, _, value = _text(raw).partition("|")
        return value if now < float(expires) else None

    async def set(self, key: str, value: str, ttl: float, now: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        await self._state.client.set(
            f"{self._state.prefix}cache:{key}",
            f"{now + ttl!r}|{value}",
            px=max(1, math.ceil(ttl * 1000)),
        )


class RedisState:
    """Breaker state, rate-limit buckets and cached replies in one Redis database.

    Args:
        url: a ``redis://`` / ``rediss://`` / ``unix://`` URL (or pass ``client``).
        client: a ``redis.asyncio.Redis`` you own (not closed by :meth:`aclose`).
        prefix: prepended to every key (several deployments can share a server).
        socket_timeout: per-command timeout in seconds for a client made from ``url``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "waddlebot:",
        socket_timeout: float = 1.0,
    ) -> None:
        try:
            import redis.asyncio
            import redis.exceptions
        except ImportError as exc:  # pragma: no cover - the extra is installed in CI
            raise ConfigurationError(
                "RedisState needs redis-py: pip install 'waddlebot-module-sdk[redis]'"
            ) from exc
        if (url is None) == (client is None):
            raise ConfigurationError("RedisState needs exactly one of url=... or client=...")
        if not isinstance(prefix, str):
            raise ConfigurationError("RedisState(prefix=...) must be a string")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError(
                    "RedisState(url=...) is invalid: use redis://host:port/db, rediss://... "
                    "or unix:///path/to/socket"
                )
            client = redis.asyncio.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        self.client: Any = client
        self._owns_client = url is not None
        self.prefix = prefix
        self.errors: tuple[type[BaseException], ...] = (
            redis.exceptions.RedisError,
            OSError,
            TimeoutError,
        )
        self.warner = _Warner()
        self._scripts = {
            "breaker_allow": client.register_script(_BREAKER_ALLOW),
            "breaker_record": client.register_script(_BREAKER_RECORD),
            "buckets_acquire": client.register_script(_BUCKETS_ACQUIRE),
        }
        self._breakers = RedisBreakerStore(self)
        self._buckets = RedisBucketStore(self)
        self._cache = RedisCacheStore(self)

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return f"<RedisState prefix={self.prefix!r}>"

    async def run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of the registered Lua scripts."""
        return await self._scripts[script](keys=keys, args=args)

    def now(self, clock: Clock) -> float:
        """Wall-clock seconds (comparable across hosts), from the adapter's clock."""
        return clock.utcnow().timestamp()

    def breaker_store(self) -> RedisBreakerStore:
        """The shared breaker store."""
        return self._breakers

    def bucket_store(self) -> RedisBucketStore:
        """The shared rate-limit store."""
        return self._buckets

    def cache_store(self) -> RedisCacheStore:
        """The shared reply cache."""
        return self._cache

    async def aclose(self) -> None:
        """Close the client if this object made it from a URL."""
        if self._owns_client:
            close = getattr(self.client, "aclose", None) or self.client.close  # redis-py < 5.0.1
            await close()
