"""LambdaAdapter.stream_async against the local runtime's InvokeWithResponseStream, on the lean
and the aiobotocore paths: chunks as they arrive, retries only before the first one."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from module_sdk import ExecuteRequest, ExecuteResponse, LambdaAdapter
from module_sdk.errors import ErrorCode, InvocationError, ModuleSDKError
from module_sdk.local import FaultDecision, LocalLambdaRuntime
from module_sdk.resilience.breaker import CircuitBreakerConfig
from module_sdk.resilience.cache import ResponseCacheConfig
from module_sdk.resilience.pipeline import Invocation
from module_sdk.resilience.ratelimit import RateLimit
from module_sdk.testing import FakeClock
from support.runtime_api import EXAMPLES, needs_node

pytestmark = needs_node

GATED = """
    const fs = require("node:fs");
    exports.handler = awslambda.streamifyResponse(async (event, stream) => {
      stream.write("first ");
      const gate = event.gate;
      while (gate && !fs.existsSync(gate)) await new Promise((r) => setTimeout(r, 5));
      stream.write("second");
      stream.end();
    });
"""


def _runtime(tmp_path: Path) -> LocalLambdaRuntime:
    directory = tmp_path / "fns"
    directory.mkdir()
    shutil.copytree(EXAMPLES / "stream-node", directory / "stream-node")
    (directory / "gated").mkdir()
    (directory / "gated" / "index.js").write_text(textwrap.dedent(GATED))
    (directory / "functions.toml").write_text(
        textwrap.dedent(
            """
            [functions.stream-node]
            runtime = "nodejs20.x"
            code = "stream-node"
            handler = "index.handler"

            [functions.gated]
            runtime = "nodejs20.x"
            code = "gated"
            handler = "index.handler"
            """
        )
    )
    return LocalLambdaRuntime(directory)


class _Adapter(LambdaAdapter):
    """Adds fields to the event (the stream example reads ``count`` and ``fail``)."""

    extra: dict[str, Any] = {}

    def _build_lambda_payload(self, request: ExecuteRequest) -> dict[str, Any]:
        return {**super()._build_lambda_payload(request), **self.extra}


def _adapter(url: str, function: str, http_client: str, **kw: Any) -> _Adapter:
    settings: dict[str, Any] = {
        "endpoint_url": url,
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
        "http_client": http_client,
        "initial_retry_delay": 0.001,
        "max_retry_delay": 0.001,
    }
    settings.update(kw)
    return _Adapter(function, "us-east-1", "streamer", **settings)


def _request() -> ExecuteRequest:
    return ExecuteRequest(
        command="!stream",
        args=[],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id="stream-1",
        platform="twitch",
    )


async def _drain(adapter: LambdaAdapter, into: list[bytes]) -> None:
    async for chunk in adapter.stream_async(_request()):
        into.append(chunk)


async def _collect(adapter: LambdaAdapter, request: ExecuteRequest) -> list[bytes]:
    return [chunk async for chunk in adapter.stream_async(request)]


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_chunks_arrive_one_by_one(tmp_path: Path, http_client: str) -> None:
    """The adapter yields the first chunk while the function is still running."""
    gate = tmp_path / "gate"
    async with _runtime(tmp_path) as rt, _adapter(rt.url, "gated", http_client) as adapter:
        adapter.extra = {"gate": str(gate)}
        chunks = adapter.stream_async(_request())
        assert await chunks.__anext__() == b"first "
        assert rt.in_flight("gated") == 1
        gate.touch()
        assert [chunk async for chunk in chunks] == [b"second"]


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_throttle_before_the_first_chunk_is_retried(tmp_path: Path, http_client: str) -> None:
    """A 429 before anything streamed is retried; the function runs once."""
    async with _runtime(tmp_path) as rt, _adapter(rt.url, "stream-node", http_client) as adapter:
        rt.script_faults("stream-node", FaultDecision(throttle=True, retry_after=0))
        chunks = await _collect(adapter, _request())
        assert rt.stats.faults["throttle"] == 1
        assert rt.stats.invocations["stream-node"] == 1
    assert b"".join(chunks) == b"chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n"


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_function_error_after_chunks_raises_and_is_not_retried(
    tmp_path: Path, http_client: str
) -> None:
    """InvokeComplete's error raises function_error after the chunks; one run only."""
    received: list[bytes] = []
    async with _runtime(tmp_path) as rt, _adapter(rt.url, "stream-node", http_client) as adapter:
        adapter.extra = {"count": 2, "fail": True}
        with pytest.raises(ModuleSDKError) as failure:
            await _drain(adapter, received)
        assert rt.stats.invocations["stream-node"] == 1
    assert received == [b"chunk 1 of 2\n", b"chunk 2 of 2\n"]
    assert failure.value.error_code == ErrorCode.FUNCTION_ERROR
    assert failure.value.message == "Error: failed after streaming"


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_connection_lost_after_chunks_is_not_retried(
    tmp_path: Path, http_client: str
) -> None:
    """A stream cut after its chunks raises; nothing is sent again."""
    async with _runtime(tmp_path) as rt, _adapter(rt.url, "stream-node", http_client) as adapter:
        rt.script_faults("stream-node", FaultDecision(drop_after_run=True))
        received: list[bytes] = []
        with pytest.raises(ModuleSDKError, match="not retried"):
            await _drain(adapter, received)
        assert rt.stats.invocations["stream-node"] == 1
    assert b"".join(received).startswith(b"chunk 1 of 3\n")


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_total_timeout_bounds_the_whole_stream(tmp_path: Path, http_client: str) -> None:
    """A stream that stalls after its first chunk ends at total_timeout (deadline_exceeded).

    The deadline runs on the adapter's clock: a FakeClock passes it while the stream stalls,
    however long a loaded machine takes to start the function and send the first chunk.
    """
    gate = tmp_path / "never"
    clock = FakeClock()
    async with (
        _runtime(tmp_path) as rt,
        _adapter(rt.url, "gated", http_client, total_timeout=1.0, clock=clock) as adapter,
    ):
        adapter.extra = {"gate": str(gate)}
        chunks = adapter.stream_async(_request())
        assert await chunks.__anext__() == b"first "
        stalled = asyncio.ensure_future(chunks.__anext__())
        await asyncio.sleep(0)  # the read is waiting for the next chunk
        clock.advance(1.5)
        with pytest.raises(ModuleSDKError) as failure:
            await stalled
        gate.touch()  # let the function finish before the runtime stops
    assert failure.value.error_code == ErrorCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_rate_limit_admits_a_stream_like_a_call(tmp_path: Path, http_client: str) -> None:
    """The adapter's rate limit refuses a stream before anything is sent."""
    limit = RateLimit(rate=0.001, burst=1)
    async with (
        _runtime(tmp_path) as rt,
        _adapter(rt.url, "stream-node", http_client, rate_limit=limit) as adapter,
    ):
        adapter.extra = {"count": 1}
        assert await _collect(adapter, _request()) == [b"chunk 1 of 1\n"]
        with pytest.raises(ModuleSDKError) as refused:
            await _collect(adapter, _request())
        assert rt.stats.invocations["stream-node"] == 1
        health = adapter.get_health_status()
    assert refused.value.error_code == ErrorCode.RATE_LIMITED
    assert health["total_requests"] == 1  # a refusal says nothing about the function
    assert health["last_error_code"] == "rate_limited"


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_open_breaker_stops_a_stream_before_it_is_sent(
    tmp_path: Path, http_client: str
) -> None:
    """A stream that fails before its first event counts for the breaker; once open, the next
    stream is refused without reaching Lambda."""
    breaker = CircuitBreakerConfig(consecutive_failures=1, open_duration=600.0)
    async with (
        _runtime(tmp_path) as rt,
        _adapter(
            rt.url, "stream-node", http_client, max_retries=0, circuit_breaker=breaker
        ) as adapter,
    ):
        rt.script_faults("stream-node", FaultDecision(throttle=True, retry_after=0))
        with pytest.raises(ModuleSDKError) as throttled:
            await _collect(adapter, _request())
        with pytest.raises(ModuleSDKError) as refused:
            await _collect(adapter, _request())
        assert rt.stats.faults["throttle"] == 1
        assert rt.stats.invocations.get("stream-node", 0) == 0
        health = adapter.get_health_status()
    assert throttled.value.error_code == ErrorCode.THROTTLED
    assert refused.value.error_code == ErrorCode.CIRCUIT_OPEN
    assert health["circuit_state"] == "open"
    assert (health["total_requests"], health["total_failures"]) == (1, 1)


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_streams_are_never_cached(tmp_path: Path, http_client: str) -> None:
    """A cached command still streams from the function every time."""
    cache = ResponseCacheConfig(commands={"!stream": 300.0})
    async with (
        _runtime(tmp_path) as rt,
        _adapter(rt.url, "stream-node", http_client, cache=cache) as adapter,
    ):
        adapter.extra = {"count": 1}
        first = await _collect(adapter, _request())
        second = await _collect(adapter, _request())
        assert rt.stats.invocations["stream-node"] == 2
    assert first == second == [b"chunk 1 of 1\n"]


