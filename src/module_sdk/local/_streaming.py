"""Response streaming: the event-stream framing of InvokeWithResponseStream, and the sink that
carries a function's streamed chunks from its Runtime API to the caller as they arrive."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Iterable

__all__ = ["ResponseSink", "event_message", "invoke_complete", "payload_chunk"]

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING = 7
"""The event-stream header value type of a UTF-8 string."""


def event_message(headers: Iterable[tuple[str, str]], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message: prelude (total length, headers
    length, CRC32), headers (string values), payload, message CRC32."""
    encoded = bytearray()
    for name, value in headers:
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + bytes([_STRING])
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = _PRELUDE.size + _CRC.size + len(encoded) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(encoded))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + bytes(encoded) + payload
    return message + _CRC.pack(zlib.crc32(message))


def payload_chunk(data: bytes) -> bytes:
    """A ``PayloadChunk`` event carrying ``data``."""
    return event_message(
        [
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        data,
    )


def invoke_complete(
    error_code: str | None = None, error_details: str | None = None, log_result: str | None = None
) -> bytes:
    """The ``InvokeComplete`` event that ends every stream (its fields only when set)."""
    body: dict[str, str] = {}
    if error_code is not None:
        body["ErrorCode"] = error_code
    if error_details is not None:
        body["ErrorDetails"] = error_details
    if log_result is not None:
        body["LogResult"] = log_result
    return event_message(
        [
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        json.dumps(body).encode(),
    )


class ResponseSink:
    """Where a streamed response goes: the Runtime API puts, the Invoke front takes.

    Bounded, so a caller that reads slowly slows the function down (through TCP) instead of
    the runtime buffering up to 200 MB.
    """

    def __init__(self, depth: int = 16) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(depth)
        self.content_type: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """Resolved when the function starts streaming (its response's Content-Type)."""
        self.abandoned = False

    def start(self, content_type: str) -> None:
        if not self.content_type.done():
            self.content_type.set_result(content_type)

    async def put(self, chunk: bytes) -> None:
        if chunk and not self.abandoned:
            await self._queue.put(chunk)

    async def close(self) -> None:
        if not self.abandoned:
            await self._queue.put(None)

    def abandon(self) -> None:
        """The caller is gone: drop what is queued and whatever comes (the run goes on)."""
        self.abandoned = True
        while not self._queue.empty():
            self._queue.get_nowait()

    def take_nowait(self) -> list[bytes]:
        """The chunks queued now (after the run ended without closing the stream)."""
        chunks = []
        while not self._queue.empty():
            chunk = self._queue.get_nowait()
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    async def get(self) -> bytes | None:
        """The next chunk, or None at the end of the stream."""
        return await self._queue.get()
