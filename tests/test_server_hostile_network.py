"""The module server against a hostile network: slow, oversized and malformed connections.

Every client here speaks raw bytes over 127.0.0.1 to a server on port 0; timeouts are
configured low (a fraction of a second) so that nothing waits long, and every read is bounded.
``RELIABILITY_PROFILE=full`` (``make chaos``) runs the larger counts and writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from module_sdk.server import ModuleServer, parse_config
from module_sdk.testing import ScriptedLambdaServer

KEY = "hostile-network-test-key-0123456789abcdef"
FULL = os.environ.get("RELIABILITY_PROFILE", "fast") == "full"
CHILD = Path(__file__).with_name("hostile_server.py")


def config(endpoint: str, **server: Any) -> Any:
    return parse_config(
        {
            "service_api_key": KEY,
            "server": server,
            "aws": {"region": "us-east-1", "endpoint_url": endpoint, "max_retries": 0},
            "modules": [{"name": "dice", "function": "dice", "commands": ["!roll"]}],
        },
        source="hostile.toml",
        env={},
    )


async def started(scripted: ScriptedLambdaServer, **server: Any) -> ModuleServer:
    module_server = ModuleServer(
        config(scripted.url, **server), host="127.0.0.1", port=0, metrics=False
    )
    await module_server.start()
    return module_server


@pytest.fixture
async def hostile(scripted: ScriptedLambdaServer) -> AsyncIterator[Any]:
    """``await hostile(**server_table)`` starts a server; all are closed after the test."""
    servers: list[ModuleServer] = []

    async def make(**server: Any) -> ModuleServer:
        servers.append(await started(scripted, **server))
        return servers[-1]

    yield make
    for server in servers:
        await server.aclose()


async def connect(server: ModuleServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def until_eof(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes; fails if it stays open ``within`` s."""
    chunks = []
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def execute_head(length: int, key: str = KEY) -> bytes:
    return (
        f"POST /api/v1/execute HTTP/1.1\r\nHost: x\r\nX-Service-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


# -- timeouts -----------------------------------------------------------------------------


async def test_a_silent_connection_is_closed_after_header_timeout(hostile: Any) -> None:
    server = await hostile(header_timeout=0.2, keepalive_timeout=60)
    reader, writer = await connect(server)
    started = time.monotonic()
    assert await until_eof(reader, within=5) == b""
    assert time.monotonic() - started < 4
    assert server.connection_guard.head_timeouts == 1
    writer.close()


async def test_a_dripped_head_is_closed_after_header_timeout(hostile: Any) -> None:
    server = await hostile(header_timeout=0.3, keepalive_timeout=60)
    reader, writer = await connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    for index in range(3):  # still sending, never finishing: each byte must not extend it
        await asyncio.sleep(0.05)
        writer.write(f"X-Drip-{index}: y\r\n".encode())
    assert await until_eof(reader, within=5) == b""
    assert server.connection_guard.head_timeouts == 1
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(hostile: Any) -> None:
    server = await hostile(keepalive_timeout=0.2, header_timeout=60)
    reader, writer = await connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await until_eof(reader, within=5)
    assert status(answer) in (200, 503)  # answered, then closed once idle
    writer.close()


async def test_a_dripped_body_gets_408_after_body_timeout(
    hostile: Any, scripted: ScriptedLambdaServer
) -> None:
    server = await hostile(body_timeout=0.2)
    reader, writer = await connect(server)
    writer.write(execute_head(100) + b'{"command": ')
    answer = await until_eof(reader, within=5)
    assert status(answer) == 408
    assert b'"body_timeout"' in answer
    assert scripted.count() == 0
    writer.close()


async def test_shutdown_is_not_held_by_a_dripped_body(scripted: ScriptedLambdaServer) -> None:
    server = await started(scripted, body_timeout=0.2, shutdown_grace=30)
    _reader, writer = await connect(server)
    writer.write(execute_head(100) + b"{")
    await asyncio.sleep(0.05)
    began = time.monotonic()
    await server.aclose()
    assert time.monotonic() - began < 10  # the grace is 30 s: the body timeout ended it
    writer.close()


# -- sizes --------------------------------------------------------------------------------


async def test_a_huge_unfinished_head_gets_431_and_is_closed(hostile: Any) -> None:
    server = await hostile(max_head_bytes=16384, header_timeout=60)
    reader, writer = await connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    for index in range(30):  # 30 lines of 1,000 bytes, each inside every per-line limit
        writer.write(f"X-Pad-{index}: {'a' * 1000}\r\n".encode())
    answer = await until_eof(reader, within=5)
    assert status(answer) == 431
    assert b'"headers_too_large"' in answer
    assert server.connection_guard.heads_too_large == 1
    writer.close()


async def test_more_than_max_headers_is_refused(hostile: Any) -> None:
    server = await hostile()
    reader, writer = await connect(server)
    lines = b"".join(f"X-H-{i}: v\r\n".encode() for i in range(40))  # default max_headers: 32
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    answer = await until_eof(reader, within=5)
    assert status(answer) == 400
    assert b'"bad_request"' in answer
    writer.close()


async def test_a_head_split_anywhere_is_counted_and_served(hostile: Any) -> None:
    server = await hostile(max_head_bytes=1024)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for cut in range(1, len(head)):  # the terminator split across two reads too
        reader, writer = await connect(server)
        writer.write(head[:cut])
        await writer.drain()
        await asyncio.sleep(0)
        writer.write(head[cut:])
        answer = await until_eof(reader, within=5)
        assert status(answer) in (200, 503), (cut, answer[:80])
        writer.close()
    assert server.connection_guard.heads_too_large == 0


# -- malformed requests never echo header values -----------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        f"GET /api/v1/modules HTTP/1.1\r\nHost: x\r\nX-Service-Key: {KEY}\x00\r\n\r\n",
        f"GET /api/v1/modules HTTP/1.1\r\nHost: x\r\nX-Service-Key: {KEY}\x01x\r\n\r\n",
        f"GET /api/v1/modules HTTP/1.1\r\nHost: x\r\nX-Service-Key: {KEY}{'k' * 9000}\r\n\r\n",
        f"GET /api/v1/modules HTTP/1.1\r\nHost: x\r\nX-Service-Key\x7f: {KEY}\r\n\r\n",
    ],
    ids=["nul", "control", "too-long", "bad-name"],
)
async def test_a_malformed_head_never_echoes_the_key(
    hostile: Any, caplog: pytest.LogCaptureFixture, head: str
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await hostile(max_head_bytes=65536)
    reader, writer = await connect(server)
    writer.write(head.encode("latin-1"))
    answer = await until_eof(reader, within=5)
    assert status(answer) in (400, 431)
    assert KEY.encode() not in answer
    assert KEY not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)
    writer.close()


