"""Shared policy state in a real Redis server that these tests start on a free port.

The same scenarios run against the in-process state and Redis; the Lua breaker is checked
step by step against the in-process state machine; and two adapters in two separate
processes are shown to share one rate budget and one circuit breaker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from module_sdk import ConfigurationError, ExecuteRequest, LambdaAdapter
from module_sdk.errors import ErrorCode, InvocationError
from module_sdk.resilience.breaker import (
    BreakerState,
    CircuitBreakerConfig,
    CircuitState,
    Outcome,
)
from module_sdk.resilience.cache import ResponseCacheConfig
from module_sdk.resilience.ratelimit import BucketSpec, Limit, MemoryBucketStore, RateLimit
from module_sdk.resilience.redis_state import RedisState
from module_sdk.testing import FakeClock, HandlerInvoker, RedisServer

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
async def state(redis_server: RedisServer) -> AsyncIterator[RedisState]:
    """A RedisState with a key prefix no other test uses."""
    shared = RedisState(redis_server.url, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    yield shared
    await shared.aclose()


def request(user: str = "u-1", command: str = "!roll", session: str = "s-1") -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest(
        command=command,
        args=["2d6"],
        user_id=user,
        entity_id="e-1",
        community_id="c-1",
        session_id=session,
        platform="twitch",
    )


class Switch(HandlerInvoker):
    """An in-process function that is down (503) while ``down`` is True; counts calls."""

    def __init__(self) -> None:
        super().__init__(lambda event, context: {"success": True, "message": "ok"})
        self.down = False
        self.attempts = 0

    async def invoke(self, call: Any) -> Any:
        self.attempts += 1
        if self.down:
            raise InvocationError("down", error_code=ErrorCode.SERVICE_ERROR, retryable=True)
        return await super().invoke(call)


def backends(state: RedisState) -> dict[str, RedisState | None]:
    """The two places state can live."""
    return {"memory": None, "redis": state}


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_breaker_cycle_on_both_backends(state: RedisState, backend: str) -> None:
    """closed -> open -> (cool-down) -> half-open trial -> closed, on either backend."""
    clock = FakeClock()
    switch = Switch()
    adapter = LambdaAdapter(
        f"fn-{uuid.uuid4().hex[:8]}",
        "us-east-1",
        "dice",
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=2, open_duration=10.0),
        state=backends(state)[backend],
        invoker=switch,
        clock=clock,
    )
    switch.down = True
    for _ in range(2):
        assert (await adapter.execute_async(request())).error_code == "service_error"
    assert adapter.get_health_status()["circuit_state"] == "open"
    refused = await adapter.execute_async(request())
    assert refused.error_code == "circuit_open"
    assert switch.attempts == 2
    clock.advance(10.0)
    switch.down = False
    assert (await adapter.execute_async(request())).success
    assert adapter.get_health_status()["circuit_state"] == "closed"
    assert switch.attempts == 3


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_rate_limit_on_both_backends(state: RedisState, backend: str) -> None:
    """Reject, refill and wait behave the same in memory and in Redis."""
    clock = FakeClock()
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        rate_limit=RateLimit(
            rate=2.0, burst=2, per_user=Limit(1.0, burst=1), mode="wait", max_wait=0.6
        ),
        state=backends(state)[backend],
        invoker=Switch(),
        clock=clock,
    )
    assert (await adapter.execute_async(request("alice"))).success
    refused = await adapter.execute_async(request("alice"))  # alice's bucket: 1 s away
    assert refused.error_code == "rate_limited"
    assert refused.error is not None
    assert "1.00s" in refused.error
    assert (await adapter.execute_async(request("bob"))).success
    waited = await adapter.execute_async(request("carol"))  # adapter bucket: 0.5 s away
    assert waited.success
    assert clock.sleeps == [pytest.approx(0.5)]


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_cache_expiry_on_both_backends(state: RedisState, backend: str) -> None:
    """A cached reply is served until its TTL on the fake clock, then refreshed."""
    clock = FakeClock()
    switch = Switch()
    adapter = LambdaAdapter(
        f"fn-{uuid.uuid4().hex[:8]}",
        "us-east-1",
        "dice",
        cache=ResponseCacheConfig(commands={"!help": 30}),
        state=backends(state)[backend],
        invoker=switch,
        clock=clock,
    )
    first = await adapter.execute_async(request(command="!help", session="a"))
    hit = await adapter.execute_async(request(command="!help", session="b"))
    assert not first.data
    assert not hit.data
    assert hit.diagnostics is not None and hit.diagnostics.cache_hit is True
    clock.advance(30.0)
    fresh = await adapter.execute_async(request(command="!help", session="c"))
    assert not fresh.data
    assert switch.attempts == 2


async def test_lua_breaker_matches_the_reference_state_machine(state: RedisState) -> None:
    """A random walk of asks and outcomes gives the same answers in Lua and in Python."""
    config = CircuitBreakerConfig(
        failure_rate_threshold=0.4,
        window_size=6,
        minimum_calls=4,
        consecutive_failures=4,
        open_duration=5.0,
        half_open_max_calls=2,
    )
    reference = BreakerState()
    store = state.breaker_store()
    rng = random.Random(7)
    now = 1_000.0
    trials: list[bool] = []
    for step in range(300):
        now += rng.choice([0.0, 0.5, 1.0, 3.0])
        if rng.random() < 0.5 or not trials:
            expected = reference.allow(config, now)
            got = await store.allow("walk", config, now)
            assert got == expected, f"step {step}: allow"
            if got.allowed:
                trials.append(got.trial)
        else:
            trial = trials.pop(rng.randrange(len(trials)))
            outcome = rng.choice(
                [Outcome.SUCCESS, Outcome.FAILURE, Outcome.FAILURE, Outcome.IGNORED]
            )
            expected_state = reference.record(config, now, outcome, trial)
            got_state = await store.record("walk", config, now, outcome, trial)
            assert got_state is expected_state, f"step {step}: record {outcome} {trial}"
    assert await store.state("walk") is reference.state


async def test_lua_buckets_match_the_memory_store(state: RedisState) -> None:
    """A random walk of multi-bucket takes gives the same grants in Lua and in the in-process
    store every in-process adapter uses."""
    memory = MemoryBucketStore()
    redis_store = state.bucket_store()
    specs = [
        BucketSpec("{walk}", Limit(3.0, 5.0)),
        BucketSpec("{walk}:user:a", Limit(1.0, 2.0), keyed=True),
        BucketSpec("{walk}:user:b", Limit(0.5, 1.0), keyed=True),
    ]
    rng = random.Random(3)
    now = 5_000.0
    for step in range(200):
        now += rng.choice([0.0, 0.1, 0.25, 1.0])
        chosen = [specs[0], rng.choice(specs[1:])]
        max_wait = rng.choice([0.0, 0.0, 0.5, 2.0])
        expected = await memory.acquire(chosen, now, max_wait)
        got = await redis_store.acquire(chosen, now, max_wait)
        assert got.granted == expected.granted, f"step {step}"
        assert got.wait == pytest.approx(expected.wait, abs=1e-9), f"step {step}"


async def test_unreachable_redis_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    """With Redis down the call still goes through, and a warning says why."""
    dead = RedisState("redis://127.0.0.1:1/0", socket_timeout=0.5)
    switch = Switch()
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        circuit_breaker=True,
        rate_limit=RateLimit(rate=1),
        cache=ResponseCacheConfig(commands={"!roll": 5}),
        state=dead,
        invoker=switch,
        clock=FakeClock(),
    )
    with caplog.at_level(logging.WARNING):
        assert (await adapter.execute_async(request())).success
    await dead.aclose()
    assert switch.attempts == 1
    assert "failing open" in caplog.text
    assert "127.0.0.1:1" not in repr(dead)


_WORKER = r"""
import asyncio, json, sys, time
from module_sdk import ConfigurationError, ExecuteRequest, LambdaAdapter
from module_sdk.errors import ErrorCode, InvocationError
from module_sdk.resilience.breaker import CircuitBreakerConfig
from module_sdk.resilience.ratelimit import RateLimit
from module_sdk.resilience.redis_state import RedisState
from module_sdk.testing import FakeClock, HandlerInvoker

