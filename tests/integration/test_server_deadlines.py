"""Deadlines that fit the router: modules answer (JSON 200) before the router re-sends."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from module_sdk import ExecuteRequest, ExecuteResponse
from module_sdk.adapters import BaseAdapter
from module_sdk.local import LocalLambdaRuntime
from module_sdk.server import ModuleServer, parse_config
from module_sdk.server.config import default_deadline
from module_sdk.testing import Reply, ScriptedLambdaServer
from support.router import RouterClient, router_body

KEY = "deadline-test-key-0123456789abcdef"


def document(endpoint: str, server: dict[str, Any] | None = None, **module: Any) -> Any:
    """One module ``dice`` answering ``!roll``."""
    return {
        "service_api_key": KEY,
        "server": server or {},
        "aws": {"region": "us-east-1", "endpoint_url": endpoint},
        "modules": [{"name": "dice", "function": "dice", "commands": ["!roll"], **module}],
    }


@pytest.mark.parametrize(
    ("router_timeout", "deadline"),
    [(30.0, 28.0), (10.0, 9.0), (1.0, 0.8), (120.0, 118.0)],
    ids=["default", "10s", "1s", "120s"],
)
def test_the_default_deadline_sits_below_the_routers_timeout(
    router_timeout: float, deadline: float
) -> None:
    """total_timeout defaults to the router's timeout minus 10 % (0.2 s to 2 s)."""
    assert default_deadline(router_timeout) == pytest.approx(deadline)
    config = parse_config(
        document("http://127.0.0.1:1", {"router_timeout": router_timeout}), env={}
    )
    assert config.modules[0].adapter_kwargs["total_timeout"] == pytest.approx(deadline)


def test_an_explicit_total_timeout_is_kept() -> None:
    """A module's own total_timeout wins over the derived one."""
    config = parse_config(document("http://127.0.0.1:1", total_timeout=4), env={})
    assert config.modules[0].adapter_kwargs["total_timeout"] == 4


async def test_start_up_warns_when_the_worst_case_exceeds_the_routers_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The defaults (4 x 30 s + backoff) warn; a module that fits says nothing."""
    caplog.set_level(logging.WARNING, logger="module_sdk.server.app")
    slow = ModuleServer(parse_config(document("http://127.0.0.1:1"), env={}), port=0)
    await slow.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "module 'dice' may take up to 123.5 s (4 attempt(s) x 30 s read timeout + 3.5 s "
        "backoff), longer than the router's 30 s timeout; its deadline (total_timeout) of "
        "28 s ends such calls with deadline_exceeded" in w
        for w in warnings
    ), warnings
    caplog.clear()
    fits = parse_config(document("http://127.0.0.1:1", read_timeout=5, max_retries=1), env={})
    server = ModuleServer(fits, port=0)
    await server.aclose()
    assert not [r for r in caplog.records if "may take up to" in r.getMessage()]


SLOW = """
import time

def handler(event, context):
    time.sleep(4)
    return {"success": True, "message": "too late"}
"""


async def test_a_deadline_answers_200_json_before_the_router_resends(tmp_path: Path) -> None:
    """Router timeout 3 s, a 4 s function: the 2.7 s deadline answers JSON 200 in the first
    attempt (0.3 s before the router would give up), so the router caches it."""
    (tmp_path / "dice.py").write_text(SLOW, encoding="utf-8")
    (tmp_path / "functions.toml").write_text("[functions.dice]\ntimeout = 10\n")
    async with LocalLambdaRuntime(tmp_path, port=0, prewarm=1) as runtime:
        config = parse_config(document(runtime.url, {"router_timeout": 3}, max_retries=0), env={})
        async with (
            ModuleServer(config, host="127.0.0.1", port=0) as server,
            aiohttp.ClientSession() as session,
        ):
            outcome = await RouterClient(session, timeout=3.0, service_key=KEY).execute(
                server.url, router_body("!roll 2d6")
            )
    assert outcome.attempts == ["200"]
    assert outcome.response is not None
    assert outcome.response["success"] is False
    assert outcome.response["error_code"] == "deadline_exceeded"


class HangingAdapter(BaseAdapter):
    """An adapter without a deadline of its own that never answers."""

    async def execute_async(self, request: ExecuteRequest) -> ExecuteResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_the_server_answers_for_an_adapter_without_a_deadline() -> None:
    """A custom adapter that hangs is cut by the server before the router's timeout."""
    config = parse_config(document("http://127.0.0.1:1", {"router_timeout": 0.5}), env={})
    server = ModuleServer(
        config, host="127.0.0.1", port=0, adapters={"dice": HangingAdapter("dice")}
    )
    async with server, aiohttp.ClientSession() as session:
        # The client waits longer than the configured 0.5 s: what is tested is that the server
        # cuts the call at 0.4 s on its own, not the race against the client.
        outcome = await RouterClient(session, timeout=5.0, service_key=KEY).execute(
            server.url, router_body("!roll")
        )
    assert outcome.attempts == ["200"]
    assert outcome.response is not None
    assert (outcome.response["success"], outcome.response["error_code"]) == (
        False,
        "deadline_exceeded",
    )
    assert "within 0.4 s" in outcome.response["error"]  # 0.5 s - 0.2 s / 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply.ok({"success": True}),
        Reply.ok({}),
        Reply.ok(None),
        Reply.function_error({"errorMessage": "boom", "errorType": "Boom"}),
        Reply.ok({"success": False}),
    ],
    ids=["success", "empty-object", "null", "function-error", "module-failure"],
)
async def test_every_200_is_a_non_empty_json_object(
    scripted: ScriptedLambdaServer, reply: Reply
) -> None:
    """The router treats {} / null as no answer and a non-JSON 200 as a failure to retry."""
    scripted.script("dice", reply)
    config = parse_config(document(scripted.url, max_retries=0), env={})
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session,
        session.post(server.url + "/api/v1/execute", json=router_body("!roll")) as answer,
    ):
        status, content_type, body = answer.status, answer.content_type, await answer.json()
    assert (status, content_type) == (200, "application/json")
    assert isinstance(body, dict) and body
    assert isinstance(body["success"], bool)
