"""What a container operator sees: the bind address, /ready, the access log, error details."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from module_sdk.server import ModuleServer, parse_config, serve_until_stopped
from module_sdk.testing import Reply, ScriptedLambdaServer
from support.router import router_body

KEY = "operator-test-key-0123456789abcdef"
TRACE = {
    "errorMessage": "division by zero",
    "errorType": "ZeroDivisionError",
    "stackTrace": ['  File "/var/task/app.py", line 7, in handler\n    1 / 0\n'],
}


def config(endpoint: str, **server: Any) -> Any:
    """One module ``dice`` (log tails on) behind a key."""
    return parse_config(
        {
            "service_api_key": KEY,
            "server": server,
            "aws": {
                "region": "us-east-1",
                "endpoint_url": endpoint,
                "max_retries": 0,
                "log_type": "Tail",
            },
            "modules": [{"name": "dice", "function": "dice", "commands": ["!roll"]}],
        },
        env={},
    )


async def test_the_banner_shows_the_real_bind_address() -> None:
    """Listening on every interface is reported as 0.0.0.0, not as 127.0.0.1."""
    server = ModuleServer(config("http://127.0.0.1:1"), host="0.0.0.0", port=0)
    stop = asyncio.Event()
    seen: list[str] = []

    def ready(url: str) -> None:
        seen.append(url)
        stop.set()

    await serve_until_stopped(server, stop, on_ready=ready)
    assert seen == [f"http://0.0.0.0:{server.port}"]
    assert server.url == f"http://127.0.0.1:{server.port}"  # where this host can connect


async def test_ready_needs_no_key_and_turns_503_while_draining() -> None:
    """/ready is 200 for a configured server (probes send no key), 503 once it drains."""
    server = ModuleServer(config("http://127.0.0.1:1"), host="127.0.0.1", port=0)
    async with (
        server,
        aiohttp.ClientSession() as session,
        session.get(server.url + "/ready") as reply,
    ):
        status, body = reply.status, await reply.json()
    assert (status, body) == (200, {"status": "ready", "modules": ["dice"]})
    draining = ModuleServer(config("http://127.0.0.1:1"), host="127.0.0.1", port=0)
    await draining.aclose()  # never started: draining from the start
    async with TestClient(TestServer(draining.app)) as client:
        reply = await client.get("/ready")
        assert (reply.status, await reply.json()) == (503, {"status": "draining"})


@pytest.mark.parametrize("expose", [False, True], ids=["default", "opted-in"])
async def test_function_internals_reach_the_router_only_when_asked(
    scripted: ScriptedLambdaServer, expose: bool
) -> None:
    """Stack traces and log tails stay in the server unless expose_error_details is on."""
    scripted.script("dice", Reply.function_error(TRACE))
    scripted.script("dice", Reply.ok({"success": True}, log_tail="START /var/task/app.py"))
    server = ModuleServer(
        config(scripted.url, expose_error_details=expose), host="127.0.0.1", port=0
    )
    answers = []
    async with server, aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session:
        for _ in range(2):
            async with session.post(
                server.url + "/api/v1/execute", json=router_body("!roll")
            ) as reply:
                answers.append(await reply.json())
    failed, ok = answers
    assert failed["error"] == "ZeroDivisionError: division by zero"
    assert failed["error_code"] == "function_error"
    assert failed["data"]["error_type"] == "ZeroDivisionError"
    if expose:
        assert failed["data"]["stack_trace"] == TRACE["stackTrace"]
        assert ok["diagnostics"]["log_tail"] == "START /var/task/app.py"
    else:
        assert "stack_trace" not in failed["data"]
        assert "/var/task" not in json.dumps(answers)
        assert ok["diagnostics"]["log_tail"] is None


@pytest.mark.parametrize("style", ["plain", "json"])
async def test_one_access_log_line_per_request(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture, style: str
) -> None:
    """Each request logs one line with the ids, status, attempts and re-send hit; no secrets."""
    caplog.set_level(logging.INFO, logger="module_sdk.server.access")
    body = router_body("!roll 2d6 secret-arg")
    server = ModuleServer(config(scripted.url, access_log=style), host="127.0.0.1", port=0)
    async with server, aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session:
        for _ in range(2):
            async with session.post(server.url + "/api/v1/execute", json=body) as reply:
                assert reply.status == 200
        async with session.get(server.url + "/health", headers={}) as reply:
            assert reply.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "module_sdk.server.access"]
    assert len(lines) == 3
    sid = body["session_id"]
    if style == "json":
        first, again, health = (json.loads(line) for line in lines)
        assert {k: first[k] for k in ("session_id", "module", "command", "status")} == {
            "session_id": sid,
            "module": "dice",
            "command": "!roll",
            "status": 200,
        }
        assert (first["attempts"], first["resend"]) == (1, None)
        assert (again["attempts"], again["resend"]) == (0, "stored")
        assert (health["path"], health["status"]) == ("/health", 200)
        assert isinstance(first["duration_ms"], float)
    else:
        assert lines[0].startswith('method="POST" path="/api/v1/execute" status=200 duration_ms=')
        assert f'session_id="{sid}" module="dice" command="!roll" attempts=1' in lines[0]
        assert "resend" not in lines[0]
        assert lines[1].endswith('attempts=0 resend="stored"')
        assert lines[2].startswith('method="GET" path="/health" status=200')
    assert KEY not in caplog.text
    assert "secret-arg" not in caplog.text


async def test_access_log_off(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """access_log = "off" writes nothing."""
    caplog.set_level(logging.INFO, logger="module_sdk.server.access")
    server = ModuleServer(config(scripted.url, access_log="off"), host="127.0.0.1", port=0)
    async with (
        server,
        aiohttp.ClientSession() as session,
        session.get(server.url + "/ready") as reply,
    ):
        assert reply.status == 200
    assert not [r for r in caplog.records if r.name == "module_sdk.server.access"]