url, prefix, role = sys.argv[1], sys.argv[2], sys.argv[3]

class Invoker(HandlerInvoker):
    def __init__(self, down):
        super().__init__(lambda event, context: {"success": True})
        self.down, self.attempts = down, 0
    async def invoke(self, call):
        self.attempts += 1
        if self.down:
            raise InvocationError("down", error_code=ErrorCode.SERVICE_ERROR, retryable=True)
        return await super().invoke(call)

async def calls(adapter, n):
    codes = []
    for i in range(n):
        request = ExecuteRequest("!roll", [], "u", "e", "c", f"{role}-{i}", "twitch")
        codes.append((await adapter.execute_async(request)).error_code)
    return codes

async def main():
    state = RedisState(url, prefix=prefix)
    # 1. Both processes at once: one shared bucket of 10 tokens (no refill to speak of).
    limited = Invoker(down=False)
    rl = LambdaAdapter(
        "rl-fn", "us-east-1", "dice", rate_limit=RateLimit(rate=0.001, burst=10, name="shared"),
        state=state, invoker=limited, clock=FakeClock(),
    )
    rl_codes = await calls(rl, 8)
    # 2. "trip" makes the function's breaker open; "watch" waits for that, then calls.
    invoker = Invoker(down=(role == "trip"))
    cb = LambdaAdapter(
        "cb-fn", "us-east-1", "dice", max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=3, open_duration=60),
        state=state, invoker=invoker, clock=FakeClock(),
    )
    if role == "watch":
        await state.client.blpop([prefix + "tripped"], timeout=30)  # blocks, no polling
    cb_codes = await calls(cb, 3 if role == "trip" else 4)
    if role == "trip":
        await state.client.rpush(prefix + "tripped", "1")
    await state.aclose()
    print(json.dumps({
        "rl_codes": rl_codes, "rl_attempts": limited.attempts,
        "cb_codes": cb_codes, "cb_attempts": invoker.attempts,
        "circuit": cb.get_health_status()["circuit_state"],
    }))

