"""Test helpers for module authors and for this SDK's own tests.

- :class:`FakeClock`: a clock whose ``sleep`` advances time instantly (no real waiting).
- :class:`HandlerInvoker`: an invoker that calls a Python handler in-process, the way Lambda
  would, so a module's handler and its parsing can be unit-tested without any server.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from module_sdk.aws_lambda.invoker import InvocationResult, InvokeCall

__all__ = [
    "FakeClock",
    "HandlerInvoker",
    "LambdaContext",
    "RedisServer",
    "Reply",
    "ScriptedLambdaServer",
]


class FakeClock:
    """A deterministic clock: ``sleep`` records the delay and advances time at once.

    Deadlines (:meth:`timeout_at`) expire when fake time reaches them, through
    :meth:`advance` or :meth:`sleep`: a test drives a deadline that runs out mid-call by
    advancing the clock from inside the call (a slow fake function).
    """

    def __init__(self, start: float = 1000.0, wall: datetime | None = None) -> None:
        self._now = start
        self._wall0 = wall or datetime(2026, 1, 1, tzinfo=UTC)
        self._start = start
        self.sleeps: list[float] = []
        self._deadlines: list[_FakeDeadline] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._now

    def utcnow(self) -> datetime:
        """The fake wall time (moves with :meth:`advance` and :meth:`sleep`)."""
        return self._wall0 + timedelta(seconds=self._now - self._start)

    def advance(self, seconds: float) -> None:
        """Move time forward (expiring the deadlines it reaches)."""
        self._now += seconds
        self._expire()

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, advance time, and yield to the loop once."""
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)
        self._expire()
        await asyncio.sleep(0)

    def timeout_at(self, deadline: float) -> _FakeDeadline:
        """A scope that cancels its body once fake time reaches ``deadline``."""
        return _FakeDeadline(self, deadline)

    def _expire(self) -> None:
        for scope in self._deadlines:
            if self._now >= scope.deadline:
                scope.expire()


class _FakeDeadline:
    """``asyncio.timeout`` driven by a :class:`FakeClock` instead of the loop's clock."""

    def __init__(self, clock: FakeClock, deadline: float) -> None:
        self.clock = clock
        self.deadline = deadline
        self._timeout = asyncio.timeout(None)

    def expire(self) -> None:
        """Cancel the body at its next await (once)."""
        if self._timeout.when() is None:
            self._timeout.reschedule(asyncio.get_running_loop().time())

    async def __aenter__(self) -> _FakeDeadline:
        await self._timeout.__aenter__()
        self.clock._deadlines.append(self)
        if self.clock.monotonic() >= self.deadline:
            self.expire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clock._deadlines.remove(self)
        await self._timeout.__aexit__(exc_type, exc, tb)


