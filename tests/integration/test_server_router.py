"""The module server driven by a router-faithful client, in front of the local Lambda runtime.

WaddleBot's router re-sends the same body with the same session_id after its per-attempt
timeout, a connection error or a non-JSON reply. Each test here counts how often the
function really ran for one chat command.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from module_sdk.local import LocalLambdaRuntime
from module_sdk.server import ModuleServer, parse_config
from module_sdk.testing import RedisServer
from support.router import FlakyProxy, RouterClient, router_body
from support.serve import start_serve

KEY = "router-test-key-0123456789abcdef"


def counting_function(runs: Path, seconds: float) -> str:
    """A handler that records each run's request_id in ``runs``, then takes ``seconds``."""
    return f"""
import time

def handler(event, context):
    with open({str(runs)!r}, "a", encoding="utf-8") as log:
        log.write(event["request_id"] + "\\n")
    time.sleep({seconds!r})
    return {{"success": True, "message": "drawn: viewer-%s in %s (%s)" % (
        event["user"]["id"], event["community"]["id"], event["trigger"]["context_text"])}}
"""


def runs_of(runs: Path) -> dict[str, int]:
    """How often the function ran, per request_id."""
    counts: dict[str, int] = {}
    if runs.exists():
        for line in runs.read_text(encoding="utf-8").split():
            counts[line] = counts.get(line, 0) + 1
    return counts


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalLambdaRuntime]:
    """The local runtime with a 2.5 s ``raffle``, a 0.8 s ``wheel`` and an instant ``points``."""
    functions = tmp_path / "functions"
    functions.mkdir()
    (functions / "raffle.py").write_text(counting_function(tmp_path / "runs.txt", 2.5))
    (functions / "points.py").write_text(counting_function(tmp_path / "runs.txt", 0.0))
    (functions / "wheel.py").write_text(counting_function(tmp_path / "runs.txt", 0.8))
    (functions / "functions.toml").write_text(
        "[functions.raffle]\ntimeout = 10\n[functions.points]\ntimeout = 10\n"
        "[functions.wheel]\ntimeout = 10\n"
    )
    async with LocalLambdaRuntime(functions, port=0, prewarm=1) as runtime:
        yield runtime


def server_config(runtime: LocalLambdaRuntime, **server: Any) -> Any:
    """Two modules on the local runtime, no retries inside the adapter."""
    return parse_config(
        {
            "service_api_key": KEY,
            "server": server,
            "aws": {"region": "us-east-1", "endpoint_url": runtime.url, "max_retries": 0},
            "modules": [
                {"name": "raffle", "commands": ["!raffle"]},
                {"name": "points", "commands": ["!give"]},
            ],
        },
        env={},
    )