asyncio.run(main())
"""


async def run_worker(url: str, prefix: str, role: str) -> dict[str, Any]:
    """Run the worker in a separate Python process and return what it saw."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        url,
        prefix,
        role,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_two_processes_share_one_rate_budget_and_one_breaker(
    redis_server: RedisServer,
) -> None:
    """Adapters in two processes share a 10-token burst, and one's open breaker stops the other."""
    prefix = f"mp-{uuid.uuid4().hex[:8]}:"
    trip, watch = await asyncio.gather(
        run_worker(redis_server.url, prefix, "trip"),
        run_worker(redis_server.url, prefix, "watch"),
    )
    rl_codes = trip["rl_codes"] + watch["rl_codes"]
    assert rl_codes.count(None) == 10
    assert rl_codes.count("rate_limited") == 6
    assert trip["rl_attempts"] + watch["rl_attempts"] == 10
    assert trip["cb_codes"] == ["service_error"] * 3
    assert trip["circuit"] == "open"
    assert watch["cb_codes"] == ["circuit_open"] * 4
    assert watch["cb_attempts"] == 0
    assert watch["circuit"] == "open"


async def test_breaker_state_and_reset(state: RedisState) -> None:
    """The stored state can be read and reset by key."""
    store = state.breaker_store()
    config = CircuitBreakerConfig(consecutive_failures=1)
    await store.record("k", config, 1.0, Outcome.FAILURE, False)
    assert await store.state("k") is CircuitState.OPEN
    await store.reset("k")
    assert await store.state("k") is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "exactly one of url"),
        ({"url": "http://127.0.0.1:6379"}, "redis://"),
        ({"url": "redis://127.0.0.1:1/0", "prefix": 5}, "prefix"),
    ],
    ids=["nothing", "not-redis-url", "bad-prefix"],
)
def test_bad_redis_state_settings(kwargs: dict[str, Any], fragment: str) -> None:
    """RedisState refuses bad settings with the fix in the message."""
    with pytest.raises(ConfigurationError, match=fragment):
        RedisState(**kwargs)


def test_adapter_refuses_a_state_that_is_not_a_backend() -> None:
    """state= must be a backend such as RedisState (a URL string is refused by name)."""
    with pytest.raises(ConfigurationError, match="RedisState"):
        LambdaAdapter(
            "dice",
            "us-east-1",
            "dice",
            circuit_breaker=True,
            state="redis://127.0.0.1:6379",  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("is_root", [False, True])
def test_missing_redis_server_skips_only_where_it_cannot_be_installed(
    is_root: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No redis-server: a user without root gets a skip that says how to get the tests;
    root (CI, where make test installs it) gets a failure, never a silent skip."""
    from support.redis_server import MISSING, require_redis_server

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    if is_root:
        with pytest.raises(pytest.fail.Exception, match="make test` installs it"):
            require_redis_server(is_root=True)
    else:
        with pytest.raises(pytest.skip.Exception, match="sudo apt-get install redis-server"):
            require_redis_server(is_root=False)
        assert "skipped" in MISSING
