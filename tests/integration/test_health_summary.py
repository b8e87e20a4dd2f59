"""The error rate beside the health state: "healthy" alone hides a module failing every call."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from module_sdk._health import health_summary
from module_sdk.cli import main
from module_sdk.server import ModuleServer, parse_config
from module_sdk.testing import Reply, ScriptedLambdaServer

KEY = "summary-test-key-0123456789abcdefghijkl"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"is_healthy": True, "total_requests": 0, "total_failures": 0}, "healthy"),
        ({"is_healthy": True, "total_requests": 5, "total_failures": 0}, "healthy"),
        (
            {"is_healthy": True, "total_requests": 2, "total_failures": 2, "error_rate": 1.0},
            "healthy, error rate 100% (2 of 2 calls failed)",
        ),
        (
            {"is_healthy": False, "total_requests": 4, "total_failures": 3, "error_rate": 0.75},
            "unhealthy, error rate 75% (3 of 4 calls failed)",
        ),
    ],
)
def test_health_summary(status: dict[str, Any], expected: str) -> None:
    assert health_summary(status) == expected


async def test_health_endpoint_puts_the_error_rate_beside_the_state(
    scripted: ScriptedLambdaServer,
) -> None:
    """Two failures (below the three that turn it unhealthy): /health says so in words."""
    scripted.script("dice", *[Reply.aws_error(404, "ResourceNotFoundException", "gone")] * 2)
    config = parse_config(
        {
            "service_api_key": KEY,
            "aws": {"region": "us-east-1", "endpoint_url": scripted.url, "max_retries": 0},
            "modules": [{"name": "dice", "commands": ["!roll"]}],
        },
        env={},
    )
    body = {
        "command": "!roll",
        "args": "",
        "user_id": "u",
        "entity_id": "e",
        "community_id": "c",
        "message": "!roll",
    }
    headers = {"X-Service-Key": KEY}
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        for i in range(2):
            async with session.post(
                server.url + "/api/v1/execute",
                json={**body, "session_id": f"s{i}"},
                headers=headers,
            ) as reply:
                assert (await reply.json())["error_code"] == "not_found"
        async with session.get(server.url + "/health") as reply:
            health = await reply.json()
    module = health["modules"]["dice"]
    assert module["is_healthy"] is True
    assert module["summary"] == "healthy, error rate 100% (2 of 2 calls failed)"


def test_demo_table_shows_the_failure_rate_beside_the_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's health table: a function that failed every call is not just "healthy"."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("nosuchfunction "))
    assert "healthy, 100% failed" in row
