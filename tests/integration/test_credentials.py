"""Credentials: stand-ins for a loopback endpoint, a clear error and warning against AWS."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.clients import STAND_IN_ACCESS_KEY_ID, ClientPool, is_loopback
from module_sdk.server import ModuleServer, parse_config
from module_sdk.testing import ScriptedLambdaServer
from support.moto_lambda import FAKE_KEY_ID

KEY = "credentials-test-key-0123456789abcdef"


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere in the chain (config files are empty, IMDS is off)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


def request() -> ExecuteRequest:
    return ExecuteRequest("!roll", ["d20"], "u1", "e1", "c1", "s1", "twitch")


def signed_with(scripted: ScriptedLambdaServer) -> str:
    """The access key id in the last invocation's Authorization header."""
    authorization = str(scripted.invocations[-1]["authorization"])
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:3001", True),
        ("http://127.8.9.10", True),
        ("http://localhost:3001", True),
        ("http://[::1]:3001", True),
        ("https://lambda.us-east-1.amazonaws.com", False),
        ("http://10.0.0.5:3001", False),
        ("127.0.0.1:3001", False),
        (None, False),
    ],
)
def test_is_loopback(url: str | None, expected: bool) -> None:
    """Loopback means this machine: localhost, 127.0.0.0/8 and ::1."""
    assert is_loopback(url) is expected


@pytest.mark.usefixtures("no_credentials")
async def test_loopback_endpoint_without_credentials_uses_stand_ins(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No credentials and a loopback endpoint: calls are signed with stand-ins, said once."""
    caplog.set_level(logging.INFO, logger="module_sdk")
    pool = ClientPool()
    for _ in range(2):
        async with LambdaAdapter(
            "dice", "us-east-1", "dice", endpoint_url=scripted.url, pool=pool
        ) as adapter:
            response = await adapter.execute_async(request())
        assert response.success, response.error
    assert signed_with(scripted) == STAND_IN_ACCESS_KEY_ID
    said = [r for r in caplog.records if "stand-in credentials" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert scripted.url in said[0].getMessage()


@pytest.mark.usefixtures("no_credentials")
async def test_lean_client_uses_the_same_stand_ins(scripted: ScriptedLambdaServer) -> None:
    """The lean HTTP path takes its credentials from the same function."""
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", endpoint_url=scripted.url, http_client="lean"
    ) as adapter:
        response = await adapter.execute_async(request())
    assert response.success, response.error
    assert signed_with(scripted) == STAND_IN_ACCESS_KEY_ID


@pytest.mark.usefixtures("no_credentials")
async def test_loopback_endpoint_from_the_environment(
    scripted: ScriptedLambdaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_ENDPOINT_URL_LAMBDA (or AWS_ENDPOINT_URL) at a loopback address counts too."""
    for name in ("AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)
        monkeypatch.setenv(name, scripted.url)
        async with LambdaAdapter("dice", "us-east-1", "dice", pool=ClientPool()) as adapter:
            response = await adapter.execute_async(request())
        assert response.success, response.error
        assert signed_with(scripted) == STAND_IN_ACCESS_KEY_ID


async def test_credentials_found_are_used_at_a_loopback_endpoint(
    scripted: ScriptedLambdaServer,
) -> None:
    """Stand-ins only replace nothing: credentials the chain finds are used as they are."""
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", endpoint_url=scripted.url, pool=ClientPool()
    ) as adapter:
        assert (await adapter.execute_async(request())).success
    assert signed_with(scripted) == FAKE_KEY_ID


@pytest.mark.usefixtures("no_credentials")
async def test_aws_without_credentials_is_the_credentials_error() -> None:
    """Against AWS, no credentials stay the clear ``credentials`` error (nothing is sent)."""
    async with LambdaAdapter("dice", "us-east-1", "dice", pool=ClientPool()) as adapter:
        assert await adapter.credentials_missing()
        response = await adapter.execute_async(request())
    assert response.error_code == "credentials"


def _config(endpoint: str | None) -> Any:
    aws: dict[str, Any] = {"region": "us-east-1", "max_retries": 0}
    if endpoint:
        aws["endpoint_url"] = endpoint
    return parse_config(
        {
            "service_api_key": KEY,
            "aws": aws,
            "modules": [{"name": "dice", "commands": ["!roll"]}],
        },
        env={},
    )


async def _execute_and_health(server: ModuleServer) -> tuple[int, dict[str, Any], int, Any]:
    body = {
        "command": "!roll",
        "args": "1d20",
        "user_id": "u",
        "entity_id": "e",
        "community_id": "c",
        "session_id": "s1",
        "message": "!roll 1d20",
    }
    headers = {"X-Service-Key": KEY}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            server.url + "/api/v1/execute", json=body, headers=headers
        ) as reply:
            status, answer = reply.status, await reply.json()
        async with session.get(server.url + "/health", headers=headers) as reply:
            return status, answer, reply.status, await reply.json()


@pytest.mark.usefixtures("no_credentials")
async def test_server_at_a_loopback_endpoint_works_without_credentials(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The module server calls a local endpoint with stand-ins and does not warn."""
    caplog.set_level(logging.INFO, logger="module_sdk")
    async with ModuleServer(_config(scripted.url), host="127.0.0.1", port=0) as server:
        status, answer, health_status, health = await _execute_and_health(server)
    assert status == 200 and answer["success"] is True, answer
    assert health_status == 200 and health["status"] == "healthy"
    assert signed_with(scripted) == STAND_IN_ACCESS_KEY_ID
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.usefixtures("no_credentials")
async def test_server_against_aws_without_credentials_warns_and_is_not_healthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Against AWS with no credentials: a warning at start-up, and /health says unhealthy
    (with the reason) while every call fails with ``credentials``."""
    caplog.set_level(logging.INFO, logger="module_sdk")
    async with ModuleServer(_config(None), host="127.0.0.1", port=0) as server:
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            "no AWS credentials found for module(s) dice" in r.getMessage() for r in warnings
        )
        _, answer, health_status, health = await _execute_and_health(server)
    assert answer["error_code"] == "credentials"
    assert health_status == 503 and health["status"] == "unhealthy"
    assert health["modules"]["dice"]["is_healthy"] is False
    assert health["modules"]["dice"]["credentials"] == "missing"
