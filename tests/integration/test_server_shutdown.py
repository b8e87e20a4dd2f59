"""Graceful shutdown of the module server: SIGTERM under load loses no accepted request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from module_sdk.adapters import BaseAdapter
from module_sdk.aws_lambda.clients import ClientPool
from module_sdk.server import ModuleServer, build_adapter, parse_config, serve_until_stopped
from module_sdk.testing import Reply, ScriptedLambdaServer
from support.serve import start_serve

KEY = "shutdown-test-key-0123456789abcdef"


def document(endpoint: str, grace: float) -> dict[str, Any]:
    """One module, no retries, the given grace period."""
    return {
        "service_api_key": KEY,
        "server": {"shutdown_grace": grace},
        "aws": {"region": "us-east-1", "endpoint_url": endpoint, "max_retries": 0},
        "modules": [{"name": "dice", "commands": ["!roll"]}],
    }


def body(i: int) -> dict[str, Any]:
    """A router-style request with its own session."""
    return {
        "command": "!roll",
        "args": "1d20",
        "user_id": "u",
        "entity_id": "e",
        "community_id": "c",
        "session_id": f"s{i}",
        "message": "!roll 1d20",
    }


async def post(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, str]:
    """Send request ``i`` and return its status and session id."""
    async with session.post(
        url + "/api/v1/execute", json=body(i), headers={"X-Service-Key": KEY}
    ) as reply:
        answer = await reply.json()
        return reply.status, answer.get("session_id", "")


@contextlib.contextmanager
def _logged(text: str) -> Iterator[asyncio.Event]:
    """An event set when the module server logs a message containing ``text``."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    watch = Watch(logging.DEBUG)
    target = logging.getLogger("module_sdk.server")
    level = target.level
    target.addHandler(watch)
    target.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        target.removeHandler(watch)
        target.setLevel(level)


async def test_sigterm_during_load_answers_every_accepted_request(
    scripted: ScriptedLambdaServer,
) -> None:
    """SIGTERM closes the listener at once, lets 40 in-flight calls finish, closes clients."""
    count = 40
    scripted.script("dice", *[Reply.slow(0.4, Reply.ok({"success": True}))] * count)
    config = parse_config(document(scripted.url, grace=10.0), env={})
    pool = ClientPool()
    adapters: dict[str, BaseAdapter] = {"dice": build_adapter(config.modules[0], pool=pool)}
    server = ModuleServer(config, host="127.0.0.1", port=0, adapters=adapters)
    ready = asyncio.Event()
    serving = asyncio.ensure_future(serve_until_stopped(server, on_ready=lambda _: ready.set()))
    await ready.wait()
    url = server.url
    async with aiohttp.ClientSession() as session:
        calls = [asyncio.ensure_future(post(session, url, i)) for i in range(count)]
        async with asyncio.timeout(30):
            await scripted.received(count)  # every request is in a handler
        with _logged("shutting down") as draining:
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(30):
                await draining.wait()
        assert server.draining
        async with aiohttp.ClientSession() as late:
            with pytest.raises(aiohttp.ClientConnectionError):
                await post(late, url, 999)
        assert not all(c.done() for c in calls)  # the refusal happened while draining
        results = await asyncio.gather(*calls)
    await asyncio.wait_for(serving, 10)
    assert sorted(results) == sorted((200, f"s{i}") for i in range(count))
    assert scripted.count() == count
    assert pool.open_clients() == 0


async def test_requests_past_the_grace_period_are_cut(scripted: ScriptedLambdaServer) -> None:
    """A call still running when the grace period ends is abandoned; shutdown still ends."""
    scripted.script("dice", Reply.slow(1.0, Reply.ok({"success": True})))
    config = parse_config(document(scripted.url, grace=0.1), env={})
    server = ModuleServer(config, host="127.0.0.1", port=0)
    await server.start()
    async with aiohttp.ClientSession() as session:
        call = asyncio.ensure_future(post(session, server.url, 1))
        async with asyncio.timeout(30):
            await scripted.received()
        started = time.monotonic()
        await server.aclose()
        took = time.monotonic() - started
        with pytest.raises(aiohttp.ClientError):
            await call
    assert took < 0.9


def test_cli_serve_drains_on_sigterm_and_exits_0(tmp_path: Path) -> None:
    """``waddlebot-lambda serve`` answers in-flight requests after SIGTERM and exits 0."""
    asyncio.run(_cli_scenario(tmp_path))


async def _cli_scenario(tmp_path: Path) -> None:
    count = 10
    async with ScriptedLambdaServer() as scripted:
        scripted.script("dice", *[Reply.slow(0.5, Reply.ok({"success": True}))] * count)
        config = tmp_path / "modules.toml"
        config.write_text(
            f'service_api_key = "{KEY}"\n[server]\nshutdown_grace = 10\n'
            f'[aws]\nregion = "us-east-1"\nendpoint_url = "{scripted.url}"\nmax_retries = 0\n'
            '[[modules]]\nname = "dice"\ncommands = ["!roll"]\n',
            encoding="utf-8",
        )
        process, url, banner = await start_serve(config)
        try:
            assert process.stderr is not None
            assert "serving 1 module(s) (dice) on http://127.0.0.1:" in banner, banner
            async with aiohttp.ClientSession() as session:
                calls = [asyncio.ensure_future(post(session, url, i)) for i in range(count)]
                async with asyncio.timeout(20):
                    await scripted.received(count)
                process.send_signal(signal.SIGTERM)
                results = await asyncio.gather(*calls)
            status = await asyncio.wait_for(process.wait(), 20)
            rest = (await process.stderr.read()).decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert sorted(results) == sorted((200, f"s{i}") for i in range(count))
    assert status == 0, rest
    assert "Traceback" not in rest
    assert KEY not in rest
