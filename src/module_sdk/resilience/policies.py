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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from module_sdk.errors import ConfigurationError, ModuleSDKError
from module_sdk.resilience.breaker import (
    CircuitBreakerConfig,
    CircuitBreakerPolicy,
    Outcome,
    breaker_key,
)
from module_sdk.resilience.cache import ResponseCacheConfig, ResponseCachePolicy
from module_sdk.resilience.ratelimit import RateLimit, RateLimitPolicy

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.aws_lambda.naming import FunctionTarget
    from module_sdk.resilience.clock import Clock
    from module_sdk.resilience.pipeline import Handler, Invocation, Policy
    from module_sdk.resilience.state import StateBackend

__all__ = ["BuiltinPolicies", "build_policies"]

_IGNORED = Outcome.IGNORED

_STATE_METHODS = ("now", "breaker_store", "bucket_store", "cache_store")


@dataclass(frozen=True, slots=True)
class BuiltinPolicies:
    """The adapter's built-in policies (None where not configured), run as ONE pipeline step.

    Running them in one step rather than three (with an in-process breaker inlined) saves
    coroutine layers on every call; the behaviour is exactly that of composing
    :attr:`ordered`, each of which is also a policy on its own.
    """

    rate_limit: RateLimitPolicy | None = None
    cache: ResponseCachePolicy | None = None
    breaker: CircuitBreakerPolicy | None = None

    @property
    def ordered(self) -> tuple[Policy, ...]:
        """The configured policies, outermost first."""
        return tuple(p for p in (self.rate_limit, self.cache, self.breaker) if p is not None)

    @property
    def steps(self) -> tuple[Policy, ...]:
        """What the adapter puts in its pipeline: this object, or nothing at all."""
        return (self,) if self.ordered else ()

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """rate limit -> cache -> breaker -> ``call_next``."""
        rate_limit = self.rate_limit
        if rate_limit is not None:
            wait = (
                rate_limit.admit_now(invocation)
                if rate_limit.in_memory
                else await rate_limit.admit(invocation)
            )
            if wait > 0.0:
                await rate_limit.pause(invocation, wait)
        cache = self.cache
        ttl = None
        if cache is not None:
            ttl = cache.ttls.get(invocation.request.command)
            if invocation.invocation_type != "RequestResponse":
                ttl = None
        key = ""
        if cache is not None and ttl is not None:
            hit, key = await cache.lookup(invocation)
            if hit is not None:
                return hit
        breaker = self.breaker
        if breaker is None:
            response = await call_next(invocation)
        elif breaker.in_memory:  # the breaker inlined: one coroutine layer less
            permit = breaker.enter_now(invocation)
            outcome = _IGNORED
            try:
                response = await call_next(invocation)
                outcome = breaker.outcome_of(response, invocation)
            except ModuleSDKError as exc:
                outcome = breaker.config.classify(exc.error_code.value, invocation.attempts)
                raise
            finally:
                breaker.exit_now(permit, outcome)
        else:
            response = await breaker(invocation, call_next)
        if cache is not None and ttl is not None:
            await cache.store(invocation, key, ttl, response)
        return response


def build_policies(
    *,
    circuit_breaker: CircuitBreakerConfig | bool | None,
    rate_limit: RateLimit | None,
    cache: ResponseCacheConfig | None,
    state: StateBackend | None,
    target: FunctionTarget,
    region: str,
    endpoint: str | None = None,
    module_name: str,
    invocation_type: str,
    clock: Clock,
) -> BuiltinPolicies:
    """Validate the adapter's policy arguments and build the policies."""
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
    return BuiltinPolicies(
        rate_limit=None
        if rate_limit is None
        else RateLimitPolicy(
            rate_limit, name=f"{module_name}:{target.display_name}", clock=clock, state=state
        ),
        cache=None
        if cache is None
        else ResponseCachePolicy(cache, target=target, region=region, clock=clock, state=state),
        breaker=None
        if circuit_breaker is None
        else CircuitBreakerPolicy(
            circuit_breaker, key=breaker_key(target, region, endpoint), clock=clock, state=state
        ),
    )
