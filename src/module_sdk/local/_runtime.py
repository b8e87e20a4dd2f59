"""The local Lambda runtime: the Invoke API over HTTP, handlers in warm worker processes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from module_sdk.aws_lambda.api import (
    FUNCTION_RE,
    INVOCATION_TYPES,
    MAX_IDENTIFIER,
    MAX_QUALIFIER,
    QUALIFIER_RE,
    RESPONSE_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    payload_limit,
)
from module_sdk.errors import ConfigurationError
from module_sdk.local._caller import caller_check
from module_sdk.local._calls import AwsError as _AwsError
from module_sdk.local._calls import Call as _Call
from module_sdk.local._calls import check_tenant, error_fields
from module_sdk.local._config import FunctionSpec, load_functions, skipped_files
from module_sdk.local._control import function_configuration, list_page
from module_sdk.local._environments import (
    Crashed,
    ExecutionEnvironment,
    FunctionPool,
    InitFailed,
    RunResult,
    TimedOut,
    base_environment,
)
from module_sdk.local._faults import FaultDecision, FaultPlan, Faults
from module_sdk.local._reload import ReloadReport, Watcher, apply_reload
from module_sdk.local._stats import InvocationRecord, RuntimeStats
from module_sdk.local._streaming import ResponseSink, invoke_complete, payload_chunk

__all__ = ["InvocationRecord", "LocalLambdaRuntime", "RuntimeStats"]

logger = logging.getLogger("module_sdk.local")

CLIENT_CONTEXT_LIMIT = 3583
LOG_TAIL_BYTES = 4096
DEFAULT_CONCURRENCY_LIMIT = 1000
"""Lambda's default account concurrency quota."""
INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
STREAM_PATH = "/2021-11-15/functions/{name}/response-streaming-invocations"

_STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")
_REGION_IN_AUTH_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/lambda/")
FUNCTIONS_PATH = "/2015-03-31/functions"


