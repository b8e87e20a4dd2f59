"""Warm execution environments: worker subprocesses, one invocation at a time each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from module_sdk.local._config import FunctionSpec
from module_sdk.local._process import kill_group, spawn
from module_sdk.local._streaming import ResponseSink

__all__ = [
    "Crashed",
    "Environment",
    "ExecutionEnvironment",
    "FunctionPool",
    "InitFailed",
    "RunResult",
    "TimedOut",
    "exit_text",
    "lambda_environment",
    "start_environment",
]

logger = logging.getLogger("module_sdk.local")

_HEAD = struct.Struct(">II")
_WORKER = str(Path(__file__).with_name("_worker.py"))
INIT_TIMEOUT = 10.0
"""Lambda's limit for the init phase (importing the handler module), in seconds."""


class TimedOut(Exception):
    """The handler ran past the function's timeout; its environment was killed."""

    def __init__(self, log: str = "") -> None:
        super().__init__("timed out")
        self.log = log


class Crashed(Exception):
    """The worker process died during the call; ``args[0]`` is how it exited."""

    def __init__(self, text: str, log: str = "") -> None:
        super().__init__(text)
        self.log = log


class InitFailed(Exception):
    """The handler module could not be loaded; carries the AWS-shaped error and the log."""

    def __init__(self, error: dict[str, Any], log: str) -> None:
        super().__init__(error.get("errorMessage", "init failed"))
        self.error = error
        self.log = log


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one call to a worker produced."""

    body: bytes
    error: bool
    log: str
    memory_mb: int
    streamed: bool = False


class ExecutionEnvironment(Protocol):
    """What a pool needs of an environment (the Python worker or a Runtime API one)."""

    spec: FunctionSpec
    proc: asyncio.subprocess.Process
    log_stream: str
    uses: int
    dead: bool
    idle_since: float

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
    ) -> RunResult: ...

    def kill(self) -> None: ...

    async def aclose(self) -> None: ...


def lambda_environment(spec: FunctionSpec, env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The environment variables Lambda sets for a function, and its new log stream's name."""
    day = time.strftime("%Y/%m/%d", time.gmtime())
    stream = f"{day}/[$LATEST]{secrets.token_hex(16)}"
    full_env = {
        **env,
        **spec.environment,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": f"{spec.timeout:g}",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
    }
    return full_env, stream


async def start_environment(
    spec: FunctionSpec, env: dict[str, str]
) -> tuple[ExecutionEnvironment, str]:
    """Start an environment of the kind the function runs in; return it with its init log."""
    if spec.kind == "worker":
        return await Environment.start(spec, env)
    from module_sdk.local._api_environment import ApiEnvironment

    return await ApiEnvironment.start(spec, env)


def exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name.removeprefix("SIG").lower()
        except ValueError:
            name = str(-returncode)
        names = {"kill": "killed", "segv": "segmentation fault", "abrt": "aborted"}
        return f"Runtime exited with error: signal: {names.get(name, name)}"
    return f"Runtime exited with error: exit status {returncode}"


