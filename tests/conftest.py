"""Shared fixtures: a hermetic AWS environment, a scripted Lambda endpoint, moto's server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from module_sdk.resilience.breaker import PROCESS_BREAKERS
from module_sdk.testing import RedisServer, ScriptedLambdaServer
from moto_support import FAKE_KEY_ID, FAKE_SECRET, MotoLambda

__all__ = ["FAKE_KEY_ID", "FAKE_SECRET", "MotoLambda"]


@pytest.fixture(autouse=True)
def _hermetic_aws(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Never reach real AWS, IMDS or the user's ~/.aws from a test."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    """No breaker opened by one test is seen by the next."""
    yield
    PROCESS_BREAKERS.clear()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedLambdaServer]:
    """A scripted Lambda-API endpoint on 127.0.0.1 and a free port."""
    async with ScriptedLambdaServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 and a free port, in a temporary directory (tests
    sharing it use key prefixes of their own)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_lambda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoLambda]:
    """One moto server for the session (functions are created idempotently)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    mp.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = MotoLambda()
    try:
        yield server
    finally:
        server.stop()
        mp.undo()


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
