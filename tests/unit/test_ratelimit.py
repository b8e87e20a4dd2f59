"""Rate limiting: token buckets on a fake clock, reject and wait modes, per-user keys."""

from __future__ import annotations

from typing import Any

import pytest

from module_sdk import ConfigurationError, ExecuteRequest, LambdaAdapter
from module_sdk.resilience.ratelimit import (
    BucketSpec,
    Limit,
    MemoryBucketStore,
    RateLimit,
    RateLimitPolicy,
    take,
)
from module_sdk.testing import FakeClock, HandlerInvoker


def request(user: str = "u-1", community: str = "c-1", session: str = "s-1") -> ExecuteRequest:
    """A chat command from ``user`` in ``community``."""
    return ExecuteRequest(
        command="!roll",
        args=["2d6"],
        user_id=user,
        entity_id="e-1",
        community_id=community,
        session_id=session,
        platform="twitch",
    )


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A function that always answers."""
    return {"success": True, "message": "ok"}


def limited(
    rate_limit: RateLimit, clock: FakeClock, **kwargs: Any
) -> tuple[LambdaAdapter, HandlerInvoker]:
    """An in-process adapter with ``rate_limit``."""
    invoker = HandlerInvoker(ok)
    adapter = LambdaAdapter(
        "dice", "us-east-1", "dice", rate_limit=rate_limit, invoker=invoker, clock=clock, **kwargs
    )
    return adapter, invoker


def test_take_refills_up_to_burst() -> None:
    """Tokens come back at ``rate`` per second and never exceed ``burst``."""
    limit = Limit(rate=2.0, burst=3.0)
    assert take(0.0, 0.0, 1.0, limit) == (2.0, 0.0)
    assert take(0.0, 0.0, 100.0, limit) == (3.0, 0.0)
    tokens, wait = take(0.5, 0.0, 0.0, limit)
    assert (tokens, wait) == (0.5, 0.25)


def test_limit_defaults_and_validation() -> None:
    """burst defaults to max(1, rate); bad numbers are refused by name."""
    assert Limit(0.5).burst == 1.0
    assert Limit(20).burst == 20.0
    with pytest.raises(ConfigurationError, match="rate"):
        Limit(0)
    with pytest.raises(ConfigurationError, match="burst"):
        Limit(5, burst=0.5)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "limits nothing"),
        ({"burst": 5}, "needs rate"),
        ({"rate": 1, "mode": "queue"}, "mode"),
        ({"rate": 1, "max_wait": -1}, "max_wait"),
        ({"rate": 1, "max_keys": 0}, "max_keys"),
        ({"rate": 1, "per_user": (1, 2)}, "per_user"),
        ({"rate": 1, "name": ""}, "name"),
    ],
    ids=lambda v: str(v),
)
def test_bad_rate_limit_config(kwargs: dict[str, Any], fragment: str) -> None:
    """Each invalid RateLimit setting raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=fragment):
        RateLimit(**kwargs)


async def test_memory_store_is_all_or_nothing() -> None:
    """When one bucket is empty no other bucket is charged."""
    store = MemoryBucketStore()
    wide = BucketSpec("{a}", Limit(10, 10))
    user = BucketSpec("{a}:user:u", Limit(1, 1), keyed=True)
    assert (await store.acquire([wide, user], 0.0, 0.0)).granted
    refused = await store.acquire([wide, user], 0.0, 0.0)
    assert not refused.granted
    assert refused.wait == pytest.approx(1.0)
    grants = [(await store.acquire([wide], 0.0, 0.0)).granted for _ in range(10)]
    assert grants == [True] * 9 + [False]  # the refused call took nothing from {a}


async def test_keyed_buckets_are_bounded() -> None:
    """Per-user buckets live in an LRU of max_keys entries."""
    store = MemoryBucketStore(max_keys=3)
    for i in range(10):
        await store.acquire([BucketSpec(f"user:{i}", Limit(1), keyed=True)], 0.0, 0.0)
    assert len(store) == 3


