"""The response cache, and the order of the built-in policies in the pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from module_sdk import ConfigurationError, ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.naming import resolve_function
from module_sdk.resilience.breaker import CircuitBreakerConfig, CircuitBreakerPolicy
from module_sdk.resilience.cache import (
    MemoryCacheStore,
    ResponseCacheConfig,
    ResponseCachePolicy,
    cache_key,
)
from module_sdk.resilience.ratelimit import RateLimit, RateLimitPolicy
from module_sdk.resilience.retry import RetryPolicy
from module_sdk.testing import FakeClock, HandlerInvoker


def request(
    command: str = "!help", args: list[str] | None = None, session: str = "s-1", user: str = "u-1"
) -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest(
        command=command,
        args=["all"] if args is None else args,
        user_id=user,
        entity_id="e-1",
        community_id="c-1",
        session_id=session,
        platform="twitch",
    )


class Counter:
    """A function that answers with a list in data and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls += 1
        if self.fail:
            return {"success": False, "error": "nope"}
        return {
            "success": True,
            "message": f"answer {self.calls}",
            "items": [1, 2],
        }


def cached(
    commands: dict[str, float], clock: FakeClock, **kwargs: Any
) -> tuple[LambdaAdapter, Counter]:
    """An in-process adapter caching ``commands``."""
    counter = Counter()
    adapter = LambdaAdapter(
        "helpdesk",
        "us-east-1",
        "help",
        cache=ResponseCacheConfig(commands=commands),
        invoker=HandlerInvoker(counter),
        clock=clock,
        **kwargs,
    )
    return adapter, counter


def test_key_ignores_request_id_and_timestamp_only() -> None:
    """Two events differing only in request_id/timestamp share a key; others do not."""
    target = resolve_function("helpdesk", prefix=None, qualifier=None)
    base = {"trigger": {"command": "!help"}, "request_id": "a", "timestamp": "t1"}
    same = {**base, "request_id": "b", "timestamp": "t2"}
    other = {**base, "trigger": {"command": "!rules"}}
    assert cache_key(target, "us-east-1", base) == cache_key(target, "us-east-1", same)
    assert cache_key(target, "us-east-1", base) != cache_key(target, "us-east-1", other)
    assert cache_key(target, "us-east-1", base) != cache_key(target, "eu-west-1", base)
    prod = resolve_function("helpdesk", prefix=None, qualifier="prod")
    assert cache_key(target, "us-east-1", base) != cache_key(prod, "us-east-1", base)


async def test_hit_is_marked_and_makes_no_call() -> None:
    """The second identical request is answered from the cache with cache_hit=True."""
    adapter, counter = cached({"!help": 60}, FakeClock())
    first = await adapter.execute_async(request(session="s-1"))
    second = await adapter.execute_async(request(session="s-2"))
    assert counter.calls == 1
    assert first.data == {"items": [1, 2]}
    assert second.data == {"items": [1, 2]}
    assert second.message == first.message == "answer 1"
    assert first.diagnostics is not None and second.diagnostics is not None
    assert (first.diagnostics.cache_hit, first.diagnostics.attempts) == (False, 1)
    assert (second.diagnostics.cache_hit, second.diagnostics.attempts) == (True, 0)
    assert adapter.get_health_status()["total_requests"] == 1  # hits are not health calls


async def test_hit_keeps_the_functions_own_keys_that_share_diagnostic_names() -> None:
    """A function's own ``attempts`` / ``log_tail`` / ``cache_hit`` keys survive the cache."""
    own = {"attempts": 7, "log_tail": "the function's", "cache_hit": "no", "status_code": 1}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"success": True, **own}

    adapter = LambdaAdapter(
        "helpdesk",
        "us-east-1",
        "help",
        cache=ResponseCacheConfig(commands={"!help": 60}),
        invoker=HandlerInvoker(handler),
        clock=FakeClock(),
    )
    first = await adapter.execute_async(request(session="s-1"))
    hit = await adapter.execute_async(request(session="s-2"))
    assert first.data == hit.data == own
    assert hit.diagnostics is not None and hit.diagnostics.cache_hit is True


