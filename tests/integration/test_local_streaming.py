"""InvokeWithResponseStream against the local runtime, parsed by boto3's and aiobotocore's own
event-stream parsers (``invoke_with_response_stream``)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from module_sdk.local import LocalLambdaRuntime
from module_sdk.local._streaming import event_message
from support.local import aio_client, boto3_client, write_functions
from support.runtime_api import EXAMPLES, needs_node

GATED = """
    const fs = require("node:fs");
    exports.handler = awslambda.streamifyResponse(async (event, stream, context) => {
      stream.write("first\\n");
      while (!fs.existsSync(event.gate)) await new Promise((r) => setTimeout(r, 5));
      stream.write("second\\n");
      if (event.hang) await new Promise(() => setTimeout(() => {}, 60000));
      stream.end();
    });
    exports.http = awslambda.streamifyResponse(async (event, stream) => {
      stream = awslambda.HttpResponseStream.from(stream, { statusCode: 201, headers: { a: "b" } });
      stream.write("body");
      stream.end();
    });
"""

TOML = """
    [functions.stream-node]
    runtime = "nodejs20.x"
    code = "stream-node"
    handler = "index.handler"

    [functions.gated]
    runtime = "nodejs20.x"
    code = "gated"
    handler = "index.handler"
    timeout = 1

    [functions.http]
    runtime = "nodejs20.x"
    code = "gated"
    handler = "index.http"
"""


def _runtime(tmp_path: Path, **kw: Any) -> LocalLambdaRuntime:
    directory = write_functions(tmp_path / "fns", ["echo", "boom"], TOML)
    shutil.copytree(EXAMPLES / "stream-node", directory / "stream-node")
    (directory / "gated").mkdir()
    (directory / "gated" / "index.js").write_text(textwrap.dedent(GATED))
    return LocalLambdaRuntime(directory, **kw)


def _stream_boto3(url: str, **params: Any) -> dict[str, Any]:
    client = boto3_client(url)
    try:
        response = client.invoke_with_response_stream(**params)
        return {
            "status": response["StatusCode"],
            "content_type": response.get("ResponseStreamContentType"),
            "version": response.get("ExecutedVersion"),
            "events": list(response["EventStream"]),
        }
    finally:
        client.close()


async def _stream_aio(url: str, **params: Any) -> dict[str, Any]:
    async with aio_client(url) as client:
        response = await client.invoke_with_response_stream(**params)
        events = [event async for event in response["EventStream"]]
        return {
            "status": response["StatusCode"],
            "content_type": response.get("ResponseStreamContentType"),
            "version": response.get("ExecutedVersion"),
            "events": events,
        }


async def _both(url: str, **params: Any) -> list[dict[str, Any]]:
    return [await asyncio.to_thread(_stream_boto3, url, **params), await _stream_aio(url, **params)]


def _chunks(result: dict[str, Any]) -> list[bytes]:
    return [e["PayloadChunk"]["Payload"] for e in result["events"] if "PayloadChunk" in e]


def _complete(result: dict[str, Any]) -> dict[str, Any]:
    assert "InvokeComplete" in result["events"][-1]
    complete: dict[str, Any] = result["events"][-1]["InvokeComplete"]
    return complete


@needs_node
async def test_streamed_chunks_and_invoke_complete(tmp_path: Path) -> None:
    """Each write is a PayloadChunk, then InvokeComplete with the log tail; both parsers agree."""
    async with _runtime(tmp_path) as rt:
        results = await _both(
            rt.url,
            FunctionName="stream-node",
            Payload=b'{"count": 3, "delay_ms": 1}',
            LogType="Tail",
        )
    for result in results:
        assert result["status"] == 200 and result["version"] == "$LATEST"
        assert result["content_type"] == "text/plain"
        assert b"".join(_chunks(result)) == b"chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n"
        complete = _complete(result)
        assert "ErrorCode" not in complete
        assert base64.b64decode(complete["LogResult"]).decode().startswith("START RequestId: ")


@needs_node
async def test_chunks_arrive_before_the_function_ends(tmp_path: Path) -> None:
    """The first chunk reaches the caller while the function still waits for the test's gate."""
    gate = tmp_path / "gate"
    async with _runtime(tmp_path) as rt, aio_client(rt.url) as client:
        payload = json.dumps({"gate": str(gate)}).encode()
        response = await client.invoke_with_response_stream(FunctionName="gated", Payload=payload)
        events = response["EventStream"].__aiter__()
        first = await events.__anext__()
        assert first == {"PayloadChunk": {"Payload": b"first\n"}}
        assert rt.in_flight("gated") == 1  # still running: the chunk was not buffered
        gate.touch()
        rest = [event async for event in events]
    assert rest[0] == {"PayloadChunk": {"Payload": b"second\n"}}
    assert rest[-1] == {"InvokeComplete": {}}


