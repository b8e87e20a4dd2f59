"""The re-send guard across replicas: in-flight markers and stored answers in a real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from module_sdk.resilience.redis_state import RedisState
from module_sdk.server._resend import Answer, RedisResendStore, ResendGuard
from module_sdk.testing import FakeClock, RedisServer

OK = Answer(200, '{"success": true, "message": "drawn"}')


class PollClock(FakeClock):
    """A fake clock that tells when a waiting replica has polled Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.polled = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.polled.set()
        await super().sleep(seconds)


class Module:
    """Counts runs (across the replicas of one test); answers when released."""

    def __init__(self, answer: Answer = OK) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.answer = answer

    async def __call__(self) -> Answer:
        self.runs += 1
        await self.release.wait()
        return self.answer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A redis-py client of the test server."""
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def replica(client: Any, prefix: str, clock: FakeClock | None = None) -> ResendGuard:
    """One server replica's guard (its own memory, the shared Redis)."""
    return ResendGuard(
        shared=RedisResendStore(RedisState(client=client, prefix=prefix)),
        clock=clock or FakeClock(),
    )


@pytest.fixture
def prefix() -> str:
    """Keys no other test uses."""
    return f"test-{uuid.uuid4().hex[:8]}:"


async def test_a_resend_on_another_replica_waits_for_the_first_run(
    client: Any, prefix: str
) -> None:
    """Replica B sees A's in-flight marker, waits, and answers with A's result."""
    clock = PollClock()
    a, b = replica(client, prefix), replica(client, prefix, clock)
    module = Module()
    first = asyncio.ensure_future(a.run("raffle", "sess_1", module, wait_limit=30))
    while module.runs == 0:
        await asyncio.sleep(0)
    second = asyncio.ensure_future(b.run("raffle", "sess_1", module, wait_limit=30))
    await clock.polled.wait()
    module.release.set()
    assert await first == (OK, None)
    assert await second == (OK, "in_flight")
    assert module.runs == 1


async def test_a_resend_after_the_run_gets_the_stored_answer_anywhere(
    client: Any, prefix: str
) -> None:
    """After A answered, B (and A) answer re-sends from the stored answer; it expires in Redis."""
    a, b = replica(client, prefix), replica(client, prefix)
    module = Module()
    module.release.set()
    await a.run("raffle", "sess_1", module, wait_limit=30)
    assert await b.run("raffle", "sess_1", module, wait_limit=30) == (OK, "stored")
    assert module.runs == 1
    ttl = await client.pttl(f"{prefix}resend:raffle:sess_1")
    assert 119_000 < ttl <= 120_000


async def test_a_busy_answer_frees_the_key_for_the_routers_retry(client: Any, prefix: str) -> None:
    """A 429 is not stored: the retry on another replica runs the module."""
    a, b = replica(client, prefix), replica(client, prefix)
    busy = Module(Answer(429, '{"success": false}', retry_after=True))
    busy.release.set()
    assert (await a.run("raffle", "sess_1", busy, wait_limit=30))[0].status == 429
    module = Module()
    module.release.set()
    assert await b.run("raffle", "sess_1", module, wait_limit=30) == (OK, None)
    assert (busy.runs, module.runs) == (1, 1)


async def test_a_dead_replicas_marker_expires_and_the_resend_runs(client: Any, prefix: str) -> None:
    """A marker whose owner died goes away after its TTL; the waiting re-send then runs it."""
    key = f"{prefix}resend:raffle:sess_1"
    await client.set(key, "r:dead-replica", px=300)
    module = Module()
    module.release.set()
    guard = ResendGuard(
        shared=RedisResendStore(RedisState(client=client, prefix=prefix), poll_interval=0.05)
    )
    assert await guard.run("raffle", "sess_1", module, wait_limit=10) == (OK, None)
    assert module.runs == 1


async def test_a_resend_waits_no_longer_than_its_limit(client: Any, prefix: str) -> None:
    """Another replica still running past the wait limit: 429 busy, the module not run."""
    await client.set(f"{prefix}resend:raffle:sess_1", "r:other", px=60_000)
    module = Module()
    clock = FakeClock()
    guard = replica(client, prefix, clock)
    answer, hit = await guard.run("raffle", "sess_1", module, wait_limit=2)
    assert (answer.status, answer.retry_after, hit) == (429, True, "in_flight")
    assert '"error_code": "busy"' in answer.body
    assert module.runs == 0
    assert sum(clock.sleeps) == pytest.approx(2.0)


async def test_redis_down_fails_open_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Unreachable Redis: every command still runs (once per replica), one warning per 10 s."""
    down = RedisState("redis://:s3cret@127.0.0.1:1/0", socket_timeout=0.2)
    guard = ResendGuard(shared=RedisResendStore(down))
    module = Module()
    module.release.set()
    caplog.set_level(logging.WARNING)
    try:
        for session in ("s1", "s2", "s1"):
            answer, _ = await guard.run("raffle", session, module, wait_limit=5)
            assert answer == OK
    finally:
        await down.aclose()
    assert module.runs == 2  # s1's re-send still answered from this replica's memory
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "failing open" in warnings[0]
    assert "s3cret" not in caplog.text
