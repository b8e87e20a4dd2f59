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
CHILD = Path(__file__).resolve().parents[1] / "support" / "hostile_server.py"


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
        for _ in range(120):  # past 40 descriptors; more would wait on the full backlog
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
    print(f"\n{len(writers)} connections opened; {failures} accept-failure line(s)")
    assert failures >= 1, err[-2000:]
    assert failures <= 2, f"{failures} accept-failure lines:\n{err[-2000:]}"
    assert "Traceback" not in err


# -- one keyed request must not stall the server -----------------------------------------


def execute_body(**fields: Any) -> bytes:
    body = {
        "command": "!roll",
        "args": "2d6",
        "user_id": "u1",
        "entity_id": "e1",
        "community_id": "c1",
        "session_id": "s1",
        **fields,
    }
    return json.dumps(body).encode()


async def post(server: ModuleServer, payload: bytes, key: str = KEY) -> tuple[int, bytes]:
    reader, writer = await connect(server)
    head = execute_head(len(payload), key).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    writer.write(head + payload)
    answer = await until_eof(reader, within=10)
    writer.close()
    return status(answer), answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "args",
    ['"' + "x" * 1_000_000 + '"', ["x" * 1000] * 1000],
    ids=["string", "list"],
)
async def test_args_over_max_args_chars_are_413_before_splitting(
    hostile: Any, scripted: ScriptedLambdaServer, args: Any
) -> None:
    server = await hostile(max_body_bytes=4 * 1024 * 1024)
    began = time.monotonic()
    code, answer = await post(server, execute_body(args=args))
    assert code == 413
    assert json.loads(answer)["error_code"] == "args_too_large"
    assert b"max_args_chars" in answer
    assert time.monotonic() - began < 3
    assert scripted.count() == 0