async def test_reject_mode_refuses_at_once_then_refills() -> None:
    """burst calls pass, the next is rate_limited without a call, then time refills."""
    clock = FakeClock()
    adapter, invoker = limited(RateLimit(rate=1.0, burst=3), clock)
    results = [await adapter.execute_async(request()) for _ in range(4)]
    assert [r.success for r in results] == [True, True, True, False]
    assert results[3].error_code == "rate_limited"
    assert "next token is due in 1.00s" in (results[3].error or "")
    assert len(invoker.calls) == 3
    assert clock.sleeps == []
    clock.advance(1.0)
    assert (await adapter.execute_async(request())).success
    assert adapter.get_health_status()["total_requests"] == 4  # the refusal is not counted


async def test_wait_mode_sleeps_on_the_clock_in_order() -> None:
    """In wait mode each call reserves the next token and sleeps until it is due."""
    clock = FakeClock()
    adapter, invoker = limited(RateLimit(rate=2.0, burst=1, mode="wait", max_wait=5.0), clock)
    for _ in range(3):
        assert (await adapter.execute_async(request())).success
    assert clock.sleeps == [0.5, 0.5]
    assert len(invoker.calls) == 3


async def test_wait_is_bounded_by_max_wait() -> None:
    """A wait longer than max_wait is refused at once instead of started."""
    clock = FakeClock()
    adapter, _ = limited(RateLimit(rate=0.1, burst=1, mode="wait", max_wait=5.0), clock)
    assert (await adapter.execute_async(request())).success
    refused = await adapter.execute_async(request())
    assert refused.error_code == "rate_limited"
    assert "max_wait=5s" in (refused.error or "")
    assert clock.sleeps == []


async def test_wait_is_bounded_by_the_deadline() -> None:
    """A wait that would not fit in total_timeout is refused; one that fits is taken."""
    clock = FakeClock()
    adapter, invoker = limited(
        RateLimit(rate=0.25, burst=1, mode="wait", max_wait=None), clock, total_timeout=3.0
    )
    assert (await adapter.execute_async(request())).success
    refused = await adapter.execute_async(request())  # the next token is 4 s away
    assert refused.error_code == "rate_limited"
    assert "only 3.00s left before total_timeout" in (refused.error or "")
    assert clock.sleeps == []
    clock.advance(2.0)
    assert (await adapter.execute_async(request())).success  # 2 s fits in 3 s
    assert clock.sleeps == [2.0]
    assert len(invoker.calls) == 2


async def test_per_user_and_per_community_limits() -> None:
    """A noisy user is limited alone; the community bucket limits everyone in it."""
    clock = FakeClock()
    adapter, invoker = limited(
        RateLimit(per_user=Limit(1, burst=2), per_community=Limit(1, burst=3)), clock
    )
    codes = [(await adapter.execute_async(request("alice"))).error_code for _ in range(3)]
    assert codes == [None, None, "rate_limited"]
    assert (await adapter.execute_async(request("bob"))).success
    assert (await adapter.execute_async(request("carol"))).error_code == "rate_limited"
    assert (await adapter.execute_async(request("carol", community="c-2"))).success
    assert len(invoker.calls) == 4


async def test_adapter_rate_limit_is_per_adapter_in_memory() -> None:
    """Two in-process adapters without shared state have their own buckets."""
    clock = FakeClock()
    first, _ = limited(RateLimit(rate=1, burst=1), clock)
    second, _ = limited(RateLimit(rate=1, burst=1), clock)
    assert (await first.execute_async(request())).success
    assert (await second.execute_async(request())).success
    assert (await first.execute_async(request())).error_code == "rate_limited"


def test_adapter_rejects_a_wrong_rate_limit_type() -> None:
    """rate_limit=<a number> is refused with the fix."""
    with pytest.raises(ConfigurationError, match=r"RateLimit\(rate="):
        LambdaAdapter("dice", "us-east-1", "dice", rate_limit=10)  # type: ignore[arg-type]


async def test_per_user_buckets_in_an_adapter_are_bounded() -> None:
    """An adapter keeps at most max_keys user buckets; a forgotten user starts full."""
    clock = FakeClock()
    adapter, _ = limited(RateLimit(per_user=Limit(0.001, burst=1), max_keys=3), clock)
    for user in ["a", "b", "c", "d"]:
        assert (await adapter.execute_async(request(user))).success
    [policy] = [p for p in adapter.policies if isinstance(p, RateLimitPolicy)]
    assert isinstance(policy.store, MemoryBucketStore) and len(policy.store) == 3
    assert (await adapter.execute_async(request("d"))).error_code == "rate_limited"
    assert (await adapter.execute_async(request("a"))).success  # evicted, so full again
