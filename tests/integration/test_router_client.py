"""The router-faithful test client behaves as the reference describes WaddleBot's router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from support.router import RouterClient, router_body


class Module:
    """A module endpoint answering each attempt with the next scripted step."""

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.headers.append(dict(request.headers))
        step = self.steps.pop(0)
        if isinstance(step, float):  # slower than the router's timeout
            await asyncio.sleep(step)
            return web.json_response({"success": True, "message": "late"})
        assert isinstance(step, web.Response)
        return step


@pytest.fixture
async def module() -> AsyncIterator[tuple[Module, str]]:
    """The scripted module on a free port, at /api/v1/execute."""
    scripted = Module()
    app = web.Application()
    app.router.add_post("/api/v1/execute", scripted.handle)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        yield scripted, str(server.make_url(""))


async def drive(url: str, key: str | None = "k", timeout: float = 5.0) -> Any:
    """One command through the client, recording its sleeps instead of sleeping."""
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async with aiohttp.ClientSession() as session:
        client = RouterClient(session, timeout=timeout, service_key=key, sleep=record)
        outcome = await client.execute(url, router_body("!roll  2d6   fast", community_id=7))
    assert outcome.sleeps == slept
    return outcome


def test_the_body_is_the_routers_seven_fields() -> None:
    """args is one string with its inner spacing, community_id an int, no platform."""
    body = router_body("!roll  2d6   fast", community_id=7)
    assert set(body) == {
        "command",
        "args",
        "user_id",
        "entity_id",
        "community_id",
        "session_id",
        "message",
    }
    assert (body["command"], body["args"], body["community_id"]) == ("!roll", "2d6   fast", 7)
    assert body["session_id"].startswith("sess_") and len(body["session_id"]) == 37
    assert router_body("!ping")["args"] == ""


async def test_429_backs_off_1_2_4_ignoring_retry_after_then_drops(
    module: tuple[Module, str],
) -> None:
    """Three 429s: sleeps of 1, 2 and 4 s whatever Retry-After says, then no answer."""
    scripted, url = module
    scripted.steps = [
        web.json_response({}, status=429, headers={"Retry-After": "30"}) for _ in range(3)
    ]
    outcome = await drive(url)
    assert (outcome.attempts, outcome.sleeps, outcome.response) == (
        ["429", "429", "429"],
        [1.0, 2.0, 4.0],
        None,
    )


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
async def test_any_other_status_is_not_retried(module: tuple[Module, str], status: int) -> None:
    """A non-200, non-429 status is "Module did not respond" at once."""
    scripted, url = module
    scripted.steps = [web.json_response({"success": False}, status=status)]
    outcome = await drive(url)
    assert (outcome.attempts, outcome.sleeps, outcome.response) == ([str(status)], [], None)


@pytest.mark.parametrize("empty", [{}, None], ids=["empty-object", "null"])
async def test_a_falsy_json_body_is_no_answer(module: tuple[Module, str], empty: Any) -> None:
    """{} or null is "Module did not respond", not retried."""
    scripted, url = module
    scripted.steps = [web.json_response(empty)]
    outcome = await drive(url)
    assert (outcome.attempts, outcome.response) == (["200"], None)


async def test_a_non_json_200_and_a_timeout_resend_the_same_body(
    module: tuple[Module, str],
) -> None:
    """HTML, then a reply slower than the timeout, then JSON: the same bytes sent 3 times."""
    scripted, url = module
    scripted.steps = [
        web.Response(text="<html>oops</html>", content_type="text/html"),
        1.0,
        web.json_response({"success": True, "message": "ok"}),
    ]
    outcome = await drive(url, timeout=0.3)
    assert outcome.attempts == ["not_json", "timeout", "200"]
    assert outcome.sleeps == [1.0, 2.0]
    assert outcome.response == {"success": True, "message": "ok"}
    assert len(scripted.bodies) == 3 and len(set(scripted.bodies)) == 1


async def test_no_key_header_when_the_routers_key_is_empty(module: tuple[Module, str]) -> None:
    """An empty SERVICE_API_KEY sends no X-Service-Key header at all."""
    scripted, url = module
    scripted.steps = [web.json_response({"success": True}) for _ in range(2)]
    await drive(url, key="")
    await drive(url, key="secret")
    assert "X-Service-Key" not in scripted.headers[0]
    assert scripted.headers[1]["X-Service-Key"] == "secret"