async def test_a_huge_json_integer_is_400_not_500(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await hostile()
    payload = execute_body()[:-1] + b', "metadata": {"n": ' + b"9" * 5000 + b"}}"
    code, answer = await post(server, payload)
    assert code == 400
    assert json.loads(answer)["error_code"] == "invalid_request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- authentication failures --------------------------------------------------------------


async def test_the_401_log_quotes_the_raw_path(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await hostile()
    reader, writer = await connect(server)
    writer.write(
        b"GET /x%0AERROR%20module_sdk.server.app:%20FORGED HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert status(await until_eof(reader, within=5)) == 401
    writer.close()
    [line] = [r.getMessage() for r in caplog.records if "refused GET" in r.getMessage()]
    assert "\n" not in line
    assert "'/x%0AERROR%20module_sdk.server.app:%20FORGED'" in line


async def test_401_warnings_are_rate_limited(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await hostile(max_auth_failures=0)  # no slowdown: every request reaches the check
    reader, writer = await connect(server)
    for _ in range(50):  # one keep-alive connection, as fast as it can
        writer.write(b"GET /api/v1/modules HTTP/1.1\r\nHost: x\r\nX-Service-Key: nope\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert status(head) == 401
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), 5)
    writer.close()
    lines = [r for r in caplog.records if "X-Service-Key header" in r.getMessage()]
    assert len(lines) == 1
    assert not [r for r in caplog.records if r.name == "module_sdk.server.access"]
    assert "nope" not in caplog.text


async def test_repeated_failures_from_one_address_are_slowed_down(hostile: Any) -> None:
    server = await hostile(max_auth_failures=3)
    for _ in range(3):
        code, _answer = await post(server, execute_body(), key="wrong-key")
        assert code == 401
    code, answer = await post(server, execute_body())  # even the right key waits now
    assert code == 429
    assert json.loads(answer)["error_code"] == "too_many_failures"


def test_the_failure_window_ends() -> None:
    from module_sdk.server._protection import AuthFailures, ThrottledLog

    now = [1000.0]
    failures = AuthFailures(
        2,
        ThrottledLog(logging.getLogger("test"), 10.0, lambda: now[0]),
        window=60.0,
        max_addresses=2,
        clock=lambda: now[0],
    )
    failures.failed("10.0.0.1", "GET", "/", missing=True)
    assert failures.retry_after("10.0.0.1") == 0
    failures.failed("10.0.0.1", "GET", "/", missing=True)
    assert failures.retry_after("10.0.0.1") == 60
    assert failures.retry_after("10.0.0.2") == 0  # another address is not affected
    now[0] += 59.5
    assert failures.retry_after("10.0.0.1") == 1
    now[0] += 1
    assert failures.retry_after("10.0.0.1") == 0
    for address in ("a", "b", "c"):  # only max_addresses are remembered
        failures.failed(address, "GET", "/", missing=False)
        failures.failed(address, "GET", "/", missing=False)
    assert failures.retry_after("a") == 0
    assert failures.retry_after("c") > 0


def test_a_short_service_key_is_refused_naming_the_fix() -> None:
    from module_sdk.errors import ConfigurationError

    short = parse_config(
        {
            "service_api_key": "change-me",
            "aws": {"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9"},
            "modules": [{"name": "dice", "commands": ["!roll"]}],
        },
        source="modules.toml",
        env={},
    )
    with pytest.raises(ConfigurationError) as caught:
        ModuleServer(short, metrics=False)
    message = str(caught.value)
    assert "modules.toml" in message and "9 characters" in message
    assert "secrets.token_urlsafe" in message
    assert "change-me" not in message


# -- disconnects and shutdown -------------------------------------------------------------


async def test_a_client_leaving_mid_body_is_logged_at_debug(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await hostile()
    _reader, writer = await connect(server)
    writer.write(execute_head(1000) + b'{"command": "!roll"')
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()
    async with asyncio.timeout(5):
        while not any("disconnected" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_drain_delay_keeps_serving_with_health_503(scripted: ScriptedLambdaServer) -> None:
    server = await started(scripted, drain_delay=0.5)
    reader, writer = await connect(server)  # a keep-alive connection from before SIGTERM
    closing = asyncio.create_task(server.aclose())
    await asyncio.sleep(0.1)
    try:
        new_reader, new_writer = await connect(server)  # still listening
        new_writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await until_eof(new_reader, within=5)  # Connection: close: the server ends it
        assert status(answer) == 503
        assert b'"draining"' in answer
        new_writer.close()
        payload = execute_body()
        writer.write(execute_head(len(payload)) + payload)
        answer = await until_eof(reader, within=5)
        assert status(answer) == 200
        assert b"connection: close" in answer.lower()
        writer.close()
    finally:
        await closing


# -- figures: memory, descriptors and latency under a hostile load (docs/reliability.md) ---

PARTIAL_CONNECTIONS = 800 if FULL else 100
SLOWLORIS_CONNECTIONS = 300 if FULL else 60
LATENCY_SAMPLES = 400 if FULL else 100


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def settle(pid: int, target: int, within: float = 10) -> int:
    """The child's descriptor count once it is back to ``target`` (or after ``within`` s)."""
    deadline = time.monotonic() + within
    while (count := fds(pid)) > target and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count


async def health_ms(port: int) -> float:
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await until_eof(reader, within=10)
    writer.close()
    assert status(answer) in (200, 503)
    return (time.perf_counter() - began) * 1000


async def test_partial_heads_cost_little_memory_and_every_descriptor_comes_back(
    scripted: ScriptedLambdaServer,
) -> None:
    """The issue's attack: connections that send most of a head and never finish it."""
    child, port = await asyncio.to_thread(
        spawn, scripted.url, server={"header_timeout": 60, "keepalive_timeout": 60}
    )
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(3):
            await health_ms(port)  # warm: the first answers build what every answer reuses
        base_rss, base_fds = rss_mb(child.pid), await settle(child.pid, 0, within=0.2)
        line = b"X-Pad: " + b"a" * 7990 + b"\r\n"  # inside every per-line limit
        for _ in range(PARTIAL_CONNECTIONS):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/v1/execute HTTP/1.1\r\nHost: x\r\n" + line * 3)
            writers.append(writer)
        await asyncio.gather(*(w.drain() for w in writers))
        async with asyncio.timeout(30):  # every connection accepted and its bytes read
            while fds(child.pid) < base_fds + PARTIAL_CONNECTIONS:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        held_rss = rss_mb(child.pid)
        for writer in writers:
            writer.close()
        writers.clear()
        after_fds = await settle(child.pid, base_fds)
        deadline = time.monotonic() + 5  # the server hands freed memory back within a second
        while (after_rss := rss_mb(child.pid)) - base_rss > 15 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        for writer in writers:
            writer.close()
        await asyncio.to_thread(stop, child)
    grown = held_rss - base_rss
    print(
        f"\n{PARTIAL_CONNECTIONS} partial heads of 24 KB: RSS {base_rss:.1f} -> {held_rss:.1f} "
        f"MB (+{grown:.1f}), after closing {after_rss:.1f} MB; descriptors {base_fds} -> "
        f"{after_fds}"
    )
    assert grown <= 50 * PARTIAL_CONNECTIONS / 800 + 10
    assert after_fds == base_fds
    assert after_rss - base_rss <= 15


async def test_legitimate_requests_stay_fast_under_slowloris_and_a_huge_args(
    scripted: ScriptedLambdaServer,
) -> None:
    child, port = await asyncio.to_thread(
        spawn,
        scripted.url,
        server={"header_timeout": 60, "body_timeout": 60, "max_body_bytes": 4 * 1024 * 1024},
    )
    writers: list[asyncio.StreamWriter] = []
    try:
        base_fds = await settle(child.pid, 0, within=0.2)
        for index in range(SLOWLORIS_CONNECTIONS):  # silent, partial heads and partial bodies
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if index % 3 == 1:
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: ")
            elif index % 3 == 2:
                writer.write(execute_head(1000) + b'{"command": ')
            writers.append(writer)
        huge = execute_body(args='"' + "x" * 1_000_000 + '"')
        reader, big = await asyncio.open_connection("127.0.0.1", port)
        big.write(execute_head(len(huge)) + huge)
        writers.append(big)
        samples = sorted([await health_ms(port) for _ in range(LATENCY_SAMPLES)])
        big_answer = await until_eof(reader, within=30)
        for writer in writers:
            writer.close()
        writers.clear()
        after_fds = await settle(child.pid, base_fds)
    finally:
        for writer in writers:
            writer.close()
        await asyncio.to_thread(stop, child)
    p50 = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"\n/health with {SLOWLORIS_CONNECTIONS} slow connections and a 1 MB args request: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(samples)}; descriptors {base_fds} -> "
        f"{after_fds}"
    )
    assert status(big_answer) == 413
    assert p99 < 100 * (5 if not FULL else 1)  # loose in the fast profile: a loaded machine
    assert after_fds == base_fds