@needs_node
async def test_error_after_chunks_is_in_invoke_complete(tmp_path: Path) -> None:
    """A failure mid-stream (trailers on the Runtime API) ends the stream with ErrorCode."""
    async with _runtime(tmp_path) as rt:
        results = await _both(
            rt.url, FunctionName="stream-node", Payload=b'{"count": 2, "delay_ms": 1, "fail": true}'
        )
    for result in results:
        assert _chunks(result) == [b"chunk 1 of 2\n", b"chunk 2 of 2\n"]
        complete = _complete(result)
        assert complete["ErrorCode"] == "Error"
        assert complete["ErrorDetails"] == "failed after streaming"


@needs_node
async def test_timeout_mid_stream(tmp_path: Path) -> None:
    """A stream that runs past the timeout ends with Sandbox.Timedout after its chunks."""
    gate = tmp_path / "gate"
    gate.touch()
    async with _runtime(tmp_path) as rt:
        result = await _stream_aio(
            rt.url,
            FunctionName="gated",
            Payload=json.dumps({"gate": str(gate), "hang": True}).encode(),
        )
        assert rt.stats.outcomes["timeout"] == 1
    assert _chunks(result) == [b"first\n", b"second\n"]
    assert _complete(result)["ErrorCode"] == "Sandbox.Timedout"


@needs_node
async def test_http_integration_response_prelude(tmp_path: Path) -> None:
    """HttpResponseStream.from sends its JSON prelude and 8 null bytes, with its content type."""
    async with _runtime(tmp_path) as rt:
        result = await _stream_aio(rt.url, FunctionName="http", Payload=b"{}")
    assert result["content_type"] == "application/vnd.awslambda.http-integration-response"
    body = b"".join(_chunks(result))
    prelude, _, rest = body.partition(b"\x00" * 8)
    assert json.loads(prelude) == {"statusCode": 201, "headers": {"a": "b"}}
    assert rest == b"body"


async def test_buffered_function_streams_its_reply_as_one_chunk(tmp_path: Path) -> None:
    """A Python worker function answers in one PayloadChunk; its error in InvokeComplete."""
    async with _runtime(tmp_path) as rt:
        ok = await _both(rt.url, FunctionName="echo", Payload=b'{"a": 1}')
        failed = await _stream_aio(rt.url, FunctionName="boom", Payload=b"{}")
    for result in ok:
        assert result["content_type"] == "application/json"
        (chunk,) = _chunks(result)
        assert json.loads(chunk)["event"] == {"a": 1}
        assert _complete(result) == {}
    assert _chunks(failed) == []
    assert _complete(failed)["ErrorCode"] == "ValueError"
    assert _complete(failed)["ErrorDetails"] == "dice are missing"


async def test_dry_run_event_and_unknown_function(tmp_path: Path) -> None:
    """DryRun answers 204; Event is refused (400); an unknown function is 404, as on Lambda."""
    async with _runtime(tmp_path) as rt:
        dry = await _stream_aio(rt.url, FunctionName="echo", InvocationType="DryRun")
        assert dry["status"] == 204
        async with aio_client(rt.url) as client:
            with pytest.raises(ClientError) as event:
                await client.invoke_with_response_stream(
                    FunctionName="echo", InvocationType="Event", Payload=b"{}"
                )
            with pytest.raises(client.exceptions.ResourceNotFoundException):
                await client.invoke_with_response_stream(FunctionName="nope", Payload=b"{}")
    assert event.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "[RequestResponse, DryRun]" in event.value.response["Error"]["Message"]


def test_event_message_framing_is_what_botocore_parses() -> None:
    """Our encoder's messages decode with botocore's EventStreamBuffer, CRCs checked."""
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(event_message([(":event-type", "X"), ("k", "v" * 300)], b"\x00payload"))
    buffer.add_data(event_message([], b""))
    first, second = list(buffer)
    assert first.headers == {":event-type": "X", "k": "v" * 300}
    assert first.payload == b"\x00payload"
    assert second.headers == {} and second.payload == b""
