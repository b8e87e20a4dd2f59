"""GET /metrics on the module server, over real HTTP, after calls to a real endpoint."""

from __future__ import annotations

import aiohttp

from module_sdk.observability import server_metrics
from module_sdk.server import ModuleServer, build_adapter, parse_config
from module_sdk.testing import FakeClock, ScriptedLambdaServer
from support.observability import BOOM, THROTTLE

KEY = "metrics-test-key-0123456789abcdef"


def config(endpoint: str) -> dict[str, object]:
    """One Lambda-backed module on ``endpoint``."""
    return {
        "service_api_key": KEY,
        "aws": {"region": "us-east-1", "endpoint_url": endpoint, "max_retries": 1},
        "modules": [{"name": "dice", "function": "dice", "commands": ["!roll"]}],
    }


BODY = {
    "command": "!roll",
    "args": "2d6",
    "user_id": "u1",
    "entity_id": "e1",
    "community_id": "c1",
    "session_id": "sess-1",
}


async def test_metrics_route_serves_the_invocation_metrics(
    scripted: ScriptedLambdaServer,
) -> None:
    """After a failing and a successful command, /metrics shows both in Prometheus text."""
    scripted.script("dice", BOOM)
    server = ModuleServer(
        parse_config(config(scripted.url), source="t.toml", env={}), host="127.0.0.1", port=0
    )
    assert server.metrics is not None
    async with server, aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session:
        for i in range(2):  # two commands (the second is no re-send of the first)
            sent = {**BODY, "session_id": f"sess-{i}"}
            async with session.post(server.url + "/api/v1/execute", json=sent) as reply:
                assert reply.status == 200
        async with session.get(server.url + "/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            lines = set((await reply.text()).splitlines())
    assert 'waddlebot_lambda_invocations_total{function="dice",outcome="success"} 1.0' in lines
    assert (
        'waddlebot_lambda_invocations_total{function="dice",outcome="function_error"} 1.0' in lines
    )
    assert 'waddlebot_lambda_attempts_total{function="dice",reason="initial"} 2.0' in lines
    assert 'waddlebot_lambda_in_flight{function="dice"} 0.0' in lines
    assert any(line.startswith("process_cpu_seconds_total ") for line in lines)


async def test_prebuilt_adapters_share_the_given_metrics(
    scripted: ScriptedLambdaServer,
) -> None:
    """Adapters built with observers=[metrics] and passed in are served too (with retries)."""
    scripted.script("dice", THROTTLE)
    parsed = parse_config(config(scripted.url), source="t.toml", env={})
    metrics = server_metrics()
    adapter = build_adapter(parsed.modules[0], observers=[metrics], clock=FakeClock())
    server = ModuleServer(
        parsed, host="127.0.0.1", port=0, adapters={"dice": adapter}, metrics=metrics
    )
    async with server, aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session:
        async with session.post(server.url + "/api/v1/execute", json=BODY) as reply:
            assert (await reply.json())["success"] is True
        async with session.get(server.url + "/metrics") as reply:
            lines = set((await reply.text()).splitlines())
    assert 'waddlebot_lambda_attempts_total{function="dice",reason="initial"} 1.0' in lines
    assert 'waddlebot_lambda_attempts_total{function="dice",reason="throttled"} 1.0' in lines
    assert 'waddlebot_lambda_invocations_total{function="dice",outcome="success"} 1.0' in lines


async def test_metrics_route_needs_the_service_key(scripted: ScriptedLambdaServer) -> None:
    """Like every route but /health, /metrics answers 401 without the service key."""
    server = ModuleServer(
        parse_config(config(scripted.url), source="t.toml", env={}), host="127.0.0.1", port=0
    )
    async with (
        server,
        aiohttp.ClientSession() as session,
        session.get(server.url + "/metrics") as reply,
    ):
        assert reply.status == 401
        assert (await reply.json())["error_code"] == "unauthorized"


async def test_metrics_can_be_turned_off(scripted: ScriptedLambdaServer) -> None:
    """metrics=False: /metrics answers a JSON 404 that says how to turn it on."""
    server = ModuleServer(
        parse_config(config(scripted.url), source="t.toml", env={}),
        host="127.0.0.1",
        port=0,
        metrics=False,
    )
    assert server.metrics is None
    async with (
        server,
        aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session,
        session.get(server.url + "/metrics") as reply,
    ):
        assert reply.status == 404
        answer = await reply.json()
    assert answer["error_code"] == "not_found"
    assert "prometheus" in answer["error"]
