"""Execution environments that run a Lambda runtime speaking the Runtime API.

Node.js functions (our bootstrap, ``_node/bootstrap.cjs``), custom runtimes
(``provided.al2023``: ``CODE/bootstrap``) and Python through AWS's ``awslambdaric`` each run as
one process per environment, with their own :class:`~module_sdk.local._rapi.RuntimeApi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from module_sdk.local._config import FunctionSpec
from module_sdk.local._environments import (
    INIT_TIMEOUT,
    Crashed,
    InitFailed,
    RunResult,
    TimedOut,
    exit_text,
    lambda_environment,
)
from module_sdk.local._process import kill_group, spawn
from module_sdk.local._rapi import Invocation, Reply, RuntimeApi
from module_sdk.local._streaming import ResponseSink

__all__ = ["NODE_BOOTSTRAP", "ApiEnvironment"]

NODE_BOOTSTRAP = Path(__file__).with_name("_node") / "bootstrap.cjs"
_LOG_KEEP = 256 * 1024
_DROPPED = b"[... earlier output dropped ...]\n"


class _Output:
    """What the environment's processes write to stdout and stderr (one pipe, read as it comes).

    The pipe is ours rather than asyncio's so :meth:`take` can read everything written so far
    at once: a runtime prints, then posts its response, so when the response arrives the
    output before it is already in the pipe.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._buffer = bytearray()
        self._dropped = False
        self._loop = asyncio.get_running_loop()
        self._open = True
        self._loop.add_reader(self.read_fd, self._drain)

    def child_started(self) -> None:
        os.close(self.write_fd)
        self.write_fd = -1

    def _drain(self) -> None:
        while self._open:
            try:
                data = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self._buffer += data
            if len(self._buffer) > 2 * _LOG_KEEP:
                del self._buffer[: len(self._buffer) - _LOG_KEEP]
                self._dropped = True

    def take(self) -> str:
        """Everything written since the last call (its newest 256 KiB)."""
        self._drain()
        data = bytes(self._buffer[-_LOG_KEEP:])
        if self._dropped or len(self._buffer) > _LOG_KEEP:
            data = _DROPPED + data
        self._buffer.clear()
        self._dropped = False
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._open:
            self._open = False
            self._loop.remove_reader(self.read_fd)
            os.close(self.read_fd)
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1


def _max_rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _command(spec: FunctionSpec) -> list[str]:
    """The environment's process, or :class:`InitFailed` naming what is missing."""
    if spec.kind == "provided":
        return [str(spec.code_dir / "bootstrap")]
    if spec.kind == "node":
        node = shutil.which("node")
        if node is None:
            raise InitFailed(
                {
                    "errorType": "Runtime.InvalidEntrypoint",
                    "errorMessage": f"{spec.runtime} needs Node.js: no node on PATH "
                    "(install Node.js 18 or later)",
                },
                "",
            )
        return [node, str(NODE_BOOTSTRAP)]
    if importlib.util.find_spec("awslambdaric") is None:
        raise InitFailed(
            {
                "errorType": "Runtime.InvalidEntrypoint",
                "errorMessage": "awslambdaric is not installed: pip install "
                "'waddlebot-module-sdk[ric]' (or awslambdaric)",
            },
            "",
        )
    return [sys.executable, "-m", "awslambdaric", spec.handler]


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0"