async def test_a_slow_function_runs_once_for_the_routers_resends(
    runtime: LocalLambdaRuntime, tmp_path: Path
) -> None:
    """A 2.5 s function behind a 1 s router timeout: the re-send gets the first run's answer."""
    body = router_body("!raffle   draw", community_id=1)
    async with (
        ModuleServer(server_config(runtime), host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        router = RouterClient(session, timeout=1.0, service_key=KEY)
        outcome = await router.execute(server.url, body)
    # Normally ["timeout", "200"]; a loaded machine may need the third attempt (at 5 s).
    assert outcome.attempts in (["timeout", "200"], ["timeout", "timeout", "200"])
    assert outcome.sleeps == [1.0, 2.0][: len(outcome.attempts) - 1]
    assert outcome.response is not None
    assert outcome.response["success"] is True
    # The router's int community_id and one-string args reach the function.
    assert outcome.response["message"] == "drawn: viewer-123456789 in 1 (draw)"
    assert runs_of(tmp_path / "runs.txt") == {body["session_id"]: 1}


@pytest.mark.parametrize("mode", ["drop", "html"], ids=["connection-error", "non-json-reply"])
async def test_a_lost_answer_is_served_again_without_a_second_run(
    runtime: LocalLambdaRuntime, tmp_path: Path, mode: str
) -> None:
    """The first answer is lost on the way back; the re-send gets the stored one."""
    body = router_body("!give 100 points")
    async with (
        ModuleServer(server_config(runtime), host="127.0.0.1", port=0) as server,
        FlakyProxy(server.url, mode=mode) as proxy,
        aiohttp.ClientSession() as session,
    ):
        router = RouterClient(session, timeout=5.0, service_key=KEY)
        outcome = await router.execute(proxy.url, body)
    assert outcome.attempts == [{"drop": "connection", "html": "not_json"}[mode], "200"]
    assert outcome.response is not None and outcome.response["success"] is True
    assert proxy.forwarded == 2
    assert runs_of(tmp_path / "runs.txt") == {body["session_id"]: 1}


async def test_without_the_guard_every_resend_runs_the_function(
    runtime: LocalLambdaRuntime, tmp_path: Path
) -> None:
    """resend_ttl = 0 turns the guard off: the router's three attempts run it three times."""

    async def quick(seconds: float) -> None:
        await asyncio.sleep(0.01)  # the router's 1 s / 2 s sleeps, shortened

    body = router_body("!raffle draw")
    async with (
        ModuleServer(server_config(runtime, resend_ttl=0), host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        router = RouterClient(session, timeout=0.5, service_key=KEY, sleep=quick)
        outcome = await router.execute(server.url, body)
        # Each abandoned run goes on in the runtime; wait for all three to be recorded.
        for _ in range(1500):
            if runs_of(tmp_path / "runs.txt").get(body["session_id"], 0) >= 3:
                break
            await asyncio.sleep(0.01)
    assert outcome.attempts == ["timeout", "timeout", "timeout"]
    assert outcome.response is None
    assert runs_of(tmp_path / "runs.txt") == {body["session_id"]: 3}


async def test_a_busy_answer_is_retried_by_the_router_and_runs_once(
    runtime: LocalLambdaRuntime, tmp_path: Path
) -> None:
    """A 429 (max_in_flight) is not stored: the router's backoff retry runs the command."""
    config = parse_config(
        {
            "service_api_key": KEY,
            "aws": {"region": "us-east-1", "endpoint_url": runtime.url, "max_retries": 0},
            "modules": [{"name": "wheel", "commands": ["!spin"], "max_in_flight": 1}],
        },
        env={},
    )
    first, second = router_body("!spin"), router_body("!spin")
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        router = RouterClient(session, timeout=5.0, service_key=KEY)
        running = asyncio.ensure_future(router.execute(server.url, first))
        while not runs_of(tmp_path / "runs.txt"):
            await asyncio.sleep(0.01)
        later = await router.execute(server.url, second)
        earlier = await running
    assert earlier.attempts == ["200"]
    assert later.attempts[0] == "429" and later.attempts[-1] == "200"  # 429 once or twice
    assert later.sleeps == [1.0, 2.0][: len(later.attempts) - 1]
    assert runs_of(tmp_path / "runs.txt") == {first["session_id"]: 1, second["session_id"]: 1}


async def test_distinct_commands_each_run(runtime: LocalLambdaRuntime, tmp_path: Path) -> None:
    """The guard keys on the session_id: two commands with the same text both run."""
    first, second = router_body("!give 5"), router_body("!give 5")
    async with (
        ModuleServer(server_config(runtime), host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        router = RouterClient(session, timeout=5.0, service_key=KEY)
        outcomes = [await router.execute(server.url, b) for b in (first, second)]
    assert [o.attempts for o in outcomes] == [["200"], ["200"]]
    assert runs_of(tmp_path / "runs.txt") == {first["session_id"]: 1, second["session_id"]: 1}


async def test_a_resent_event_is_queued_once(runtime: LocalLambdaRuntime, tmp_path: Path) -> None:
    """An Event module's accepted answer is lost; the re-send does not queue the event again."""
    config = parse_config(
        {
            "service_api_key": KEY,
            "aws": {"region": "us-east-1", "endpoint_url": runtime.url, "max_retries": 0},
            "modules": [{"name": "points", "commands": ["!give"], "invocation_type": "Event"}],
        },
        env={},
    )
    body = router_body("!give 100 points")
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as server,
        FlakyProxy(server.url, mode="drop") as proxy,
        aiohttp.ClientSession() as session,
    ):
        outcome = await RouterClient(session, timeout=5.0, service_key=KEY).execute(proxy.url, body)
        await runtime.wait_for_events(10)
    assert outcome.attempts == ["connection", "200"]
    assert outcome.response is not None and outcome.response["success"] is True
    assert runs_of(tmp_path / "runs.txt") == {body["session_id"]: 1}


@contextlib.asynccontextmanager
async def serve_process(config: Path, redis_url: str) -> AsyncIterator[str]:
    """``waddlebot-lambda serve`` in its own process (REDIS_URL from the environment)."""
    process, url, _ = await start_serve(config, env={"REDIS_URL": redis_url})
    try:
        yield url
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_resends_landing_on_another_replica_run_once(
    runtime: LocalLambdaRuntime, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two server processes sharing a real Redis, re-sends spread between them: one run each."""
    config = tmp_path / "modules.toml"
    config.write_text(
        f'service_api_key = "{KEY}"\n'
        f'[redis]\nprefix = "replicas-{uuid.uuid4().hex[:8]}:"\n'
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{runtime.url}"\nmax_retries = 0\n'
        '[[modules]]\nname = "raffle"\ncommands = ["!raffle"]\n'
        '[[modules]]\nname = "points"\ncommands = ["!give"]\n',
        encoding="utf-8",
    )
    bodies = [router_body("!raffle draw"), router_body("!give 5"), router_body("!give 7")]
    async with (
        serve_process(config, redis_server.url) as first,
        serve_process(config, redis_server.url) as second,
        aiohttp.ClientSession() as session,
    ):
        # The slow raffle times out on the first replica; the re-send lands on the second.
        async with FlakyProxy(first, second, mode="pass") as proxy:
            slow = await RouterClient(session, timeout=1.0, service_key=KEY).execute(
                proxy.url, bodies[0]
            )
        lost = []
        for mode, body in zip(("drop", "html"), bodies[1:], strict=True):
            async with FlakyProxy(first, second, mode=mode) as proxy:
                lost.append(
                    await RouterClient(session, timeout=5.0, service_key=KEY).execute(
                        proxy.url, body
                    )
                )
    assert slow.attempts in (["timeout", "200"], ["timeout", "timeout", "200"])
    assert [o.attempts for o in lost] == [["connection", "200"], ["not_json", "200"]]
    assert all(o.response and o.response["success"] for o in (slow, *lost))
    assert runs_of(tmp_path / "runs.txt") == {b["session_id"]: 1 for b in bodies}