class LocalLambdaRuntime:
    """A local server speaking the AWS Lambda Invoke API.

    Point any Lambda client (``LambdaAdapter(endpoint_url=rt.url)``, boto3, aiobotocore) at
    it. Handlers run in warm worker processes, one call at a time each, reused between
    calls; a handler that hangs, crashes or leaks only loses its own worker::

        async with LocalLambdaRuntime("examples/functions", port=0) as rt:
            adapter = LambdaAdapter("dice", "us-east-1", "dice", endpoint_url=rt.url)

    Args:
        functions_dir: a directory of handler files (see :func:`load_functions`), or None.
        functions: more functions (:class:`FunctionSpec`), added after the directory's.
        host / port: where to listen (port 0 picks a free port; see :attr:`url`).
        faults: global :class:`Faults`, or a mapping of function name to ``Faults`` (the
            key ``"*"`` is the global default).
        seed: makes fault injection repeatable.
        concurrency_limit: the most simultaneous runs over all functions (Lambda's account
            quota); beyond it calls get 429 ``ConcurrentInvocationLimitExceeded``.
        throttle_retry_after: the ``Retry-After`` seconds of concurrency throttles (None:
            no header).
        region / account_id: used in ARNs when the caller's signature names no region.
        prewarm: environments to start per function before serving (no cold start then).
        idle_timeout: seconds after which an unused environment is stopped (Lambda reclaims
            idle environments too); None keeps them until the runtime stops. Prewarmed
            environments are kept like any other.
        history_size: how many :class:`InvocationRecord` to keep.
        on_log: called with ``(record)`` after every handler run (the CLI prints logs).
        reload: watch ``functions_dir`` (watchfiles, the ``reload`` extra) and apply every
            edit while serving (see :meth:`reload`).
        on_reload: called with the :class:`ReloadReport` of every reload that changed
            something.
        environment: variables every function gets (what an execution role's credentials
            and shared settings would be). Functions never inherit the runtime's own
            environment: they get these, their ``functions.toml`` ``environment``, the Lambda
            variables, and only PATH, locale, TZ, TMPDIR and the Python/Node search paths.
    """

    def __init__(
        self,
        functions_dir: str | Path | None = None,
        *,
        functions: Iterable[FunctionSpec] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | Mapping[str, Faults] | None = None,
        seed: int | str | None = None,
        concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT,
        throttle_retry_after: float | None = 1.0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        prewarm: int = 0,
        idle_timeout: float | None = 600.0,
        history_size: int = 1000,
        on_log: Callable[[InvocationRecord], None] | None = None,
        reload: bool = False,
        on_reload: Callable[[ReloadReport], None] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(concurrency_limit, int) or concurrency_limit < 1:
            raise ConfigurationError(
                f"concurrency_limit={concurrency_limit!r} is invalid: use an integer >= 1"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError(f"port={port!r} is invalid: use 0-65535 (0: a free port)")
        if not re.fullmatch(r"\d{12}", account_id):
            raise ConfigurationError(f"account_id={account_id!r} is invalid: use 12 digits")
        specs: dict[str, FunctionSpec] = {}
        self._skipped: dict[str, str] = {}
        if functions_dir is not None:
            specs.update(load_functions(functions_dir))
            self._skipped = skipped_files(functions_dir, specs)
            for reason in self._skipped.values():
                logger.warning("%s (in %s)", reason, functions_dir)
        self.functions_dir = None if functions_dir is None else Path(functions_dir).resolve()
        self._in_code = {spec.name: spec for spec in functions}
        specs.update(self._in_code)
        if reload and functions_dir is None:
            raise ConfigurationError("reload=True needs a functions_dir to watch")
        self._reload = reload
        self.on_reload = on_reload
        self._watcher: Watcher | None = None
        self._reload_lock = asyncio.Lock()
        for name in self._in_code:
            self._skipped.pop(name, None)
        self.host = host
        self.port = port
        self.region = region
        self.account_id = account_id
        self.concurrency_limit = concurrency_limit
        self.throttle_retry_after = throttle_retry_after
        self.prewarm = prewarm
        if idle_timeout is not None and not (
            isinstance(idle_timeout, int | float) and idle_timeout > 0
        ):
            raise ConfigurationError(
                f"idle_timeout={idle_timeout!r} is invalid: use seconds > 0, or None"
            )
        self.idle_timeout = idle_timeout
        self._reaper: asyncio.TimerHandle | None = None
        if isinstance(faults, Faults) or faults is None:
            self.faults = FaultPlan(faults, seed=seed)
        else:
            per_function = dict(faults)
            self.faults = FaultPlan(per_function.pop("*", None), per_function, seed=seed)
        self.stats = RuntimeStats()
        self.history: deque[InvocationRecord] = deque(maxlen=history_size)
        self.on_log = on_log
        self._base_env = base_environment(region, environment)
        self._pools: dict[str, FunctionPool] = {
            name: FunctionPool(spec, self._base_env) for name, spec in specs.items()
        }
        self._active = 0
        self._retired: list[FunctionPool] = []
        self._freed = asyncio.Event()
        self._events: set[asyncio.Task[None]] = set()
        self._watchers: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- functions -----------------------------------------------------------------------

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        """The functions served, by name."""
        return {name: pool.spec for name, pool in self._pools.items()}

    def in_flight(self, function: str | None = None) -> int:
        """Runs in progress (of one function, or in all)."""
        if function is None:
            return self._active
        pool = self._pools.get(function)
        return 0 if pool is None else pool.active

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, without polling.

        For tests and tools watching the runtime: the condition is checked again each time
        a call is admitted, starts running, ends, or a fault is counted (so it should read
        ``in_flight()`` or ``stats``). Bound the wait with ``asyncio.timeout``.
        """
        if condition():
            return
        entry = (condition, asyncio.get_running_loop().create_future())
        self._watchers.append(entry)
        try:
            await entry[1]
        finally:
            if entry in self._watchers:
                self._watchers.remove(entry)

    def _changed(self) -> None:
        for condition, waiter in list(self._watchers):
            if not waiter.done() and condition():
                waiter.set_result(None)

    def add_function(self, spec: FunctionSpec) -> None:
        """Serve one more function (replacing one of the same name; its workers stop)."""
        old = self._pools.get(spec.name)
        self._pools[spec.name] = FunctionPool(spec, self._base_env)
        if old is not None:
            # Calls in progress on the old definition fail as crashes; new calls start fresh.
            for environment in list(old.all):
                old.discard(environment)
            self._retired.append(old)

    async def reload(self, paths: Iterable[Path] | None = None) -> ReloadReport:
        """Apply the functions folder as it is now, while serving.

        New functions are added and removed ones dropped; a function whose settings changed,
        or whose code folder holds one of ``paths`` (None: every function), gets its new
        version warmed up in the background and swapped in (the next call runs the new code
        in a warm environment; calls in progress finish on the old one). A version that fails
        to load is reported and the old one keeps serving. ``reload=True`` calls this on
        every change the watcher sees.
        """
        async with self._reload_lock:
            if self.functions_dir is None:
                return ReloadReport()
            report = await apply_reload(
                self.functions_dir,
                self._in_code,
                self._pools,
                self._retired,
                self._base_env,
                None if paths is None else set(paths),
            )
        if report.changed:
            for name, error in report.failed.items():
                logger.warning("reload: %s keeps its previous version: %s", name, error)
            if report.error:
                logger.warning("reload: nothing changed: %s", report.error)
            if self.on_reload is not None:
                try:
                    self.on_reload(report)
                except Exception:
                    logger.exception("on_reload callback failed")
        return report

    def set_faults(self, faults: Faults | None, function: str | None = None) -> None:
        """Change the global faults (``function=None``) or one function's (None clears)."""
        self.faults.set(faults, function)

    def script_faults(self, function: str, *decisions: FaultDecision) -> None:
        """Make the next calls to ``function`` meet exactly ``decisions``, in order::

        rt.script_faults("dice", FaultDecision(throttle=True, retry_after=0))
        # the first call is throttled, the next ones follow the (random) faults
        """
        self.faults.script(function, *decisions)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        """Start listening; return the URL."""
        app = web.Application(
            client_max_size=SYNC_PAYLOAD_LIMIT + 1024 * 1024,
            middlewares=[caller_check(self.host)],  # signed calls only: no web page (_caller.py)
        )
        app.router.add_post(INVOKE_PATH, self._handle)
        app.router.add_post(STREAM_PATH, self._handle)
        app.router.add_get(FUNCTIONS_PATH, self._list_functions)
        app.router.add_get(FUNCTIONS_PATH + "/", self._list_functions)
        app.router.add_get(FUNCTIONS_PATH + "/{name}", self._get_function)
        app.router.add_get(FUNCTIONS_PATH + "/{name}/configuration", self._get_function)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        if self.prewarm:
            await asyncio.gather(*(p.prewarm(self.prewarm) for p in self._pools.values()))
        if self.idle_timeout is not None:
            self._schedule_reap(self.idle_timeout)
        if self._reload and self.functions_dir is not None:
            self._watcher = Watcher(self.functions_dir, self.reload)
            await self._watcher.start()
        return self.url

    async def wait_for_events(self, timeout: float | None = None) -> None:
        """Wait until every accepted Event invocation has finished running."""
        async with asyncio.timeout(timeout):
            while self._events:
                await asyncio.gather(*list(self._events), return_exceptions=True)

    def _schedule_reap(self, idle_timeout: float) -> None:
        # A timer rather than a task: the runtime adds no long-lived task to its host's loop.
        loop = asyncio.get_running_loop()
        self._reaper = loop.call_later(min(30.0, idle_timeout / 2), self._reap_idle, idle_timeout)

    def _reap_idle(self, idle_timeout: float) -> None:
        for pool in self._pools.values():
            stopped = pool.reap_idle(idle_timeout)
            if stopped:
                logger.debug("stopped %d idle worker(s) of %s", stopped, pool.spec.name)
        self._schedule_reap(idle_timeout)

    async def aclose(self) -> None:
        """Stop serving, cancel queued Event runs and kill every worker."""
        if self._watcher is not None:
            await self._watcher.aclose()
            self._watcher = None
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for task in list(self._events):
            task.cancel()
        if self._events:
            await asyncio.gather(*list(self._events), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        pools = [*self._pools.values(), *self._retired]
        await asyncio.gather(*(p.aclose() for p in pools))

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the Invoke API ------------------------------------------------------------------

    def _error_response(self, error: _AwsError, request_id: str) -> web.Response:
        body: dict[str, Any] = {
            "Type": "User" if error.status < 500 else "Service",
            error.message_key: error.message,
        }
        body.update(error.extra)
        headers = {
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": error.code,
            "Content-Type": "application/json",
            **error.headers,
        }
        self.stats.statuses[error.status] += 1
        self.stats.outcomes[error.outcome] += 1
        return web.Response(status=error.status, body=json.dumps(body).encode(), headers=headers)

    def _resolve(self, request: web.Request) -> tuple[FunctionPool, str, str | None, str]:
        raw = request.match_info["name"]
        match = FUNCTION_RE.fullmatch(raw)
        if match is None or len(raw) > MAX_IDENTIFIER:
            raise _AwsError(
                400,
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{raw}' at 'functionName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern",
                "invalid_request",
            )
        name = match["name"]
        qualifier = match["qualifier"]
        query_qualifier = request.query.get("Qualifier")
        if query_qualifier is not None:
            if not QUALIFIER_RE.fullmatch(query_qualifier) or len(query_qualifier) > MAX_QUALIFIER:
                raise _AwsError(
                    400,
                    "InvalidParameterValueException",
                    f"1 validation error detected: Value '{query_qualifier}' at 'qualifier' "
                    "failed to satisfy constraint: Member must satisfy regular expression "
                    "pattern: (|[a-zA-Z0-9$_-]+)",
                    "invalid_request",
                )
            if qualifier is not None and qualifier != query_qualifier:
                raise _AwsError(
                    400,
                    "InvalidParameterValueException",
                    "The derived qualifier from the function name does not match the "
                    "specified qualifier.",
                    "invalid_request",
                )
            qualifier = query_qualifier
        region = match["region"]
        if region is None:
            auth = _REGION_IN_AUTH_RE.search(request.headers.get("Authorization", ""))
            region = auth.group(1) if auth else self.region
        account = match["account"] or self.account_id
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        if qualifier is not None:
            arn += f":{qualifier}"
        pool = self._pools.get(name)
        if pool is None or (
            qualifier is not None and qualifier != "$LATEST" and qualifier not in pool.spec.aliases
        ):
            skipped = self._skipped.get(name) if pool is None else None
            raise _AwsError(
                404,
                "ResourceNotFoundException",
                f"Function not found: {arn}" + (f" ({skipped})" if skipped else ""),
                "not_found",
                message_key="Message",
            )
        return pool, name, qualifier, arn

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            return await self._invoke(request, request_id)
        except Exception as exc:  # a runtime bug or no resources (processes, memory)
            logger.exception("the local runtime failed to handle a call")
            error = _AwsError(
                500,
                "ServiceException",
                f"The local runtime failed: {type(exc).__name__}: {exc}",
                "runtime_error",
                message_key="Message",
            )
            return self._error_response(error, request_id)

    async def _invoke(self, request: web.Request, request_id: str) -> web.StreamResponse:
        try:
            call = await self._parse(request, request_id)
        except _AwsError as error:
            return self._error_response(error, request_id)
        if call.invocation_type == "DryRun":
            self.stats.statuses[204] += 1
            self.stats.outcomes["dry_run"] += 1
            return web.Response(status=204, headers={"x-amzn-RequestId": request_id})

        decision = self.faults.decide(call.name)
        try:
            await self._apply_faults(request, call.name, decision)
        except _AwsError as error:
            return self._error_response(error, request_id)
        if decision.drop:
            return self._drop(request)

        if call.invocation_type == "Event":
            task = asyncio.create_task(self._run_event(call))
            self._events.add(task)
            task.add_done_callback(self._events.discard)
            response = web.Response(status=202, headers={"x-amzn-RequestId": request_id})
            self.stats.outcomes["event_accepted"] += 1
        else:
            try:
                self._admit(call.function, call.name)
            except _AwsError as error:
                return self._error_response(error, request_id)
            try:
                if call.streaming:
                    return await self._run_stream(request, call, decision)
                response = await self._run_sync(call)
            finally:
                self._leave(call.function)
        return await self._reply(request, call.name, decision, response)

    # -- the control-plane reads ---------------------------------------------------------

    async def _get_function(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        try:
            pool, _, qualifier, _ = self._resolve(request)
        except _AwsError as error:
            return self._error_response(error, request_id)
        configuration = function_configuration(
            pool.spec, region=self.region, account_id=self.account_id, qualifier=qualifier
        )
        if request.path.endswith("/configuration"):
            self.stats.control_reads["GetFunctionConfiguration"] += 1
            body: dict[str, Any] = configuration
        else:
            self.stats.control_reads["GetFunction"] += 1
            body = {"Configuration": configuration, "Code": {"RepositoryType": "S3"}, "Tags": {}}
        self.stats.statuses[200] += 1
        return web.json_response(body, headers={"x-amzn-RequestId": request_id})

    async def _list_functions(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        raw = request.query.get("MaxItems", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            error = _AwsError(
                400,
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
                "constraint: Member must have value between 1 and 10000",
                "invalid_request",
            )
            return self._error_response(error, request_id)
        self.stats.control_reads["ListFunctions"] += 1
        body = list_page(
            [pool.spec for pool in self._pools.values()],
            request.query.get("Marker"),
            int(raw),
            region=self.region,
            account_id=self.account_id,
        )
        self.stats.statuses[200] += 1
        return web.json_response(body, headers={"x-amzn-RequestId": request_id})

    async def _parse(self, request: web.Request, request_id: str) -> _Call:
        pool, name, qualifier, arn = self._resolve(request)
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        streaming = request.path.endswith("/response-streaming-invocations")
        allowed = _STREAM_INVOCATION_TYPES if streaming else INVOCATION_TYPES
        if invocation_type not in allowed:
            raise _AwsError(
                400,
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(allowed)}]",
                "invalid_request",
            )
        log_type = request.headers.get("X-Amz-Log-Type", "None")
        if log_type not in ("None", "Tail"):
            raise _AwsError(
                400,
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{log_type}' at 'logType' failed to "
                "satisfy constraint: Member must satisfy enum value set: [Tail, None]",
                "invalid_request",
            )
        limit = payload_limit(invocation_type)
        length = request.content_length
        if length is not None and length > limit:
            raise _AwsError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                "too_large",
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b"x" * (limit + 1)
        if len(body) > limit:
            raise _AwsError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                "too_large",
            )
        event_request_id: str | None = None
        if body.strip():
            try:
                event = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise _AwsError(
                    400,
                    "InvalidRequestContentException",
                    f"Could not parse request body into json: Could not parse payload into "
                    f"json: {exc}",
                    "invalid_request",
                ) from None
            if isinstance(event, dict) and isinstance(event.get("request_id"), str):
                event_request_id = event["request_id"]
        else:
            body = b""
        client_context: Any = None
        raw_context = request.headers.get("X-Amz-Client-Context")
        if raw_context:
            if len(raw_context) > CLIENT_CONTEXT_LIMIT:
                raise _AwsError(
                    400,
                    "InvalidParameterValueException",
                    f"Client context must be at most {CLIENT_CONTEXT_LIMIT} bytes",
                    "invalid_request",
                )
            try:
                client_context = json.loads(base64.b64decode(raw_context, validate=True))
            except (binascii.Error, ValueError, RecursionError):  # nested past the stack too
                raise _AwsError(
                    400,
                    "InvalidRequestContentException",
                    "Client context must be a valid Base64-encoded JSON object.",
                    "invalid_request",
                ) from None
            if invocation_type == "Event":
                client_context = None  # Lambda passes it to synchronous calls only
        tenant_id = check_tenant(request.headers.get("X-Amz-Tenant-Id"), pool.spec)
        return _Call(
            function=pool,
            name=name,
            qualifier=qualifier,
            arn=arn,
            invocation_type=invocation_type,
            log_tail=log_type == "Tail",
            body=body,
            event_request_id=event_request_id,
            client_context=client_context,
            request_id=request_id,
            streaming=streaming,
            tenant_id=tenant_id,
        )

    def _count_fault(self, function: str, kind: str) -> None:
        self.stats.faults[kind] += 1
        self.stats.faults_by_function[(function, kind)] += 1
        self._changed()

    async def _apply_faults(
        self, request: web.Request, function: str, decision: FaultDecision
    ) -> None:
        if decision.delay > 0:
            self._count_fault(function, "latency")
            await asyncio.sleep(decision.delay)
        if decision.drop:
            self._count_fault(function, "drop")
            return
        if decision.throttle:
            self._count_fault(function, "throttle")
            raise _AwsError(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                "fault",
                extra={
                    "Reason": "FunctionInvocationRateLimitExceeded",
                    "retryAfterSeconds": f"{decision.retry_after:g}",
                },
                headers={"Retry-After": f"{decision.retry_after:g}"},
            )
        if decision.error:
            self._count_fault(function, "error")
            raise _AwsError(
                500,
                "ServiceException",
                "An internal error occurred (injected fault).",
                "fault",
                message_key="Message",
            )

    def _drop(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        self.stats.outcomes["dropped"] += 1
        # Never sent: the connection is gone. aiohttp needs a response object regardless.
        return web.Response(status=500)

    async def _reply(
        self,
        request: web.Request,
        function: str,
        decision: FaultDecision,
        response: web.StreamResponse,
    ) -> web.StreamResponse:
        if decision.slow:
            self._count_fault(function, "slow")
            await asyncio.sleep(decision.slow)
        if decision.drop_after_run:
            self._count_fault(function, "drop")
            return self._drop(request)
        self.stats.statuses[response.status] += 1
        return response

    def _refusal(self, pool: FunctionPool) -> _AwsError | None:
        """The 429 for a call beyond the reserved or overall concurrency, or None."""
        reserved = pool.spec.reserved_concurrency
        if reserved is not None and pool.active >= reserved:
            reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
        elif self._active >= self.concurrency_limit:
            reason = "ConcurrentInvocationLimitExceeded"
        else:
            return None
        retry = self.throttle_retry_after
        headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
        extra: dict[str, Any] = {"Reason": reason}
        if retry is not None:
            extra["retryAfterSeconds"] = f"{retry:g}"
        return _AwsError(
            429,
            "TooManyRequestsException",
            "Rate Exceeded.",
            "throttled",
            extra=extra,
            headers=headers,
        )

    def _admit(self, pool: FunctionPool, name: str) -> None:
        refusal = self._refusal(pool)
        if refusal is not None:
            self.stats.throttles[name] += 1
            raise refusal
        pool.active += 1
        self._active += 1
        self._changed()

    def _leave(self, pool: FunctionPool) -> None:
        pool.active -= 1
        self._active -= 1
        self._freed.set()
        self._changed()

    async def _run_event(self, call: _Call) -> None:
        # Lambda queues Event calls and runs them when there is capacity: wait, never throttle.
        while self._refusal(call.function) is not None:
            self._freed.clear()
            await self._freed.wait()
        self._admit(call.function, call.name)
        try:
            await self._execute(call)
        except Exception:
            logger.exception("Event invocation of %s failed in the runtime", call.name)
        finally:
            self._leave(call.function)

    async def _run_sync(self, call: _Call) -> web.Response:
        result, log, outcome = await self._execute(call)
        headers = {
            "x-amzn-RequestId": call.request_id,
            "X-Amz-Executed-Version": "$LATEST",
            "Content-Type": "application/json",
        }
        body = result.body
        if result.error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if call.log_tail:
            tail = log.encode("utf-8", errors="replace")[-LOG_TAIL_BYTES:]
            headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode("ascii")
        self.stats.outcomes[outcome] += 1
        return web.Response(status=200, body=body, headers=headers)

    async def _run_stream(
        self, request: web.Request, call: _Call, decision: FaultDecision
    ) -> web.StreamResponse:
        """InvokeWithResponseStream: ``PayloadChunk`` events as the function streams, then
        ``InvokeComplete`` (a function that does not stream sends its reply as one chunk)."""
        sink = ResponseSink()
        task = asyncio.create_task(self._execute(call, sink))
        started = sink.content_type
        first: set[asyncio.Future[Any]] = {task, started}
        try:
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            sink.abandon()
            task.cancel()
            raise
        content_type = started.result() if started.done() else "application/json"
        response = web.StreamResponse(
            status=200,
            headers={
                "x-amzn-RequestId": call.request_id,
                "X-Amz-Executed-Version": "$LATEST",
                "Content-Type": content_type,
            },
        )
        try:
            await response.prepare(request)
            if started.done():
                while True:
                    getter = asyncio.ensure_future(sink.get())
                    either: set[asyncio.Future[Any]] = {getter, task}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()  # the run ended without closing its stream (a crash)
                        for rest in sink.take_nowait():
                            await response.write(payload_chunk(rest))
                        break
                    chunk = getter.result()
                    if chunk is None:
                        break
                    await response.write(payload_chunk(chunk))
            result, log, outcome = await task
            if not result.error and not result.streamed and result.body:
                await response.write(payload_chunk(result.body))
            error_code = error_details = None
            if result.error:
                error_code, error_details = error_fields(result.body)
            tail = None
            if call.log_tail:
                tail = base64.b64encode(
                    log.encode("utf-8", errors="replace")[-LOG_TAIL_BYTES:]
                ).decode("ascii")
            if decision.slow:
                self._count_fault(call.name, "slow")
                await asyncio.sleep(decision.slow)
            if decision.drop_after_run:
                self._count_fault(call.name, "drop")
                return self._drop(request)
            await response.write(invoke_complete(error_code, error_details, tail))
            await response.write_eof()
        except ConnectionError:
            # The caller went away mid-stream: the run goes on (and is recorded) without it.
            sink.abandon()
            result, log, outcome = await task
        self.stats.outcomes[outcome] += 1
        self.stats.statuses[200] += 1
        return response

    async def _execute(
        self, call: _Call, sink: ResponseSink | None = None
    ) -> tuple[RunResult, str, str]:
        """Run the handler; return the result, the full log, and the outcome."""
        pool = call.function
        spec = pool.spec
        started = time.monotonic()
        log_lines = [f"START RequestId: {call.request_id} Version: $LATEST\n"]
        environment: ExecutionEnvironment | None = None
        cold = False
        init_ms = 0.0
        try:
            environment, cold, init_log = await pool.acquire(call.tenant_id)
            if cold:
                init_ms = (time.monotonic() - started) * 1000
                self.stats.cold_starts[call.name] += 1
                if init_log:
                    log_lines.insert(0, init_log)
        except InitFailed as exc:
            log_lines.insert(0, exc.log)
            error = {"requestId": "", "stackTrace": [], **exc.error}
            result = RunResult(json.dumps(error).encode(), True, "", 0)
            outcome = "init_error"
        else:
            self._count_run(call)
            deadline_ms = int(time.time() * 1000 + spec.timeout * 1000)
            run_started = time.monotonic()
            try:
                result = await environment.run(
                    call.request_id,
                    call.arn,
                    deadline_ms,
                    call.client_context,
                    call.body,
                    tenant_id=call.tenant_id,
                    sink=sink,
                )
                outcome = "function_error" if result.error else "success"
                if not result.error and len(result.body) > RESPONSE_LIMIT:
                    result = self._too_large(call, result)
                    outcome = "function_error"
            except TimedOut as exc:
                pool.discard(environment)
                log_lines.append(exc.log)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                log_lines.append(
                    f"{stamp}Z {call.request_id} Task timed out after {spec.timeout:.2f} seconds\n"
                )
                error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {call.request_id} Error: Task timed out after "
                    f"{spec.timeout:.2f} seconds",
                }
                result = RunResult(json.dumps(error).encode(), True, "", 0)
                outcome = "timeout"
            except Crashed as exc:
                pool.discard(environment)
                log_lines.append(exc.log)
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {call.request_id} Error: {exc}",
                }
                log_lines.append(f"{json.dumps(error)}\n")
                result = RunResult(json.dumps(error).encode(), True, "", 0)
                outcome = "crash"
            finally:
                pool.release(environment)
            duration_ms = (time.monotonic() - run_started) * 1000
            log_lines.append(result.log)
            log_lines.append(f"END RequestId: {call.request_id}\n")
            report = (
                f"REPORT RequestId: {call.request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
                f"Memory Size: {spec.memory_size} MB\tMax Memory Used: {result.memory_mb} MB\t"
            )
            if cold:
                report += f"Init Duration: {init_ms:.2f} ms\t"
            if outcome == "timeout":
                report += "Status: timeout"
            log_lines.append(report.rstrip("\t") + "\n")
        log = "".join(log_lines)
        record = InvocationRecord(
            function=call.name,
            aws_request_id=call.request_id,
            event_request_id=call.event_request_id,
            invocation_type=call.invocation_type,
            outcome=outcome,
            duration=time.monotonic() - started,
            cold_start=cold,
            log=log,
            reply=result.body,
        )
        self.history.append(record)
        if call.invocation_type == "Event":
            self.stats.outcomes[f"event_{outcome}"] += 1
        if self.on_log is not None:
            try:
                self.on_log(record)
            except Exception:
                logger.exception("on_log callback failed")
        return result, log, outcome

    def _count_run(self, call: _Call) -> None:
        self.stats.invocations[call.name] += 1
        if call.event_request_id is not None:
            self.stats.request_ids[call.event_request_id] += 1
            self.stats.runs[(call.name, call.event_request_id)] += 1
        self._changed()

    def _too_large(self, call: _Call, result: RunResult) -> RunResult:
        error = {
            "errorMessage": "Response payload size exceeded maximum allowed payload size "
            f"({RESPONSE_LIMIT} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
        return RunResult(json.dumps(error).encode(), True, result.log, result.memory_mb)