# -- connection cap -----------------------------------------------------------------------


async def test_connections_past_max_connections_get_503(hostile: Any) -> None:
    server = await hostile(max_connections=3, header_timeout=60)
    held = [await connect(server) for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, writer = await connect(server)
    answer = await until_eof(reader, within=5)
    assert status(answer) == 503
    assert b"max_connections" in answer
    assert server.connection_guard.refused == 1
    writer.close()
    _held_reader, held_writer = held.pop()
    held_writer.close()
    async with asyncio.timeout(5):  # the freed slot serves a real request
        while server.connection_guard.open > 2:
            await asyncio.sleep(0.01)
    reader, writer = await connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status(await until_eof(reader, within=5)) in (200, 503)
    writer.close()
    for _, other in held:
        other.close()


# -- process-level limits -----------------------------------------------------------------


def test_raise_open_files_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 64:
        pytest.skip("the hard open-files limit is too low to lower the soft one below it")
    code = (
        "import resource\n"
        "from module_sdk.server._protection import raise_open_files_limit\n"
        "print(*raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lower,
        check=True,
    ).stdout.split()
    before, after, now_soft, now_hard = (int(v) for v in out)
    assert before == 64
    assert after == now_soft and now_soft > 64
    assert now_hard == hard


def spawn(endpoint: str, **options: Any) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps({"endpoint": endpoint, **options})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("PORT"):
        child.kill()
        raise AssertionError(f"the server did not start: {line!r} {child.communicate()[1]}")
    return child, int(line.split()[1])


def stop(child: subprocess.Popen[str]) -> str:
    child.send_signal(signal.SIGTERM)
    try:
        _out, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        _out, err = child.communicate()
    return err


async def test_accept_failures_are_logged_once_per_interval(scripted: ScriptedLambdaServer) -> None:
    # The child may open 40 descriptors: a few hundred connections exhaust them.
    child, port = await asyncio.to_thread(
        spawn, scripted.url, nofile=40, server={"header_timeout": 60, "max_connections": 1000}
    )
    writers = []
    try:
        for _ in range(120 if not FULL else 400):
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                break
            writers.append(writer)
        await asyncio.sleep(1.5)  # asyncio retries accepting after 1 s: two rounds of failures
    finally:
        for writer in writers:
            writer.close()
        err = await asyncio.to_thread(stop, child)
    failures = err.count("out of system resource") + err.count("cannot accept connections")
    assert failures >= 1, err[-2000:]
    assert failures <= 2, f"{failures} accept-failure lines:\n{err[-2000:]}"
    assert "Traceback" not in err
