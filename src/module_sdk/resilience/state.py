"""Where the policies keep their state: this process (the default) or a shared store.

A backend hands out one store per policy kind. The in-process default keeps breaker state in
a process-wide registry (so every adapter of one function shares one breaker) and rate-limit
buckets and cached replies per adapter. :class:`module_sdk.resilience.redis_state.RedisState`
keeps all three in Redis, shared by every process that uses the same server and prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from module_sdk.resilience.breaker import BreakerStore
    from module_sdk.resilience.cache import CacheStore
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.ratelimit import BucketStore

__all__ = ["StateBackend"]


class StateBackend(Protocol):
    """A shared home for breaker state, rate-limit buckets and cached replies."""

    def now(self, clock: Clock) -> float:
        """The time to store, in seconds; it must mean the same in every process sharing it."""
        ...

    def breaker_store(self) -> BreakerStore:
        """The store of circuit-breaker state."""
        ...

    def bucket_store(self) -> BucketStore:
        """The store of rate-limit buckets."""
        ...

    def cache_store(self) -> CacheStore:
        """The store of cached replies."""
        ...