class LambdaContext:
    """A stand-in for the Lambda context object (name, request id, ARN, remaining time)."""

    def __init__(self, name: str, request_id: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
        self.memory_limit_in_mb = 128
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self.client_context = None
        self.identity = None

    def get_remaining_time_in_millis(self) -> int:
        """Three seconds, Lambda's default timeout."""
        return 3000


class HandlerInvoker:
    """Calls ``handler(event, context)`` in-process and answers like Lambda would.

    An exception becomes a function error with ``errorType``/``errorMessage``/``stackTrace``.
    ``calls`` keeps every event received.
    """

    def __init__(self, handler: Callable[[Any, Any], Any]) -> None:
        self.handler = handler
        self.calls: list[dict[str, Any]] = []

    async def invoke(self, call: InvokeCall) -> InvocationResult:
        """Run the handler on the decoded event."""
        event = json.loads(call.payload)
        self.calls.append(event)
        context = LambdaContext(call.function_name, f"local-{len(self.calls)}")
        status = {"Event": 202, "DryRun": 204}.get(call.invocation_type, 200)
        if call.invocation_type == "DryRun":
            return InvocationResult(status_code=status)
        try:
            result = self.handler(event, context)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            body = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return InvocationResult(
                status_code=status, payload=json.dumps(body).encode(), function_error="Unhandled"
            )
        payload = b"" if call.invocation_type == "Event" else json.dumps(result).encode()
        return InvocationResult(status_code=status, payload=payload)

    async def aclose(self) -> None:
        """Nothing to release."""


# -- a scripted Lambda API endpoint ---------------------------------------------------------


class Reply:
    """One scripted answer of :class:`ScriptedLambdaServer`.

    Build them with the class methods: ``Reply.ok({...})``, ``Reply.function_error(...)``,
    ``Reply.aws_error(429, "TooManyRequestsException", retry_after=2)``, ``Reply.drop()``,
    ``Reply.slow(seconds, then)``.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.delay = delay
        self.drop = drop

    @classmethod
    def ok(
        cls, reply: Any = None, *, raw: bytes | None = None, log_tail: str | None = None
    ) -> Reply:
        """A 200 with ``reply`` as JSON (or ``raw`` bytes as they are)."""
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if log_tail is not None:
            import base64

            headers["X-Amz-Log-Result"] = base64.b64encode(log_tail.encode()).decode()
        body = raw if raw is not None else json.dumps(reply).encode()
        return cls(200, body, headers)

    @classmethod
    def function_error(
        cls, error: Any, *, kind: str = "Unhandled", raw: bytes | None = None
    ) -> Reply:
        """A 200 with ``X-Amz-Function-Error`` and ``error`` as the JSON body."""
        body = raw if raw is not None else json.dumps(error).encode()
        return cls(200, body, {"X-Amz-Function-Error": kind, "X-Amz-Executed-Version": "$LATEST"})

    @classmethod
    def aws_error(
        cls,
        status: int,
        code: str,
        message: str = "",
        *,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> Reply:
        """An AWS-shaped error reply (``x-amzn-ErrorType`` and a JSON body)."""
        body: dict[str, Any] = {"Type": "User" if status < 500 else "Service", "message": message}
        headers = {
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/",
            "Content-Type": "application/json",
        }
        if reason is not None:
            body["Reason"] = reason
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            body["retryAfterSeconds"] = str(retry_after)
        return cls(status, json.dumps(body).encode(), headers)

    @classmethod
    def drop_connection(cls) -> Reply:
        """Close the connection without answering."""
        return cls(drop=True)

    @classmethod
    def slow(cls, seconds: float, then: Reply) -> Reply:
        """Answer ``then`` after ``seconds`` of (real) waiting."""
        return cls(then.status, then.body, then.headers, delay=seconds, drop=then.drop)


class ScriptedLambdaServer:
    """A tiny HTTP server speaking the Lambda Invoke API that answers from a script.

    It records every invocation (function name, qualifier, headers, body) so tests can prove
    exactly how many calls were made and where. Use as an async context manager; it listens
    on 127.0.0.1 and a free port::

        async with ScriptedLambdaServer() as server:
            server.script("dice", Reply.aws_error(429, "TooManyRequestsException"), Reply.ok({...}))
            adapter = LambdaAdapter("dice", "us-east-1", "dice", endpoint_url=server.url, ...)

    Functions without a script answer ``default`` (a successful echo of the event when None),
    or 404 ResourceNotFoundException if ``known`` is given and does not list them.
    """

    def __init__(
        self,
        *,
        default: Callable[[dict[str, Any]], Reply] | None = None,
        known: set[str] | None = None,
    ) -> None:
        self._scripts: dict[str, list[Reply]] = {}
        self._default = default
        self._known = known
        self.invocations: list[dict[str, Any]] = []
        self.url = ""
        self._runner: Any = None
        self._waiters: list[tuple[int, str | None, asyncio.Future[None]]] = []

    def script(self, function: str, *replies: Reply) -> None:
        """Queue replies for ``function`` (used in order, then the default applies)."""
        self._scripts.setdefault(function, []).extend(replies)

    def count(self, function: str | None = None) -> int:
        """Invocations received (for one function, or in all)."""
        if function is None:
            return len(self.invocations)
        return sum(1 for i in self.invocations if i["function"] == function)

    async def received(self, count: int = 1, function: str | None = None) -> None:
        """Wait until ``count`` invocations have arrived (for one function, or in all).

        No polling: the server wakes the waiter as each invocation arrives. Bound it with
        ``asyncio.timeout`` where a test must not wait for ever.
        """
        if self.count(function) >= count:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (count, function, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _wake(self) -> None:
        for count, function, waiter in list(self._waiters):
            if not waiter.done() and self.count(function) >= count:
                waiter.set_result(None)

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        function = request.match_info["name"]
        body = await request.read()
        record = {
            "function": function,
            "qualifier": request.query.get("Qualifier"),
            "invocation_type": request.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
            "log_type": request.headers.get("X-Amz-Log-Type"),
            "client_context": request.headers.get("X-Amz-Client-Context"),
            "authorization": request.headers.get("Authorization", ""),
            "body": body,
            "path": request.raw_path,
            "headers": dict(request.headers),
        }
        self.invocations.append(record)
        self._wake()
        queue = self._scripts.get(function)
        if queue:
            reply = queue.pop(0)
        elif self._known is not None and function not in self._known:
            reply = Reply.aws_error(
                404, "ResourceNotFoundException", f"Function not found: {function}"
            )
        elif self._default is not None:
            reply = self._default(json.loads(body or b"null"))
        elif record["invocation_type"] == "Event":
            reply = Reply(202)
        elif record["invocation_type"] == "DryRun":
            reply = Reply(204)
        else:
            reply = Reply.ok(raw=body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        headers = {"x-amzn-RequestId": f"req-{len(self.invocations)}", **reply.headers}
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    async def __aenter__(self) -> ScriptedLambdaServer:
        from aiohttp import web

        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._handle)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,  # a client that gives up cancels its slow reply
            shutdown_timeout=0.5,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# -- a real Redis server ----------------------------------------------------------------------


class RedisServer:
    """Runs a real ``redis-server`` on 127.0.0.1 and a free port, with a temporary directory.

    Nothing is persisted (no RDB snapshots, no AOF). Use as a context manager, or call
    :meth:`start` / :meth:`stop`; ``url`` is set once it answers PING::

        with RedisServer() as server:
            state = RedisState(server.url)

    Raises:
        FileNotFoundError: ``redis-server`` is not installed (``apt-get install redis-server``;
            ``make test`` installs it when missing).
    """

    def __init__(self, executable: str = "redis-server", *, start_timeout: float = 10.0) -> None:
        self.executable = executable
        self.start_timeout = start_timeout
        self.port = 0
        self.url = ""
        self._process: Any = None
        self._tmp: Any = None

    def start(self) -> RedisServer:
        """Start the server (a few tries if another process takes the free port first)."""
        import shutil
        import socket
        import subprocess
        import tempfile
        import time

        binary = shutil.which(self.executable)
        if binary is None:
            raise FileNotFoundError(
                f"{self.executable!r} was not found: install it with `apt-get install "
                "redis-server` (`make test` does this when it is missing)"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="redis-test-")
        for _ in range(5):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", self._tmp.name]
            args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
            args += ["--protected-mode", "yes", "--loglevel", "warning"]
            process = subprocess.Popen(  # noqa: S603 - a fixed local binary and arguments
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            self._process, self.port = process, port
                            self.url = f"redis://127.0.0.1:{port}/0"
                            return self
                except OSError:
                    time.sleep(0.02)
            process.kill()
            process.wait()
        self._tmp.cleanup()
        raise RuntimeError("redis-server did not start on a free port after 5 tries")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except Exception:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