class _Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.finished: list[ExecuteResponse] = []

    def on_start(self, invocation: Invocation) -> None:
        self.events.append("start")

    def on_attempt(self, invocation: Invocation) -> None:
        self.events.append(f"attempt {invocation.attempts}")

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        self.events.append(f"retry {error.error_code.value}")

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        self.events.append(f"finish {response.error_code}")
        self.finished.append(response)


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_observers_and_health_see_each_stream_end(tmp_path: Path, http_client: str) -> None:
    """Observers hear a stream start, its attempts and retries, and its end (after the last
    chunk, or with the error that ended it); health counts it like a call."""
    recorder = _Recorder()
    async with (
        _runtime(tmp_path) as rt,
        _adapter(rt.url, "stream-node", http_client, observers=[recorder]) as adapter,
    ):
        rt.script_faults("stream-node", FaultDecision(throttle=True, retry_after=0))
        adapter.extra = {"count": 1}
        await _collect(adapter, _request())
        adapter.extra = {"count": 1, "fail": True}
        with pytest.raises(ModuleSDKError):
            await _collect(adapter, _request())
        health = adapter.get_health_status()
    assert recorder.events == [
        "start",
        "attempt 1",
        "retry throttled",
        "attempt 2",
        "finish None",
        "start",
        "attempt 1",
        "finish function_error",
    ]
    ok, failed = recorder.finished
    assert ok.success and ok.diagnostics is not None and ok.diagnostics.attempts == 2
    assert ok.diagnostics.status_code == 200
    assert failed.error == "Error: failed after streaming"
    assert (health["total_requests"], health["total_failures"]) == (2, 1)
    assert (health["in_flight"], health["retry_count"]) == (0, 1)
    assert health["last_error_code"] == "function_error"


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_a_reader_that_stops_early_ends_the_stream_as_cancelled(
    tmp_path: Path, http_client: str
) -> None:
    """Closing the iterator after one chunk releases the stream; the call is not counted as
    a failure of the function."""
    gate = tmp_path / "gate"
    recorder = _Recorder()
    async with (
        _runtime(tmp_path) as rt,
        _adapter(rt.url, "gated", http_client, observers=[recorder]) as adapter,
    ):
        adapter.extra = {"gate": str(gate)}
        chunks = adapter.stream_async(_request())
        assert await chunks.__anext__() == b"first "
        await chunks.aclose()  # type: ignore[attr-defined]
        gate.touch()
        health = adapter.get_health_status()
    assert recorder.events[-1] == "finish cancelled"
    assert (health["total_requests"], health["in_flight"]) == (0, 0)


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_aclose_under_an_open_stream_fails_its_next_read(
    tmp_path: Path, http_client: str
) -> None:
    """aclose() does not wait for a stream being read: its next read raises, not retried."""
    gate = tmp_path / "gate"
    async with _runtime(tmp_path) as rt:
        adapter = _adapter(rt.url, "gated", http_client)
        adapter.extra = {"gate": str(gate)}
        chunks = adapter.stream_async(_request())
        assert await chunks.__anext__() == b"first "
        await adapter.aclose()
        with pytest.raises(ModuleSDKError, match="not retried"):
            await chunks.__anext__()
        gate.touch()
        assert rt.stats.invocations["gated"] == 1
