"""Shared fixtures: a hermetic AWS environment, a scripted Lambda endpoint, moto's server."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from module_sdk.resilience.breaker import PROCESS_BREAKERS
from module_sdk.testing import RedisServer, ScriptedLambdaServer
from support.moto_lambda import FAKE_KEY_ID, FAKE_SECRET, MotoLambda
from support.redis_server import require_redis_server

__all__ = ["FAKE_KEY_ID", "FAKE_SECRET", "MotoLambda"]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name the random order's seed also under ``-q`` (which hides pytest-randomly's header)."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and getattr(config.option, "randomly_reorganize", True):
        terminalreporter.write_line(f"random test order: repeat it with --randomly-seed={seed}")


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


@pytest.fixture(autouse=True)
def _fresh_environment() -> Iterator[None]:
    """Environment variables set by code under test (the CLI, the server) do not outlive it."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


def _ours(handler: logging.Handler) -> bool:
    """Not one of pytest's own capture handlers (pytest adds and removes those per phase)."""
    return not type(handler).__module__.startswith("_pytest")


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Handlers, levels and switches that code under test sets on loggers do not outlive it.

    The CLI configures logging as a program does; without this, a later test would see its
    handlers (writing to a closed stream) or its levels (hiding the records it asserts on).
    """
    root = logging.getLogger()

    def loggers() -> list[logging.Logger]:
        named = logging.Logger.manager.loggerDict.values()
        return [root, *(v for v in named if isinstance(v, logging.Logger))]

    saved = {
        logger.name: (logger.level, [h for h in logger.handlers if _ours(h)], logger.propagate)
        for logger in loggers()
    }
    saved_disabled = {logger.name for logger in loggers() if logger.disabled}
    disable = logging.root.manager.disable
    yield
    logging.disable(disable)
    for logger in loggers():
        # A logger first named during the test goes back to the defaults it was born with.
        level, handlers, propagate = saved.get(logger.name, (logging.NOTSET, [], True))
        for handler in [h for h in logger.handlers if _ours(h) and h not in handlers]:
            logger.removeHandler(handler)
        for handler in [h for h in handlers if h not in logger.handlers]:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = logger.name in saved_disabled


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedLambdaServer]:
    """A scripted Lambda-API endpoint on 127.0.0.1 and a free port."""
    async with ScriptedLambdaServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 and a free port, in a temporary directory (tests
    sharing it use key prefixes of their own)."""
    require_redis_server()
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
