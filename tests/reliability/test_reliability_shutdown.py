"""Cancellation and shutdown under load: nothing is left behind.

Thousands of ``execute_async`` calls are cancelled while in flight (some on the wire, most
waiting for a pooled connection), and ``aclose()`` is called in the middle of a load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from module_sdk import ExecuteRequest, ExecuteResponse
from module_sdk.adapters import LambdaAdapter
from module_sdk.aws_lambda.clients import ClientPool
from module_sdk.errors import InvocationError
from module_sdk.resilience.pipeline import Invocation
from module_sdk.testing import Reply, ScriptedLambdaServer
from support.reliability import FULL, Resources, profile_from_env, resources, settled

FULL_SIZE = profile_from_env() is FULL
CALLS = 5000 if FULL_SIZE else 1000
"""Calls cancelled at once (``RELIABILITY_PROFILE=full``: 5,000; botocore signs each one
before it waits for a connection, a few ms of CPU apiece, so the default run keeps 1,000)."""
LOAD = 2000 if FULL_SIZE else 500
"""Calls in flight when ``aclose()`` is called."""
POOL = 64


class Finishes:
    """An observer counting how calls ended, by error code."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()

    def on_start(self, invocation: Invocation) -> None:
        """Nothing to do at the start."""

    def on_attempt(self, invocation: Invocation) -> None:
        """Nothing to do per attempt."""

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Nothing to do per retry."""

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Count how the call ended."""
        self.codes[response.error_code or "success"] += 1


def request(index: int) -> ExecuteRequest:
    """A chat command with its own session id."""
    return ExecuteRequest("!roll", ["2d6"], "u1", "e1", "c1", f"s-{index}", "twitch")


async def warm_baseline(url: str, pool: ClientPool) -> Resources:
    """Make one call with a throw-away adapter first, so the baseline holds what any first
    call creates once per process (botocore's models, the loop's resolver thread)."""
    async with LambdaAdapter("dice", "us-east-1", "dice", endpoint_url=url, pool=pool) as warm:
        response = await warm.execute_async(request(-100))
    assert response.success
    return await settled(None, 10.0)


async def quiet(baseline: Resources, timeout: float = 10.0) -> Resources:
    """Measure once sockets and tasks are back at ``baseline`` (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        now = resources()
        if (now.sockets <= baseline.sockets and now.tasks <= baseline.tasks) or (
            time.monotonic() >= deadline
        ):
            return now
        await asyncio.sleep(0.05)


async def test_cancelling_thousands_of_calls_leaves_nothing_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Thousands of cancelled calls: all raise CancelledError, observers see each end, and no
    task, thread, socket or client is left over."""
    caplog.set_level(logging.ERROR, logger="module_sdk")
    pool = ClientPool()
    async with ScriptedLambdaServer(default=lambda e: Reply.slow(60.0, Reply.ok({}))) as server:
        server.script("dice", Reply.ok({"success": True}))
        baseline = await warm_baseline(server.url, pool)
        finishes = Finishes()
        adapter = LambdaAdapter(
            "dice",
            "us-east-1",
            "dice",
            endpoint_url=server.url,
            max_connections=POOL,
            connect_timeout=120,  # signing thousands of calls starves the loop for seconds
            observers=[finishes],
            pool=pool,
        )
        tasks = [asyncio.create_task(adapter.execute_async(request(i))) for i in range(CALLS)]
        # Cancel while calls are at every stage: on the wire, waiting for a pooled connection,
        # being signed, not yet started.
        async with asyncio.timeout(120):
            await server.received(1 + POOL // 4)
        on_the_wire = server.count() - 1
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert POOL // 4 <= on_the_wire <= POOL  # the pool bounds the wire
        assert finishes.codes == {"cancelled": CALLS}
        assert adapter.get_health_status()["in_flight"] == 0
        await adapter.aclose()
        assert pool.open_clients() == 0
        after = await quiet(baseline)
    assert after.sockets == baseline.sockets
    assert after.tasks == baseline.tasks
    assert after.other_threads == baseline.other_threads
    assert after.fds == baseline.fds


async def test_aclose_during_load_finishes_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``aclose()`` with hundreds of calls in flight lets them finish (each gets exactly one
    ExecuteResponse, never an exception), then closes: no client, socket or task is left."""
    caplog.set_level(logging.CRITICAL, logger="module_sdk")
    pool = ClientPool()
    async with ScriptedLambdaServer(
        default=lambda e: Reply.slow(0.05, Reply.ok({"success": True}))
    ) as server:
        baseline = await warm_baseline(server.url, pool)
        adapter = LambdaAdapter(
            "dice",
            "us-east-1",
            "dice",
            endpoint_url=server.url,
            max_connections=POOL,
            max_retries=1,
            initial_retry_delay=0.001,
            max_retry_delay=0.01,
            pool=pool,
            invocation_type="Event",
            dead_letter=tmp_path / "dlq.sqlite3",
        )
        tasks = [asyncio.create_task(adapter.execute_async(request(i))) for i in range(LOAD)]
        async with asyncio.timeout(10):
            await server.received(POOL * 2 + 1)
        async with asyncio.timeout(30):
            await adapter.aclose()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert pool.open_clients() == 0  # no retry reopened a client behind aclose()
        late = await adapter.execute_async(request(-1))  # reopens; closed again below
        await adapter.aclose()
        assert pool.open_clients() == 0
        after = await quiet(baseline)
    assert all(isinstance(r, ExecuteResponse) for r in results)
    codes = Counter(r.error_code or "success" for r in results if isinstance(r, ExecuteResponse))
    assert codes == {"success": LOAD}  # aclose() let the calls in flight finish first
    assert isinstance(late, ExecuteResponse)
    assert after.other_threads == baseline.other_threads
    assert after.sockets == baseline.sockets
    assert after.tasks == baseline.tasks
    assert after.fds == baseline.fds