class ApiEnvironment:
    """One process running a Lambda runtime against its own Runtime API."""

    def __init__(
        self,
        spec: FunctionSpec,
        proc: asyncio.subprocess.Process,
        api: RuntimeApi,
        output: _Output,
        stream: str,
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.api = api
        self.output = output
        self.log_stream = stream
        self.uses = 0
        self.dead = False
        self.idle_since = time.monotonic()
        self.exited: asyncio.Future[int] = asyncio.ensure_future(proc.wait())

    @classmethod
    async def start(cls, spec: FunctionSpec, env: dict[str, str]) -> tuple[ApiEnvironment, str]:
        """Start the runtime and wait until it asks for its first event.

        Raises:
            InitFailed: it reported an init error, exited, or did not get ready in time.
        """
        argv = _command(spec)
        api = RuntimeApi()
        await api.start()
        output = _Output()
        stream_env, stream = lambda_environment(spec, env)
        stream_env["AWS_LAMBDA_RUNTIME_API"] = api.address
        stream_env["LAMBDA_RUNTIME_DIR"] = str(Path(argv[-1]).parent)
        if spec.kind == "provided":
            stream_env.pop("AWS_EXECUTION_ENV", None)
        try:
            proc = await spawn(
                argv,
                env=stream_env,
                cwd=str(spec.code_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output.write_fd,
                stderr=output.write_fd,
            )
        except OSError as exc:
            output.close()
            await api.aclose()
            raise InitFailed(
                {
                    "errorType": "Runtime.InvalidEntrypoint",
                    "errorMessage": f"cannot start {Path(argv[0]).name}: {exc.strerror}",
                },
                "",
            ) from None
        output.child_started()
        environment = cls(spec, proc, api, output, stream)
        try:
            await environment._initialised()
        except BaseException:
            await environment.aclose()
            raise
        return environment, output.take()

    async def _initialised(self) -> None:
        waits: set[asyncio.Future[Any]] = {self.api.ready, self.api.init_error, self.exited}
        await asyncio.wait(waits, timeout=INIT_TIMEOUT, return_when="FIRST_COMPLETED")
        if self.api.init_error.done():
            error = json.loads(self.api.init_error.result())
            raise InitFailed(error, self.output.take())
        if self.api.ready.done():
            return
        if self.exited.done():
            raise InitFailed(
                {"errorType": "Runtime.ExitError", "errorMessage": exit_text(self.exited.result())},
                self.output.take(),
            )
        raise InitFailed(
            {
                "errorType": "Runtime.InitTimeout",
                "errorMessage": f"Init phase did not finish in {INIT_TIMEOUT:g} seconds",
            },
            self.output.take(),
        )

    async def run(
        self,
        request_id: str,
        arn: str,
        deadline_ms: int,
        client_context: Any,
        body: bytes,
        *,
        tenant_id: str | None = None,
        sink: ResponseSink | None = None,
    ) -> RunResult:
        """Run one invocation with the function's timeout.

        Raises:
            TimedOut: the timeout passed (the environment is killed).
            Crashed: the runtime exited during the call.
        """
        self.uses += 1
        self.output.take()  # whatever it printed between calls belongs to no call
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": arn,
            "Lambda-Runtime-Trace-Id": _trace_id(),
        }
        if client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(client_context)
        if tenant_id is not None:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = tenant_id
        invocation = Invocation(request_id, body, headers, sink=sink)
        started = time.monotonic()
        self.api.submit(invocation)
        watched: set[asyncio.Future[Any]] = {invocation.done, self.exited}
        try:
            await asyncio.wait(
                watched,
                timeout=self.spec.timeout,
                return_when="FIRST_COMPLETED",
            )
        except asyncio.CancelledError:
            self.kill()
            raise
        if invocation.done.done():
            reply: Reply = invocation.done.result()
            if reply.error:
                await self._settle(started)
            return RunResult(
                body=reply.body,
                error=reply.error,
                log=self.output.take(),
                memory_mb=_max_rss_mb(self.proc.pid),
                streamed=reply.streamed,
            )
        if self.exited.done():
            self.dead = True
            raise Crashed(exit_text(self.exited.result()), self.output.take())
        self.kill()
        raise TimedOut(self.output.take())

    async def _settle(self, started: float) -> None:
        """After an error reply, wait until the runtime asks for more or exits.

        A runtime reports an uncaught exception and then exits (Node.js does); handing the
        next call to it in between would fail an innocent call with ``Runtime.ExitError``.
        Lambda gives the next call only to a runtime that asked for it; so does this.
        """
        if self.api.asking.is_set() or self.exited.done():
            self.dead = self.exited.done()
            return
        asking: asyncio.Future[Any] = asyncio.ensure_future(self.api.asking.wait())
        try:
            remaining = max(0.0, self.spec.timeout - (time.monotonic() - started))
            watched: set[asyncio.Future[Any]] = {asking, self.exited}
            await asyncio.wait(watched, timeout=remaining, return_when="FIRST_COMPLETED")
        finally:
            asking.cancel()
        if not self.api.asking.is_set():
            self.kill()  # exited, or neither asked nor exited in time: never reuse it

    def kill(self) -> None:
        """Kill the runtime and every process it started."""
        self.dead = True
        kill_group(self.proc)

    async def aclose(self) -> None:
        """Kill the runtime, reap it, stop its Runtime API."""
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.exited
        self.output.close()
        await self.api.aclose()
