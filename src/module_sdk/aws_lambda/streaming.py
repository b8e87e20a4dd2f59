"""InvokeWithResponseStream, on both HTTP paths: the events of one streamed invocation.

:func:`open_stream` sends the call (through aiobotocore's ``invoke_with_response_stream``, or
the lean signed aiohttp request parsed with botocore's own event-stream decoder) and returns
an :class:`EventStream` once the reply's head is in: errors before it (throttles, 5xx, network)
are classified like ``invoke``'s, so the adapter's retry policy treats them the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from module_sdk.aws_lambda.classify import CLASSIFIED
from module_sdk.aws_lambda.invoker import AioBotocoreInvoker, InvokeCall, invoke_params
from module_sdk.aws_lambda.lean_invoker import LeanInvoker
from module_sdk.errors import ErrorCode, InvocationError

__all__ = ["Chunk", "Complete", "EventStream", "open_stream"]

_SAFE = "-_.~"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A ``PayloadChunk``: bytes the function wrote."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Complete:
    """``InvokeComplete``: the end of the stream (an error code when the run failed)."""

    error_code: str | None = None
    error_details: str | None = None
    log_result: str | None = None


class EventStream:
    """The events of one streamed invocation, read as they arrive; errors are classified."""

    def __init__(
        self,
        events: AsyncIterator[Chunk | Complete],
        close: Any,
        *,
        request_id: str | None,
        executed_version: str | None,
        content_type: str | None,
        status_code: int,
    ) -> None:
        self._events = events
        self._close = close
        self.request_id = request_id
        self.executed_version = executed_version
        self.content_type = content_type
        self.status_code = status_code

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Chunk | Complete:
        with CLASSIFIED:
            return await self._events.__anext__()

    async def aclose(self) -> None:
        """Release the connection (a stream left unfinished is dropped)."""
        result = self._close()
        if asyncio.iscoroutine(result):
            await result


def _event(raw: dict[str, Any]) -> Chunk | Complete | None:
    if "PayloadChunk" in raw:
        return Chunk(bytes(raw["PayloadChunk"].get("Payload") or b""))
    if "InvokeComplete" in raw:
        done = raw["InvokeComplete"]
        return Complete(done.get("ErrorCode"), done.get("ErrorDetails"), done.get("LogResult"))
    return None


async def _botocore_stream(invoker: AioBotocoreInvoker, call: InvokeCall) -> EventStream:
    client = await invoker.client()
    response = await client.invoke_with_response_stream(**invoke_params(call))
    stream = response["EventStream"]

    async def events() -> AsyncIterator[Chunk | Complete]:
        async for raw in stream:
            event = _event(raw)
            if event is not None:
                yield event

    metadata = response.get("ResponseMetadata", {})
    return EventStream(
        events(),
        stream.close if hasattr(stream, "close") else (lambda: None),
        request_id=metadata.get("RequestId"),
        executed_version=response.get("ExecutedVersion"),
        content_type=response.get("ResponseStreamContentType"),
        status_code=int(response.get("StatusCode") or metadata.get("HTTPStatusCode") or 0),
    )


async def _lean_stream(invoker: LeanInvoker, call: InvokeCall) -> EventStream:
    """The lean path: the request botocore sends, signed with SigV4; events decoded by
    botocore's ``EventStreamBuffer`` and its rest-json event parser."""
    from botocore.eventstream import EventStreamBuffer
    from botocore.parsers import EventStreamJSONParser
    from yarl import URL

    from module_sdk.aws_lambda.lean_invoker import _client_error, _send_error, invoke_target

    client = await invoker.client()
    _, query = invoke_target(call.function_name, call.qualifier)
    path = (
        f"/2021-11-15/functions/{quote(call.function_name, safe=_SAFE)}"
        "/response-streaming-invocations"
    )
    headers = await invoker.signed_headers(client, call, path, query)
    url = client.url(path, query)
    try:
        response = await client.http.post(
            URL(url, encoded=True),
            headers=headers,
            data=call.payload,
            proxy=client.endpoint.proxy,
            proxy_headers=client.endpoint.proxy_headers or None,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise _send_error(exc, url, client.endpoint.proxy) from exc
    if response.status >= 300:
        async with response:
            raw = await response.read()
        error = _client_error(client, response.status, response.headers, raw)
        error.operation_name = "InvokeWithResponseStream"
        raise error
    model = client.endpoint.service_model
    shape = model.operation_model("InvokeWithResponseStream").output_shape.members["EventStream"]
    parser = EventStreamJSONParser()

    async def events() -> AsyncIterator[Chunk | Complete]:
        buffer = EventStreamBuffer()
        async for data in response.content.iter_any():
            buffer.add_data(data)
            for message in buffer:
                parsed = parser.parse(message.to_response_dict(), shape)
                if "Error" in parsed:  # an exception event: the service failed mid-stream
                    error = parsed["Error"]
                    raise InvocationError(
                        f"the stream failed: {error.get('Code')}: {error.get('Message')}",
                        error_code=ErrorCode.SERVICE_ERROR,
                        retryable=False,
                        aws_code=error.get("Code"),
                    )
                event = _event(parsed)
                if event is not None:
                    yield event

    return EventStream(
        events(),
        response.release,
        request_id=response.headers.get("x-amzn-RequestId"),
        executed_version=response.headers.get("X-Amz-Executed-Version"),
        content_type=response.headers.get("Content-Type"),
        status_code=response.status,
    )


async def open_stream(invoker: Any, call: InvokeCall) -> EventStream:
    """Start a streamed invocation; return its events once the reply's head arrived.

    Raises:
        InvocationError: classified like ``invoke``'s (retryable or not).
    """
    with CLASSIFIED:
        if isinstance(invoker, LeanInvoker):
            return await _lean_stream(invoker, call)
        if isinstance(invoker, AioBotocoreInvoker):
            return await _botocore_stream(invoker, call)
    raise TypeError(f"{type(invoker).__name__} cannot stream: use the lean or aiobotocore path")
