"""The Lambda Runtime API (``2018-06-01``), one small server per execution environment.

A runtime inside the environment (a ``bootstrap``, AWS's runtime interface clients, our Node
bootstrap) long-polls ``GET /runtime/invocation/next`` and answers on ``/{id}/response`` or
``/{id}/error``; a runtime that cannot start reports on ``/runtime/init/error``. h11 parses
HTTP here rather than aiohttp because a streamed ``/response`` reports a mid-stream error in
HTTP trailers (``Lambda-Runtime-Function-Error-Type``/``-Body``), which aiohttp's server
drops; h11 hands them over.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import h11

from module_sdk.aws_lambda.api import RESPONSE_LIMIT  # the largest buffered response
from module_sdk.local._streaming import ResponseSink

__all__ = ["RESPONSE_LIMIT", "Invocation", "Reply", "RuntimeApi"]

logger = logging.getLogger("module_sdk.local")

STREAM_LIMIT = 200 * 1024 * 1024
"""The largest streamed response (200 MiB, as on Lambda)."""
_PREFIX = "/2018-06-01/runtime/"
_ID_PATH = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
_READ_SIZE = 65536
_RECENT = 64


@dataclass(frozen=True, slots=True)
class Reply:
    """How an invocation ended, as the runtime reported it."""

    body: bytes
    error: bool
    """True for ``/error`` (and a streamed response that ended with an error)."""
    streamed: bool = False
    error_type: str = ""


@dataclass(eq=False, slots=True)
class Invocation:
    """One event handed to the environment, and how its answer arrives."""

    request_id: str
    body: bytes
    headers: dict[str, str]
    done: asyncio.Future[Reply] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    sink: ResponseSink | None = None
    """Set by a caller that wants a streamed response's chunks as they arrive."""

    def finish(self, reply: Reply) -> None:
        if not self.done.done():
            self.done.set_result(reply)


def _json(status: int, payload: dict[str, Any]) -> tuple[int, bytes]:
    return status, json.dumps(payload).encode()