async def test_a_functions_own_cache_hit_key_is_counted_in_health() -> None:
    """Health is decided from the call, not from the function's keys."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"success": True, "cache_hit": True}

    for cache in (None, ResponseCacheConfig(commands={"!other": 60})):
        adapter = LambdaAdapter(
            "helpdesk",
            "us-east-1",
            "help",
            cache=cache,
            invoker=HandlerInvoker(handler),
            clock=FakeClock(),
        )
        for n in range(3):
            response = await adapter.execute_async(request(session=f"s-{n}"))
            assert response.data == {"cache_hit": True}
            assert response.diagnostics is not None and response.diagnostics.cache_hit is False
        assert adapter.get_health_status()["total_requests"] == 3


async def test_hits_share_no_mutable_objects() -> None:
    """Mutating one reply never changes the cache or another hit."""
    adapter, _ = cached({"!help": 60}, FakeClock())
    first = await adapter.execute_async(request())
    assert first.data is not None
    first.data["items"].append(99)
    second = await adapter.execute_async(request())
    assert second.data is not None
    second.data["items"].append(100)
    third = await adapter.execute_async(request())
    assert third.data == {"items": [1, 2]}


async def test_entries_expire_after_their_ttl() -> None:
    """Per-command TTLs on the fake clock: fresh until ttl, then a new call."""
    clock = FakeClock()
    adapter, counter = cached({"!help": 10, "!rules": 100}, clock)
    await adapter.execute_async(request())
    await adapter.execute_async(request("!rules"))
    clock.advance(9.9)
    await adapter.execute_async(request())
    assert counter.calls == 2
    clock.advance(0.1)
    await adapter.execute_async(request())
    await adapter.execute_async(request("!rules"))
    assert counter.calls == 3


async def test_only_listed_commands_and_successes_are_cached() -> None:
    """Other commands and failed replies always reach the function."""
    adapter, counter = cached({"!help": 60}, FakeClock())
    await adapter.execute_async(request("!roll"))
    await adapter.execute_async(request("!roll"))
    assert counter.calls == 2
    counter.fail = True
    await adapter.execute_async(request())
    await adapter.execute_async(request())
    assert counter.calls == 4


async def test_different_args_or_users_miss() -> None:
    """The key covers args and user, so replies are never shared across them."""
    adapter, counter = cached({"!help": 60}, FakeClock())
    await adapter.execute_async(request(args=["a"]))
    await adapter.execute_async(request(args=["b"]))
    await adapter.execute_async(request(args=["a"], user="u-2"))
    assert counter.calls == 3


async def test_lru_is_bounded() -> None:
    """The in-process cache keeps at most max_entries replies."""
    counter = Counter()
    adapter = LambdaAdapter(
        "helpdesk",
        "us-east-1",
        "help",
        cache=ResponseCacheConfig(commands={"!help": 60}, max_entries=2),
        invoker=HandlerInvoker(counter),
        clock=FakeClock(),
    )
    for arg in ["a", "b", "c", "a"]:
        await adapter.execute_async(request(args=[arg]))
    assert counter.calls == 4  # "a" was evicted by "c"
    [policy] = [p for p in adapter.policies if isinstance(p, ResponseCachePolicy)]
    assert isinstance(policy.store, MemoryCacheStore) and len(policy.store) == 2


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"commands": {}}, "at least one command"),
        ({"commands": {"!help": 0}}, "TTL"),
        ({"commands": {"!help": float("inf")}}, "TTL"),
        ({"commands": {"": 5}}, "command names"),
        ({"commands": {"!help": 5}, "max_entries": 0}, "max_entries"),
    ],
    ids=str,
)
def test_bad_cache_config(kwargs: dict[str, Any], fragment: str) -> None:
    """Invalid cache settings raise ConfigurationError naming them."""
    with pytest.raises(ConfigurationError, match=fragment):
        ResponseCacheConfig(**kwargs)


def test_cache_needs_synchronous_invocations() -> None:
    """Caching an Event call would swallow its side effect: refused."""
    with pytest.raises(ConfigurationError, match="RequestResponse"):
        LambdaAdapter(
            "helpdesk",
            "us-east-1",
            "help",
            invocation_type="Event",
            cache=ResponseCacheConfig(commands={"!help": 5}),
        )


def test_builtin_policies_are_ordered_rate_limit_cache_breaker_retry() -> None:
    """The built-ins run in order (rate limit, cache, breaker), then the retry loop."""
    adapter = LambdaAdapter(
        "helpdesk-order",
        "us-east-1",
        "help",
        rate_limit=RateLimit(rate=5),
        cache=ResponseCacheConfig(commands={"!help": 5}),
        circuit_breaker=True,
    )
    kinds = [type(p) for p in adapter.policies]
    assert kinds == [RateLimitPolicy, ResponseCachePolicy, CircuitBreakerPolicy, RetryPolicy]


async def test_cache_hit_is_served_while_the_breaker_is_open() -> None:
    """A fresh cached reply still answers when the function's breaker is open."""
    clock = FakeClock()
    adapter, counter = cached(
        {"!help": 60},
        clock,
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(
            consecutive_failures=1, failure_codes=frozenset({"module_error"})
        ),
    )
    assert (await adapter.execute_async(request())).success
    counter.fail = True
    assert (await adapter.execute_async(request("!roll"))).error_code == "module_error"
    assert adapter.get_health_status()["circuit_state"] == "open"
    hit = await adapter.execute_async(request())
    assert hit.success
    assert hit.data == {"items": [1, 2]}
    assert hit.diagnostics is not None and hit.diagnostics.cache_hit is True
    assert (await adapter.execute_async(request("!roll"))).error_code == "circuit_open"
    assert counter.calls == 2


async def test_rate_limit_applies_to_cache_hits() -> None:
    """The rate limit is outermost: a hit still takes a token."""
    adapter, counter = cached({"!help": 60}, FakeClock(), rate_limit=RateLimit(rate=1, burst=2))
    results = [await adapter.execute_async(request()) for _ in range(3)]
    assert [r.error_code for r in results] == [None, None, "rate_limited"]
    assert counter.calls == 1
