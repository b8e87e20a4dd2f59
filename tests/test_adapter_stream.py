"""LambdaAdapter.stream_async against the local runtime's InvokeWithResponseStream, on the lean
and the aiobotocore paths: chunks as they arrive, retries only before the first one."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.errors import ErrorCode, ModuleSDKError
from module_sdk.local import FaultDecision, LocalLambdaRuntime
from runtime_api_support import EXAMPLES, needs_node

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
    """A stream that stalls after its first chunk ends at total_timeout (deadline_exceeded)."""
    gate = tmp_path / "never"
    async with (
        _runtime(tmp_path) as rt,
        _adapter(rt.url, "gated", http_client, total_timeout=1.0) as adapter,
    ):
        adapter.extra = {"gate": str(gate)}
        chunks = adapter.stream_async(_request())
        assert await chunks.__anext__() == b"first "
        with pytest.raises(ModuleSDKError) as failure:
            await chunks.__anext__()
        gate.touch()  # let the function finish before the runtime stops
    assert failure.value.error_code == ErrorCode.DEADLINE_EXCEEDED