_ACCEPTED = _json(202, {"status": "OK"})
_INVALID_ID = _json(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
_INVALID_STATE = _json(
    403, {"errorMessage": "State transition is not allowed", "errorType": "InvalidStateTransition"}
)
_NOT_FOUND = _json(404, {"errorMessage": "Not found", "errorType": "NotFound"})


def error_body(raw: bytes, error_type: str | None) -> bytes:
    """The body Lambda returns for ``/error``: the runtime's JSON object, or one made of it."""
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        if error_type and "errorType" not in parsed:
            parsed["errorType"] = error_type
        return json.dumps(parsed).encode()
    text = raw.decode("utf-8", errors="replace").strip()
    return json.dumps(
        {"errorMessage": text or "Unknown error", "errorType": error_type or "Runtime.Unknown"}
    ).encode()


class RuntimeApi:
    """The Runtime API of one execution environment, on ``127.0.0.1`` and a free port."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        """Resolved when the runtime first asks for an event (its init is done)."""
        self.init_error: asyncio.Future[bytes] = loop.create_future()
        """Resolved with the body of ``/runtime/init/error``."""
        self.current: Invocation | None = None
        self.asking = asyncio.Event()
        """Set while the runtime waits in ``/next`` (it is ready for another event)."""
        self._pending: deque[Invocation] = deque()
        self._waiters: deque[asyncio.Future[Invocation]] = deque()
        self._recent: deque[str] = deque(maxlen=_RECENT)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self) -> str:
        """Listen; return ``host:port`` (the ``AWS_LAMBDA_RUNTIME_API`` value)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self.address

    def submit(self, invocation: Invocation) -> None:
        """Hand an event to the runtime (now, or at its next ``/next``)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(invocation)
                return
        self._pending.append(invocation)

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    # -- connections ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                event = await self._event(conn, reader)
                if not isinstance(event, h11.Request):
                    break
                await self._dispatch(conn, event, reader, writer)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await reader.read(_READ_SIZE))

    @staticmethod
    async def _send(
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        head = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *((headers or {}).items()),
        ]
        data = conn.send(h11.Response(status_code=status, headers=head))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()

    async def _read_body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, limit: int
    ) -> tuple[bytes, bool, list[tuple[bytes, bytes]]]:
        """The request body (up to ``limit``), whether it was larger, and its trailers."""
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self._event(conn, reader)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size <= limit:
                    parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts), size > limit, list(event.headers)
            else:
                raise ConnectionError("request ended early")

    async def _dispatch(
        self,
        conn: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        target = request.target.decode("latin-1").split("?", 1)[0]
        method = request.method.decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if method == "GET" and target == _PREFIX + "invocation/next":
            await self._read_body(conn, reader, 0)
            await self._next(conn, reader, writer)
            return
        match = _ID_PATH.match(target)
        if method == "POST" and match is not None:
            request_id, kind = match.groups()
            invocation = self.current
            if invocation is None or invocation.request_id != request_id:
                known = request_id in self._recent
                await self._read_body(conn, reader, 0)
                status, body = _INVALID_STATE if known else _INVALID_ID
            elif invocation.done.done():
                await self._read_body(conn, reader, 0)
                status, body = _INVALID_STATE
            elif (
                kind == "response"
                and headers.get("lambda-runtime-function-response-mode", "").lower() == "streaming"
            ):
                content_type = headers.get("content-type", "application/octet-stream")
                status, body = await self._streamed(conn, reader, invocation, content_type)
            elif kind == "response":
                status, body = await self._response(conn, reader, invocation)
            else:
                raw, _, _ = await self._read_body(conn, reader, RESPONSE_LIMIT)
                error_type = headers.get("lambda-runtime-function-error-type")
                invocation.finish(Reply(error_body(raw, error_type), True))
                status, body = _ACCEPTED
            if invocation is not None and invocation.done.done():
                self._recent.append(invocation.request_id)
            await self._send(conn, writer, status, body)
            return
        if method == "POST" and target == _PREFIX + "init/error":
            raw, _, _ = await self._read_body(conn, reader, RESPONSE_LIMIT)
            if self.ready.done() or self.init_error.done():
                status, body = _INVALID_STATE
            else:
                error_type = headers.get("lambda-runtime-function-error-type")
                self.init_error.set_result(error_body(raw, error_type))
                status, body = _ACCEPTED
            await self._send(conn, writer, status, body)
            return
        await self._read_body(conn, reader, 0)
        await self._send(conn, writer, *_NOT_FOUND)

    async def _next(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
        self.asking.set()
        if self._pending:
            invocation = self._pending.popleft()
        else:
            waiter: asyncio.Future[Invocation] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            # While it waits, watch the connection: a runtime that went away must not be
            # handed the next event (it would be lost).
            closed = asyncio.ensure_future(reader.read(_READ_SIZE))
            try:
                watched: set[asyncio.Future[Any]] = {waiter, closed}
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    data = b"" if closed.exception() is not None else closed.result()
                    if not data:
                        if waiter.done() and not waiter.cancelled():
                            self._pending.appendleft(waiter.result())
                        waiter.cancel()
                        raise ConnectionError("the runtime closed its /next connection")
                    conn.receive_data(data)  # pipelined: h11 keeps it for the next cycle
                invocation = await waiter
            finally:
                if not closed.done():
                    closed.cancel()
                    # The reader allows one waiter: let the watch let go before reading on.
                    with contextlib.suppress(asyncio.CancelledError):
                        await closed
        self.asking.clear()
        self.current = invocation
        await self._send(conn, writer, 200, invocation.body, invocation.headers)

    async def _response(
        self, conn: h11.Connection, reader: asyncio.StreamReader, invocation: Invocation
    ) -> tuple[int, bytes]:
        raw, too_large, _ = await self._read_body(conn, reader, RESPONSE_LIMIT)
        if too_large:
            invocation.finish(Reply(_too_large(RESPONSE_LIMIT), True))
            return _json(
                413,
                {
                    "errorMessage": f"Exceeded maximum allowed payload size ({RESPONSE_LIMIT} "
                    "bytes).",
                    "errorType": "RequestEntityTooLarge",
                },
            )
        invocation.finish(Reply(raw, False))
        return _ACCEPTED

    async def _streamed(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        invocation: Invocation,
        content_type: str,
    ) -> tuple[int, bytes]:
        """A streamed ``/response``: chunks go to the caller as they arrive."""
        sink = invocation.sink
        if sink is not None:
            sink.start(content_type)
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self._event(conn, reader)
            if isinstance(event, h11.Data):
                chunk = bytes(event.data)
                size += len(chunk)
                if size > STREAM_LIMIT:
                    continue
                if sink is not None:
                    await sink.put(chunk)
                else:
                    parts.append(chunk)
            elif isinstance(event, h11.EndOfMessage):
                trailers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers
                }
                break
            else:
                raise ConnectionError("request ended early")
        if sink is not None:
            await sink.close()
        error_type = trailers.get("lambda-runtime-function-error-type")
        if size > STREAM_LIMIT:
            invocation.finish(
                Reply(_too_large(STREAM_LIMIT), True, True, "Function.ResponseSizeTooLarge")
            )
        elif error_type:
            raw = trailers.get("lambda-runtime-function-error-body", "")
            try:
                detail = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                detail = raw.encode()
            invocation.finish(Reply(error_body(detail, error_type), True, True, error_type))
        else:
            invocation.finish(Reply(b"".join(parts), False, True))
        return _ACCEPTED


def _too_large(limit: int) -> bytes:
    return json.dumps(
        {
            "errorMessage": "Response payload size exceeded maximum allowed payload size "
            f"({limit} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
    ).encode()