class Environment:
    """One warm worker process for one function."""

    def __init__(self, spec: FunctionSpec, proc: asyncio.subprocess.Process, stream: str) -> None:
        self.spec = spec
        self.proc = proc
        self.log_stream = stream
        self.uses = 0
        self.dead = False
        self.idle_since = time.monotonic()

    @classmethod
    async def start(cls, spec: FunctionSpec, env: dict[str, str]) -> tuple[Environment, str]:
        """Start a worker and wait for its init; return it with the init log.

        A worker that fails its init (or whose start is cancelled) is killed and reaped before
        the error is raised: its pipes and subprocess transport never outlive the call.

        Raises:
            InitFailed: the handler module could not be loaded (the worker is gone).
        """
        full_env, stream = lambda_environment(spec, env)
        # Own session: a Ctrl-C in the terminal reaches the runtime, which stops the
        # workers itself, instead of killing them in the middle of a call.
        proc = await spawn(
            [sys.executable, _WORKER, str(spec.code_dir), spec.handler],
            env=full_env,
            cwd=str(spec.code_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        environment = cls(spec, proc, stream)
        try:
            async with asyncio.timeout(INIT_TIMEOUT):
                header, _ = await environment._read()
            if not header.get("ready"):
                raise InitFailed(header.get("error", {}), header.get("log", ""))
        except BaseException as exc:
            # Not in any pool yet: nobody else would stop and reap it.
            await environment.aclose()
            if isinstance(exc, TimeoutError):
                raise InitFailed(
                    {
                        "errorType": "Runtime.InitTimeout",
                        "errorMessage": f"Init phase did not finish in {INIT_TIMEOUT:g} seconds",
                    },
                    "",
                ) from None
            if isinstance(exc, Crashed):
                raise InitFailed(
                    {"errorType": "Runtime.ExitError", "errorMessage": str(exc)}, ""
                ) from None
            raise
        return environment, str(header.get("log", ""))

    async def _read(self) -> tuple[dict[str, Any], bytes]:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            head = await stdout.readexactly(_HEAD.size)
            head_len, body_len = _HEAD.unpack(head)
            data = await stdout.readexactly(head_len + body_len)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.dead = True
            returncode = await self._wait_exit()
            raise Crashed(exit_text(returncode)) from None
        header: dict[str, Any] = json.loads(data[:head_len])
        return header, data[head_len:]

    async def _wait_exit(self) -> int | None:
        try:
            async with asyncio.timeout(1.0):
                return await self.proc.wait()
        except TimeoutError:
            self.kill()
            return None

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
            TimedOut: the timeout passed (the worker is killed).
            Crashed: the worker died during the call.
        """
        self.uses += 1
        header = json.dumps(
            {
                "id": request_id,
                "arn": arn,
                "deadline": deadline_ms,
                "client_context": client_context,
                "tenant_id": tenant_id,
            },
            separators=(",", ":"),
        ).encode()
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(_HEAD.pack(len(header), len(body)) + header + body)
            if len(body) > 65536:
                await stdin.drain()
        except (ConnectionError, RuntimeError):
            self.dead = True
            raise Crashed(exit_text(await self._wait_exit())) from None
        try:
            async with asyncio.timeout(self.spec.timeout):
                reply, payload = await self._read()
        except TimeoutError:
            self.kill()
            raise TimedOut from None
        except asyncio.CancelledError:
            # Its reply would otherwise be read as the next call's: this worker is done.
            self.kill()
            raise
        return RunResult(
            body=payload,
            error=bool(reply.get("error")),
            log=str(reply.get("log", "")),
            memory_mb=int(reply.get("memory_mb", 0)),
        )

    def kill(self) -> None:
        """Kill the worker at once (timeouts, shutdown)."""
        self.dead = True
        if self.proc.returncode is None:
            kill_group(self.proc)

    async def aclose(self) -> None:
        """Kill the worker and reap it: its pipes and subprocess transport are closed too."""
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        # wait() returns at the exit; the transport closes when the output pipe reports its
        # end too (a loop turn or more later), and is left open if nobody waits for that.
        if self.proc.stdout is not None:
            with contextlib.suppress(RuntimeError, TimeoutError):  # a reader is still waiting
                async with asyncio.timeout(5.0):
                    await self.proc.stdout.read()


class FunctionPool:
    """The environments of one function: idle ones are reused, most recent first."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str]) -> None:
        self.spec = spec
        self._env = env
        self.idle: list[ExecutionEnvironment] = []
        self.all: set[ExecutionEnvironment] = set()
        self.active = 0
        """Calls currently holding (or starting) an environment of this function."""
        self.retired = False
        """Replaced by a new version (hot reload): environments are dropped when released."""
        self._reaping: set[asyncio.Future[None]] = set()
        self._tenant_idle: dict[str, list[ExecutionEnvironment]] = {}
        self._tenant_of: dict[ExecutionEnvironment, str] = {}

    def _idle_of(self, tenant: str | None) -> list[ExecutionEnvironment]:
        if tenant is None:
            return self.idle
        return self._tenant_idle.setdefault(tenant, [])

    async def acquire(self, tenant: str | None = None) -> tuple[ExecutionEnvironment, bool, str]:
        """An environment for one call: ``(environment, cold_start, init_log)``.

        With a ``tenant``, only environments of that tenant are reused (tenant isolation).
        """
        idle = self._idle_of(tenant)
        while idle:
            environment = idle.pop()
            if not environment.dead and environment.proc.returncode is None:
                return environment, False, ""
            self.discard(environment)
        environment, init_log = await start_environment(self.spec, self._env)
        self.all.add(environment)
        if tenant is not None:
            self._tenant_of[environment] = tenant
        return environment, True, init_log

    def release(self, environment: ExecutionEnvironment) -> None:
        """Give an environment back after a call (a dead one is dropped)."""
        if self.retired or environment.dead or environment.proc.returncode is not None:
            self.discard(environment)
            return
        environment.idle_since = time.monotonic()
        self._idle_of(self._tenant_of.get(environment)).append(environment)

    def reap_idle(self, idle_timeout: float) -> int:
        """Stop environments idle for more than ``idle_timeout`` seconds; return how many."""
        horizon = time.monotonic() - idle_timeout
        stopped = 0
        for idle in [self.idle, *self._tenant_idle.values()]:
            stale = [e for e in idle if e.idle_since < horizon]
            if stale:
                idle[:] = [e for e in idle if e.idle_since >= horizon]
                for environment in stale:
                    self.discard(environment)
                stopped += len(stale)
        return stopped

    def retire(self) -> None:
        """Stop the idle environments; calls in progress finish, then theirs are dropped."""
        self.retired = True
        for idle in [self.idle, *self._tenant_idle.values()]:
            for environment in idle:
                self.discard(environment)
            idle.clear()

    def discard(self, environment: ExecutionEnvironment) -> None:
        """Drop an environment: kill it and reap its process in the background."""
        self._tenant_of.pop(environment, None)
        if environment in self.all:
            self.all.discard(environment)
            task = asyncio.ensure_future(environment.aclose())
            self._reaping.add(task)
            task.add_done_callback(self._reaping.discard)

    async def prewarm(self, count: int, parallel: int = 4) -> None:
        """Start idle environments up to ``count`` (init errors are left for the first call)."""
        gate = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with gate:
                try:
                    environment, _ = await start_environment(self.spec, self._env)
                except InitFailed:
                    return
            self.all.add(environment)
            self.idle.append(environment)

        await asyncio.gather(*(one() for _ in range(count - len(self.idle))))

    async def warm(self, count: int) -> str | None:
        """Start ``count`` idle environments; return the init error (``type: message``) of
        the first that failed, or None."""
        results = await asyncio.gather(
            *(start_environment(self.spec, self._env) for _ in range(count)),
            return_exceptions=True,
        )
        error: str | None = None
        unexpected: BaseException | None = None
        for result in results:
            if isinstance(result, InitFailed):
                detail = result.error
                error = error or f"{detail.get('errorType')}: {detail.get('errorMessage')}"
            elif isinstance(result, BaseException):
                unexpected = unexpected or result
            else:
                environment, _ = result
                self.all.add(environment)
                self.idle.append(environment)
        if unexpected is not None:
            raise unexpected
        return error

    async def aclose(self) -> None:
        """Kill every environment of this function."""
        environments = list(self.all)
        self.all.clear()
        self.idle.clear()
        self._tenant_idle.clear()
        self._tenant_of.clear()
        await asyncio.gather(*(e.aclose() for e in environments), return_exceptions=True)
        # Workers given up on (timed out or crashed) are reaped in the background: wait for
        # them too, or their subprocess transports would outlive the runtime.
        while pending := [task for task in self._reaping if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)


# Of the runtime's own environment, only what finding programs, text and time need: never its
# credentials, service keys or anything else the developer's shell holds.
_INHERITED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH"}
    | {"PYTHONHOME", "VIRTUAL_ENV", "NODE_PATH", "SYSTEMROOT"}
)


def base_environment(
    region: str = "us-east-1", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What every worker starts from: a few inherited variables, the region, ``extra``."""
    env = {name: value for name, value in os.environ.items() if name in _INHERITED}
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    # No __pycache__ in the functions folder: an edit within the second of the last one (same
    # size, same mtime) would otherwise run the stale bytecode after a reload.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
