"""The built-in policies, built from ``LambdaAdapter``'s keyword arguments, in pipeline order.

::

    rate limit -> response cache -> circuit breaker -> (retry, inside the adapter)

- The rate limit is outermost: it is admission control for the adapter (and per user and
  community), so every request pays a token, cached or not, and a refusal costs nothing else.
- The cache sits before the breaker: a fresh cached reply is as good while the function is
  down as it was before, so a hit is served even when the breaker is open, and hits neither
  use a half-open trial slot nor count as successes that would hide an outage.
- The breaker sits outside the retry loop: it judges each request's final outcome (a request
  that succeeded on its second attempt is a success), and an open breaker stops the retries
  of new requests before they start.

This builder is the only place that knows the state backend: each policy receives its store
and a ``now()`` that means the same to every user of that store (the clock's monotonic time
in process, the backend's shared time otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from module_sdk.errors import ConfigurationError
from module_sdk.resilience.breaker import (
    CircuitBreakerConfig,
    CircuitBreakerPolicy,
    breaker_key,
    process_breakers,
)
from module_sdk.resilience.cache import MemoryCacheStore, ResponseCacheConfig, ResponseCachePolicy
from module_sdk.resilience.ratelimit import MemoryBucketStore, RateLimit, RateLimitPolicy

if TYPE_CHECKING:
    from module_sdk.aws_lambda.api import InvocationType
    from module_sdk.aws_lambda.naming import FunctionTarget
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.pipeline import Policy
    from module_sdk.resilience.state import StateBackend

__all__ = ["build_policies"]

_STATE_METHODS = ("now", "breaker_store", "bucket_store", "cache_store")


def build_policies(
    *,
    circuit_breaker: CircuitBreakerConfig | bool | None,
    rate_limit: RateLimit | None,
    cache: ResponseCacheConfig | None,
    state: StateBackend | None,
    target: FunctionTarget,
    region: str,
    endpoint: str | None = None,
    identity: str | None = None,
    module_name: str,
    invocation_type: InvocationType,
    clock: Clock,
) -> tuple[Policy, ...]:
    """Validate the adapter's policy arguments; return the configured policies, outermost
    first (rate limit, cache, breaker)."""
    if state is not None and not all(callable(getattr(state, m, None)) for m in _STATE_METHODS):
        raise ConfigurationError(
            f"state={state!r} is invalid: use RedisState(...) or None (in-process state)"
        )
    if circuit_breaker is True:
        circuit_breaker = CircuitBreakerConfig()
    elif circuit_breaker is False:
        circuit_breaker = None
    if circuit_breaker is not None and not isinstance(circuit_breaker, CircuitBreakerConfig):
        raise ConfigurationError(
            f"circuit_breaker={circuit_breaker!r} is invalid: use CircuitBreakerConfig(...), "
            "True (the defaults) or None"
        )
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise ConfigurationError(
            f"rate_limit={rate_limit!r} is invalid: use RateLimit(rate=..., burst=...) or None"
        )
    if cache is not None:
        if not isinstance(cache, ResponseCacheConfig):
            raise ConfigurationError(
                f"cache={cache!r} is invalid: use ResponseCacheConfig(commands={{...}}) or None"
            )
        if invocation_type != "RequestResponse":
            raise ConfigurationError(
                f"cache=... needs invocation_type='RequestResponse' (not {invocation_type!r}): "
                "only synchronous replies can be cached"
            )
    now: Callable[[], float] = clock.monotonic if state is None else partial(state.now, clock)
    policies: list[Policy] = []
    if rate_limit is not None:
        policies.append(
            RateLimitPolicy(
                rate_limit,
                name=f"{module_name}:{target.display_name}",
                store=MemoryBucketStore(rate_limit.max_keys)
                if state is None
                else state.bucket_store(),
                now=now,
                clock=clock,
            )
        )
    if cache is not None:
        policies.append(
            ResponseCachePolicy(
                cache,
                target=target,
                region=region,
                store=MemoryCacheStore(cache.max_entries) if state is None else state.cache_store(),
                now=now,
            )
        )
    if circuit_breaker is not None:
        policies.append(
            CircuitBreakerPolicy(
                circuit_breaker,
                key=breaker_key(target, region, endpoint, identity),
                store=process_breakers(clock) if state is None else state.breaker_store(),
                now=now,
            )
        )
    return tuple(policies)
