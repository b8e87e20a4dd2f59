"""The re-send guard in one process: single flight, stored answers, expiry, bounded memory."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from module_sdk.server import ModuleServer, parse_config
from module_sdk.server._resend import Answer, ResendGuard
from module_sdk.testing import FakeClock, ScriptedLambdaServer
from support.router import router_body


class Module:
    """A module that counts its runs and answers when released."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.answer = answer or Answer(200, '{"success": true}')

    async def __call__(self) -> Answer:
        self.runs += 1
        await self.release.wait()
        return self.answer


async def test_a_resend_while_running_waits_for_the_same_run() -> None:
    """Three arrivals of one command while it runs: one run, three identical answers."""
    guard = ResendGuard(clock=FakeClock())
    module = Module()
    calls = [
        asyncio.ensure_future(guard.run("m", "sess_1", module, wait_limit=30)) for _ in range(3)
    ]
    await asyncio.sleep(0)
    module.release.set()
    results = await asyncio.gather(*calls)
    assert module.runs == 1
    assert [hit for _, hit in results] == [None, "in_flight", "in_flight"]
    assert {answer for answer, _ in results} == {module.answer}


async def test_a_resend_after_the_run_gets_the_stored_answer_until_the_ttl() -> None:
    """A finished answer is served for ttl seconds, then the command would run again."""
    clock = FakeClock()
    guard = ResendGuard(ttl=120, clock=clock)
    module = Module()
    module.release.set()
    assert (await guard.run("m", "sess_1", module, wait_limit=30))[1] is None
    clock.advance(119.9)
    assert (await guard.run("m", "sess_1", module, wait_limit=30))[1] == "stored"
    clock.advance(0.2)
    assert (await guard.run("m", "sess_1", module, wait_limit=30))[1] is None
    assert module.runs == 2
    assert len(guard) == 1


async def test_the_key_is_module_and_session() -> None:
    """The same session_id for two modules (or two sessions) runs each."""
    guard = ResendGuard(clock=FakeClock())
    module = Module()
    module.release.set()
    for name, session in [("a", "s1"), ("b", "s1"), ("a", "s2")]:
        assert (await guard.run(name, session, module, wait_limit=30))[1] is None
    assert module.runs == 3


@pytest.mark.parametrize("status", [429, 500, 503], ids=["busy", "internal", "unavailable"])
async def test_answers_that_ask_for_a_retry_are_not_stored(status: int) -> None:
    """A 429 (or 5xx) is not final: the router's retry of it runs the module."""
    guard = ResendGuard(clock=FakeClock())
    module = Module(Answer(status, '{"success": false}', retry_after=status == 429))
    module.release.set()
    for _ in range(2):
        answer, hit = await guard.run("m", "s", module, wait_limit=30)
        assert (answer.status, hit) == (status, None)
    assert module.runs == 2
    assert len(guard) == 0


async def test_memory_is_bounded_oldest_first() -> None:
    """Past max_bytes the oldest stored answers are dropped."""
    guard = ResendGuard(max_bytes=1000, clock=FakeClock())
    module = Module(Answer(200, "x" * 200))
    module.release.set()
    for i in range(10):
        await guard.run("m", f"s{i}", module, wait_limit=30)
    assert guard.stored_bytes <= 1000
    assert len(guard) == 3  # 3 x (200 + 64) bytes
    assert (await guard.run("m", "s9", module, wait_limit=30))[1] == "stored"
    assert (await guard.run("m", "s0", module, wait_limit=30))[1] is None


async def test_a_failed_run_fails_every_waiter_and_is_not_stored() -> None:
    """An exception reaches the requests that waited for it; the next arrival runs again."""
    guard = ResendGuard(clock=FakeClock())
    runs = 0

    async def broken() -> Answer:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        raise RuntimeError("bug")

    calls = [asyncio.ensure_future(guard.run("m", "s", broken, wait_limit=1)) for _ in range(2)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await guard.run("m", "s", broken, wait_limit=1)
    assert runs == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_run() -> None:
    """The router's timeout closes the first request; the run goes on and is stored."""
    guard = ResendGuard(clock=FakeClock())
    module = Module()
    first = asyncio.ensure_future(guard.run("m", "s", module, wait_limit=30))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    module.release.set()
    answer, hit = await guard.run("m", "s", module, wait_limit=30)
    assert (answer, hit, module.runs) == (module.answer, "in_flight", 1)


async def test_cancel_stops_the_runs_still_going() -> None:
    """At shutdown past the grace period the guard cancels what still runs."""
    guard = ResendGuard(clock=FakeClock())
    module = Module()
    call = asyncio.ensure_future(guard.run("m", "s", module, wait_limit=30))
    await asyncio.sleep(0)
    await guard.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert len(guard) == 0


async def test_resend_answers_are_counted_and_logged(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A re-send answered from the stored run shows in /metrics and in the log (resend=...)."""
    config = parse_config(
        {
            "service_api_key": "resend-test-key-0123456789abcdef",
            "aws": {"region": "us-east-1", "endpoint_url": scripted.url, "max_retries": 0},
            "modules": [{"name": "dice", "function": "dice", "commands": ["!roll"]}],
        },
        env={},
    )
    body = router_body("!roll 2d6")
    caplog.set_level(logging.INFO, logger="module_sdk.server.app")
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession(headers={"X-Service-Key": config.service_api_key or ""}) as session,
    ):
        answers = []
        for _ in range(2):
            async with session.post(server.url + "/api/v1/execute", json=body) as reply:
                answers.append(await reply.json())
        async with session.get(server.url + "/metrics") as reply:
            lines = set((await reply.text()).splitlines())
    assert answers[0] == answers[1]
    assert scripted.count() == 1
    assert (
        'waddlebot_lambda_server_resend_answers_total{module="dice",source="stored"} 1.0' in lines
    )
    assert any(
        body["session_id"] in r.getMessage() and "resend=stored" in r.getMessage()
        for r in caplog.records
    )
