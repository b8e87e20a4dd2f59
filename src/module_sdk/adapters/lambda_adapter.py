"""LambdaAdapter: a WaddleBot module whose work is done by an AWS Lambda function.

This module is configuration and wiring; the logic lives in :mod:`module_sdk.aws_lambda`
(naming, payload, response parsing, error classification, the invoker) and
:mod:`module_sdk.resilience` (backoff, retry, policies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from module_sdk._models import Diagnostics, ExecuteRequest, ExecuteResponse
from module_sdk.adapters.base_adapter import BaseAdapter
from module_sdk.adapters.health import HealthWindow
from module_sdk.adapters.settings import MAX_RETRIES_LIMIT, LambdaSettings
from module_sdk.aws_lambda.api import INVOCATION_TYPES, LOG_TYPES, InvocationType, LogType
from module_sdk.aws_lambda.clients import (
    DEFAULT_MAX_CONNECTIONS,
    ClientPool,
    ClientSettings,
    credentials_missing,
)
from module_sdk.aws_lambda.configuration import (
    AUTO_CEILING,
    FunctionTimeout,
    read_configured_timeout,
)
from module_sdk.aws_lambda.invoke_options import durable_execution_name, tenant_id_problem
from module_sdk.aws_lambda.invoker import AioBotocoreInvoker, InvokeCall, Invoker
from module_sdk.aws_lambda.lean_invoker import LeanInvoker
from module_sdk.aws_lambda.naming import FunctionTarget, resolve_function, validate_region
from module_sdk.aws_lambda.payload import (
    build_payload,
    encode_payload,
    request_from_payload,
    validate_request,
)
from module_sdk.aws_lambda.response import decode_log_tail, parse_invocation, parse_reply
from module_sdk.aws_lambda.streaming import Chunk, Complete, EventStream, open_stream
from module_sdk.errors import (
    ConfigurationError,
    ErrorCode,
    InvocationError,
    ModuleSDKError,
    PolicyRejection,
    RequestError,
)
from module_sdk.resilience.breaker import CircuitBreakerPolicy
from module_sdk.resilience.cache import ResponseCachePolicy
from module_sdk.resilience.clock import Clock, SystemClock
from module_sdk.resilience.deadletter import DeadLetterRecorder, DeadLetterSink
from module_sdk.resilience.pipeline import (
    Handler,
    Invocation,
    InvocationObserver,
    Policy,
    compose,
)
from module_sdk.resilience.policies import build_policies
from module_sdk.resilience.retry import RetryBudget, RetryPolicy

if TYPE_CHECKING:
    from module_sdk.resilience.breaker import CircuitBreakerConfig
    from module_sdk.resilience.cache import ResponseCacheConfig
    from module_sdk.resilience.ratelimit import RateLimit
    from module_sdk.resilience.state import StateBackend

__all__ = ["INVOCATION_TYPES", "LOG_TYPES", "MAX_RETRIES_LIMIT", "LambdaAdapter"]

logger = logging.getLogger(__name__)

_DIAGNOSTICS = tuple(f.name for f in dataclasses.fields(Diagnostics))
_diagnostic_values = operator.attrgetter(*_DIAGNOSTICS)  # in Diagnostics' field order
HTTP_CLIENTS = ("lean", "aiobotocore")
DEFAULT_HTTP_CLIENT = "lean"


def _http_client(value: object, *, client: object, pool: object) -> str:
    """Validate ``http_client``; ``client`` / ``pool`` belong to the aiobotocore path."""
    if value is None:
        return "aiobotocore" if client is not None or pool is not None else DEFAULT_HTTP_CLIENT
    if value not in HTTP_CLIENTS:
        raise ConfigurationError(
            f"http_client={value!r} is invalid: use one of " + ", ".join(map(repr, HTTP_CLIENTS))
        )
    if value == "lean" and (client is not None or pool is not None):
        raise ConfigurationError(
            "http_client='lean' cannot use an aiobotocore client= or pool=: "
            "drop them, or pass http_client='aiobotocore'"
        )
    return str(value)


def _cancelled() -> ExecuteResponse:
    return ExecuteResponse(
        success=False, error="the call was cancelled", error_code=ErrorCode.CANCELLED.value
    )


def _function_error(done: Complete) -> InvocationError:
    """InvokeComplete's error: the function failed (never retried)."""
    return InvocationError(
        f"{done.error_code}: {done.error_details or ''}".rstrip(": "),
        error_code=ErrorCode.FUNCTION_ERROR,
        retryable=False,
        aws_code=done.error_code,
    )


class LambdaAdapter(BaseAdapter):
    """Runs a WaddleBot module on AWS Lambda.

    The first parameters are the original WaddleBot ones, in their original order. The
    constructor validates everything and makes no network call; the AWS client is created
    on first use and shared with every adapter that has the same region, endpoint,
    credentials and timeouts. Release it with ``await adapter.aclose()`` or
    ``async with adapter:``.

    Args:
        function_identifier: a function name, ``name:qualifier``, a partial ARN or a full ARN.
        region: the AWS region (a full ARN's own region wins, with a warning if different).
        module_name: the WaddleBot module name (letters, digits, ``_``, ``-``).
        function_prefix: glued to bare function names only (``waddlebot-`` + ``dice``).
        invocation_type: ``RequestResponse`` (wait for the answer), ``Event`` (queue it) or
            ``DryRun`` (check that the call is allowed).
        max_retries: retries after the first attempt, for transient failures only.
        initial_retry_delay / max_retry_delay: the backoff cap
            ``min(initial * 2**retry, max)``; the actual delay is a uniform draw under it.
        connect_timeout / read_timeout: per attempt, in seconds. ``read_timeout="auto"`` reads
            the function's configured timeout once (GetFunctionConfiguration, cached, refreshed
            every 10 minutes in the background) and waits that long plus 10 s + 10 %. Keep a
            numeric ``read_timeout`` above
            the function's own timeout, or a slow run is abandoned and retried while it runs.
        aws_access_key_id / aws_secret_access_key / aws_session_token / profile_name:
            credentials; when absent the standard AWS chain is used.
        module_version / required_scopes: WaddleBot module metadata.
        endpoint_url: another Lambda API endpoint (the local runtime, LocalStack, moto).
        qualifier: a version or alias.
        log_type: ``"Tail"`` to receive the last 4 KB of the function's log.
        total_timeout: an overall deadline per request covering every attempt and sleep.
        retry_on_timeout: retry after a read timeout (the function may then run twice; the
            event's ``request_id`` stays the same so it can deduplicate). Default True.
        max_connections: the HTTP connection pool size of the shared client.
        policies: extra pipeline policies, outermost first, placed around the retry loop.
        observers: objects told about every call, attempt, retry and outcome.
        retry_budget: caps the share of load that retries may add
            (``StandardRetryBudget()``: botocore's standard-mode quota).
        circuit_breaker: a ``CircuitBreakerConfig`` (or True for its defaults) to stop
            calling a failing function; None (default) for no breaker.
        rate_limit: a ``RateLimit`` (adapter-wide and/or per user and community buckets).
        cache: a ``ResponseCacheConfig`` naming the commands whose replies are cached.
        state: where breaker, rate-limit and cache state live: None (this process) or a
            ``RedisState`` shared by many processes (``docs/resilience.md``).
        dead_letter: where requests that finally fail are kept (``docs/dead-letter.md``): a
            SQLite file path (a sink the adapter owns and closes) or any ``DeadLetterSink``
            such as ``SQSDeadLetterSink``. Event calls are always dead-lettered then.
        dead_letter_sync: also dead-letter failed RequestResponse calls.
        http_client: how Invoke requests are sent: ``"lean"`` (the SDK's own signed aiohttp
            request, a fraction of the CPU; ``docs/lean-invoke.md``) or ``"aiobotocore"``
            (aiobotocore's client). Default: ``"lean"``; ``client`` or ``pool`` imply
            ``"aiobotocore"``.
        tenant_id: ``X-Amz-Tenant-Id`` for functions with per-tenant isolation: a string
            (1-256 characters), or a function of the request returning one or None (for
            example ``lambda r: r.community_id``: each WaddleBot community a tenant).
        durable_execution: send ``X-Amz-Durable-Execution-Name`` derived from the session
            id, so a repeated start of a durable function is recognised by Lambda and
            answered ``error_code="duplicate_execution"`` instead of running again; the
            execution ARN is in ``diagnostics.durable_execution_arn``.
        client: an aiobotocore Lambda client you own (used as-is, never closed here).
        invoker: any object with ``invoke``/``aclose`` (replaces the AWS client entirely).
        clock / rng: time and randomness seams (tests pass a fake clock and a seeded RNG).
    """

    def __init__(
        self,
        function_identifier: str,
        region: str,
        module_name: str,
        function_prefix: str | None = None,
        invocation_type: InvocationType = "RequestResponse",
        max_retries: int = 3,
        initial_retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float | Literal["auto"] = 30.0,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        module_version: str = "1.0.0",
        required_scopes: list[str] | None = None,
        *,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        endpoint_url: str | None = None,
        qualifier: str | None = None,
        log_type: LogType = "None",
        total_timeout: float | None = None,
        retry_on_timeout: bool = True,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        policies: Sequence[Policy] = (),
        observers: Sequence[InvocationObserver] = (),
        retry_budget: RetryBudget | None = None,
        circuit_breaker: CircuitBreakerConfig | bool | None = None,
        rate_limit: RateLimit | None = None,
        cache: ResponseCacheConfig | None = None,
        state: StateBackend | None = None,
        dead_letter: DeadLetterSink | str | os.PathLike[str] | None = None,
        dead_letter_sync: bool = False,
        client: Any = None,
        invoker: Invoker | None = None,
        pool: ClientPool | None = None,
        http_client: str | None = None,
        tenant_id: str | Callable[[ExecuteRequest], str | None] | None = None,
        durable_execution: bool = False,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(module_name, module_version, required_scopes)
        self.region = validate_region(region)
        self.read_timeout_auto = read_timeout == "auto"
        """Whether each attempt waits the function's configured timeout plus a margin."""
        if self.read_timeout_auto:
            read_timeout = AUTO_CEILING
        elif isinstance(read_timeout, str):
            raise ConfigurationError(
                f"read_timeout={read_timeout!r} is invalid: use seconds (a number above 0) or "
                "'auto' (the function's configured timeout plus a margin)"
            )
        self.settings = LambdaSettings(
            invocation_type=invocation_type,
            log_type=log_type,
            max_retries=max_retries,
            initial_retry_delay=initial_retry_delay,
            max_retry_delay=max_retry_delay,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            total_timeout=total_timeout,
            retry_on_timeout=retry_on_timeout,
            max_connections=max_connections,
            endpoint_url=endpoint_url,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            profile_name=profile_name,
        )
        settings = self.settings
        self.initial_retry_delay = settings.initial_retry_delay
        self.max_retry_delay = settings.max_retry_delay
        self.connect_timeout = settings.connect_timeout
        self.read_timeout = settings.read_timeout
        self.total_timeout = settings.total_timeout
        self.profile_name = settings.profile_name

        self.target: FunctionTarget = resolve_function(
            function_identifier, prefix=function_prefix, qualifier=qualifier
        )
        self.function_identifier = function_identifier
        self.function_prefix = function_prefix
        self.function_name = self.target.function_name
        self.qualifier = self.target.qualifier
        if self.target.region and self.target.region != self.region:
            logger.warning(
                "function ARN %r is in region %r, not region=%r: calls go to %r",
                self.function_name,
                self.target.region,
                self.region,
                self.target.region,
            )
        self.invoke_region = self.target.region or self.region
        self.invocation_type: InvocationType = settings.invocation_type
        self.log_type = settings.log_type
        self.max_retries = settings.max_retries
        self.retry_on_timeout = settings.retry_on_timeout
        self.endpoint_url = settings.endpoint_url
        self.max_connections = settings.max_connections
        if tenant_id is not None and not callable(tenant_id):
            problem = tenant_id_problem(tenant_id)
            if problem is not None:
                raise ConfigurationError(f"tenant_id={tenant_id!r:.80} is invalid: {problem}")
        self.tenant_id = tenant_id
        self.durable_execution = bool(durable_execution)

        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._dead_letter = DeadLetterRecorder.create(
            dead_letter,
            include_sync=dead_letter_sync,
            module_name=self.module_name,
            clock=self._clock,
        )
        self.dead_letter: DeadLetterSink | None = (
            None if self._dead_letter is None else self._dead_letter.sink
        )
        self.http_client = _http_client(http_client, client=client, pool=pool)
        client_settings = ClientSettings(
            region=self.invoke_region,
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            profile_name=self.profile_name,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_connections=settings.max_connections,
        )
        self._client_settings = client_settings if invoker is None and client is None else None
        if invoker is not None:
            self._invoker: Invoker = invoker
        elif client is not None:
            self._invoker = AioBotocoreInvoker(client=client)
        elif self.http_client == "lean":
            self._invoker = LeanInvoker(client_settings)
        else:
            self._invoker = AioBotocoreInvoker(client_settings, pool=pool)
        self._function_timeout: FunctionTimeout | None = None
        if self.read_timeout_auto:
            self._function_timeout = FunctionTimeout(
                lambda: read_configured_timeout(self._invoker, self.function_name, self.qualifier),
                self._clock.monotonic,
                name=self.target.display_name,
            )
        self._calls: set[asyncio.Future[None]] = set()  # in flight, for aclose()
        self.health_window = HealthWindow(self._clock, status=self.health)
        self._observers: tuple[InvocationObserver, ...] = (self.health_window, *observers)
        self._retry = RetryPolicy(
            max_retries=settings.max_retries,
            initial_delay=self.initial_retry_delay,
            max_delay=self.max_retry_delay,
            retry_on_timeout=self.retry_on_timeout,
            clock=self._clock,
            rng=self._rng,
            budget=retry_budget,
            observers=self._observers,
        )
        # rate limit -> cache -> breaker -> retry: see module_sdk.resilience.policies.
        builtin = build_policies(
            circuit_breaker=circuit_breaker,
            rate_limit=rate_limit,
            cache=cache,
            state=state,
            target=self.target,
            region=self.invoke_region,
            endpoint=endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_LAMBDA")
            or os.environ.get("AWS_ENDPOINT_URL"),
            identity=client_settings.identity(),
            module_name=self.module_name,
            invocation_type=invocation_type,
            clock=self._clock,
        )
        for policy in builtin:
            if isinstance(policy, CircuitBreakerPolicy):
                self.health_window.circuit_state = policy.state_name
        self.policies: tuple[Policy, ...] = (*policies, *builtin, self._retry)
        """The pipeline's steps, outermost first: yours, the built-in ones, the retry loop."""
        self._handler: Handler = compose(self.policies, self._attempt)
        # A stream is admitted like a call (rate limit, breaker, retries until its first
        # event) but never cached; your own policies may answer without calling through, so
        # they stay with execute_async.
        self._stream_policies: tuple[Policy, ...] = (
            *(p for p in builtin if not isinstance(p, ResponseCachePolicy)),
            self._retry,
        )
        logger.info(
            "LambdaAdapter initialized for module '%s' with function '%s' in region '%s'",
            self.module_name,
            self.target.display_name,
            self.invoke_region,
        )

    @property
    def clock(self) -> Clock:
        """The clock this adapter's retries, policies, deadline and health run on."""
        return self._clock

    def __repr__(self) -> str:
        return (
            f"<LambdaAdapter module={self.module_name!r} function={self.target.display_name!r} "
            f"region={self.invoke_region!r} invocation_type={self.invocation_type!r}>"
        )

    # -- extension points (the seed's) -------------------------------------------------

    def _build_lambda_payload(self, request: ExecuteRequest) -> dict[str, Any]:
        """Build the Lambda event for ``request``. Override to add or change fields."""
        return build_payload(request, self._clock.utcnow())

    def _tenant_for(self, request: ExecuteRequest) -> str | None:
        """The ``X-Amz-Tenant-Id`` for ``request``: the fixed one, or the function's answer."""
        tenant = self.tenant_id
        if tenant is None or isinstance(tenant, str):
            return tenant
        try:
            value = tenant(request)
        except Exception as exc:
            raise RequestError(f"tenant_id({request.session_id!r}) failed: {exc!r}") from exc
        if value is None:
            return None
        problem = tenant_id_problem(value)
        if problem is not None:
            raise RequestError(f"tenant_id returned {value!r:.80}: {problem}")
        return str(value)

    def _parse_lambda_response(self, response_data: Any) -> ExecuteResponse:
        """Normalize the function's decoded JSON reply. Override to post-process it."""
        return parse_reply(response_data)

    # -- the pipeline ---------------------------------------------------------------------

    def _new_invocation(
        self,
        request: ExecuteRequest,
        payload: dict[str, Any],
        body: bytes,
        started: float,
        invocation_type: InvocationType,
    ) -> Invocation:
        return Invocation(
            request=request,
            payload=payload,
            body=body,
            target=self.target,
            region=self.invoke_region,
            invocation_type=invocation_type,
            started=started,
            deadline=None if self.total_timeout is None else started + self.total_timeout,
        )

    def _begin_attempt(self, invocation: Invocation) -> InvokeCall:
        """Count and announce one attempt; the Invoke call it sends."""
        invocation.attempts += 1
        self._notify("on_attempt", invocation)
        logger.debug(
            "Invoking Lambda function '%s' (attempt %d/%d, session: %s)",
            self.target.display_name,
            invocation.attempts,
            self.max_retries + 1,
            invocation.session_id,
        )
        return InvokeCall(
            function_name=self.function_name,
            payload=invocation.body,
            invocation_type=invocation.invocation_type,
            qualifier=self.qualifier,
            log_type=self.log_type,
            client_context=invocation.client_context,
            tenant_id=self._tenant_for(invocation.request),
            durable_execution_name=(
                durable_execution_name(invocation.session_id) if self.durable_execution else None
            ),
        )

    def _record_log_tail(self, invocation: Invocation, log_result: str | None) -> None:
        tail = decode_log_tail(log_result)
        if tail is not None:
            invocation.log_tail = tail
            logger.debug("Lambda log tail (session: %s):\n%s", invocation.session_id, tail)

    async def _attempt(self, invocation: Invocation) -> ExecuteResponse:
        """The terminal step: one invoke, one parse."""
        call = self._begin_attempt(invocation)
        if self._function_timeout is None:
            result = await self._invoker.invoke(call)
        else:
            limit = await self._function_timeout.get()
            self.read_timeout = limit
            try:
                async with asyncio.timeout(limit):
                    result = await self._invoker.invoke(call)
            except TimeoutError:
                raise InvocationError(
                    f"no reply from Lambda within the function's timeout plus a margin "
                    f"({limit:g} s, read_timeout='auto')",
                    error_code=ErrorCode.TIMEOUT,
                    retryable=True,
                    reason="ReadTimeout",
                ) from None
        invocation.aws_request_id = result.request_id
        invocation.executed_version = result.executed_version
        if result.durable_execution_arn:
            invocation.durable_execution_arn = result.durable_execution_arn
        invocation.status_code = result.status_code
        response = parse_invocation(result, invocation.invocation_type, self._parse_lambda_response)
        parsed = response.diagnostics
        if parsed is not None and parsed.status_code is not None:  # an API-Gateway reply
            invocation.status_code = parsed.status_code
        self._record_log_tail(invocation, result.log_result)
        return response

    def _notify(self, event: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, event)(*args)
            except Exception:
                logger.exception("observer %r failed in %s", observer, event)

    @staticmethod
    def _failure(exc: ModuleSDKError, invocation: Invocation | None = None) -> ExecuteResponse:
        response = ExecuteResponse(
            success=False, error=exc.message, error_code=exc.error_code.value
        )
        if invocation is None:  # refused before the pipeline: nothing was sent
            response.diagnostics = Diagnostics()
        elif isinstance(exc, InvocationError):
            invocation.status_code = exc.status_code
            invocation.aws_error_code = exc.aws_code or None
        return response

    @staticmethod
    def _diagnostics(invocation: Invocation) -> Diagnostics:
        """What the SDK observed about the call, from the invocation alone (each diagnostic
        is the invocation's attribute of the same name)."""
        return Diagnostics(*_diagnostic_values(invocation))

    async def execute_async(self, request: ExecuteRequest) -> ExecuteResponse:
        """Invoke the function for ``request`` and return its normalized answer.

        Never raises for a failure (bad request, AWS error, function error, garbage reply):
        the response has ``success=False``, ``error`` and ``error_code``. Cancelling the
        task cancels the HTTP call.
        """
        started = self._clock.monotonic()
        try:
            validate_request(request)
            payload = self._build_lambda_payload(request)
            body = encode_payload(payload, self.invocation_type)
        except ModuleSDKError as exc:
            logger.error("Lambda request refused before sending: %s", exc.message)
            return self._failure(exc)
        except Exception as exc:  # a subclass's _build_lambda_payload failed
            logger.exception("building the Lambda event failed")
            return self._failure(RequestError(f"building the Lambda event failed: {exc}"))
        return await self._run(request, payload, body, started)

    async def stream_async(self, request: ExecuteRequest) -> AsyncIterator[bytes]:
        """Invoke with InvokeWithResponseStream; yield the function's bytes as they arrive.

        ::

            async for chunk in adapter.stream_async(request):
                ...

        The stream goes through the same pipeline as ``execute_async`` up to its first event:
        the rate limit and the circuit breaker admit it, and failures are retried exactly as
        ``execute_async`` retries them (``max_retries``, backoff, ``Retry-After``, the retry
        budget), all within ``total_timeout``, which also bounds the wait for every later
        chunk. Once a chunk has been yielded nothing is retried (the function has run): a
        failure then raises. Observers (health, metrics, traces) see the stream start, each
        attempt, each retry, and its end when the last chunk arrives or it fails. Streams are
        never cached nor dead-lettered; your own ``policies`` apply to ``execute_async`` only.
        Works on both ``http_client`` paths.

        Raises:
            ModuleSDKError: the request is invalid, the call was refused (``rate_limited``,
                ``circuit_open``) or failed for good, the function failed (``error_code``
                ``function_error``; the message is InvokeComplete's
                ``ErrorCode: ErrorDetails``), the stream broke after its first chunk, or
                ``total_timeout`` ran out (``deadline_exceeded``).
        """
        started = self._clock.monotonic()
        validate_request(request)
        payload = self._build_lambda_payload(request)
        body = encode_payload(payload, "RequestResponse")
        invocation = self._new_invocation(request, payload, body, started, "RequestResponse")
        opened: list[tuple[EventStream, Chunk | Complete]] = []

        async def attempt(current: Invocation) -> ExecuteResponse:
            call = self._begin_attempt(current)
            stream = await open_stream(
                self._invoker, dataclasses.replace(call, durable_execution_name=None)
            )
            try:
                first: Chunk | Complete = await stream.__anext__()
            except StopAsyncIteration:
                first = Complete()
            except BaseException:
                await stream.aclose()
                raise
            current.aws_request_id = stream.request_id
            current.executed_version = stream.executed_version
            current.status_code = stream.status_code
            if isinstance(first, Complete) and first.error_code:  # failed before any chunk
                await stream.aclose()
                self._record_log_tail(current, first.log_result)
                raise _function_error(first)
            opened.append((stream, first))
            return ExecuteResponse(success=True)

        self._notify("on_start", invocation)
        response = ExecuteResponse(success=True)
        try:
            await compose(self._stream_policies, attempt)(invocation)
            stream, event = opened[-1]
            try:
                while isinstance(event, Chunk):
                    if event.payload:
                        yield event.payload
                    event = await self._next_event(stream, invocation)
            finally:
                await stream.aclose()
            self._record_log_tail(invocation, event.log_result)
            if event.error_code:
                raise _function_error(event)
        except Exception as exc:
            response = self._error_response(exc, invocation)
            raise
        except (asyncio.CancelledError, GeneratorExit):  # cancelled, or the reader stopped
            response = _cancelled()
            raise
        finally:
            self._finish(invocation, response)

    async def _next_event(self, stream: EventStream, invocation: Invocation) -> Chunk | Complete:
        """The stream's next event, within the deadline; a failure is never retried."""
        try:
            if invocation.deadline is None:
                return await stream.__anext__()
            async with self._clock.timeout_at(invocation.deadline):
                return await stream.__anext__()
        except StopAsyncIteration:
            raise InvocationError(
                "the stream ended without InvokeComplete (not retried: the function has run)",
                error_code=ErrorCode.CONNECTION,
                retryable=False,
            ) from None
        except TimeoutError:
            raise PolicyRejection(
                f"total_timeout ran out while streaming, after "
                f"{self._clock.monotonic() - invocation.started:.2f}s",
                error_code=ErrorCode.DEADLINE_EXCEEDED,
            ) from None
        except InvocationError as exc:
            raise InvocationError(
                f"the stream broke after its first chunk (not retried: the function "
                f"has run): {exc.message}",
                error_code=exc.error_code,
                retryable=False,
                status_code=exc.status_code,
                aws_code=exc.aws_code,
            ) from exc

    async def invoke_payload(
        self, payload: Mapping[str, Any], *, dead_letter: bool = False
    ) -> ExecuteResponse:
        """Send a ready-made Lambda event unchanged, through the same policies and retries.

        This is how the dead-letter queue is replayed: the stored event keeps its
        ``request_id`` and ``timestamp``, so the function can recognise a repeat. It needs a
        ``request_id``; it is sent with this adapter's function and invocation type. A failure
        is dead-lettered only with ``dead_letter=True`` (a replay keeps its own entry). Like
        ``execute_async``, it never raises for a failure.
        """
        started = self._clock.monotonic()
        try:
            request = request_from_payload(payload)
            body = encode_payload(payload, self.invocation_type)
        except ModuleSDKError as exc:
            logger.error("Lambda event refused before sending: %s", exc.message)
            return self._failure(exc)
        return await self._run(request, dict(payload), body, started, dead_letter=dead_letter)

    async def _run(
        self,
        request: ExecuteRequest,
        payload: dict[str, Any],
        body: bytes,
        started: float,
        *,
        dead_letter: bool = True,
    ) -> ExecuteResponse:
        """Run the pipeline for one call, known to ``aclose()`` while it is in flight."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._calls.add(done)
        try:
            return await self._pipeline(
                self._new_invocation(request, payload, body, started, self.invocation_type),
                dead_letter=dead_letter,
            )
        finally:
            self._calls.discard(done)
            done.set_result(None)

    async def _pipeline(self, invocation: Invocation, *, dead_letter: bool) -> ExecuteResponse:
        """The pipeline for one built event (``execute_async`` and ``invoke_payload``)."""
        self._notify("on_start", invocation)
        try:
            response = await self._handler(invocation)
        except Exception as exc:
            response = self._error_response(exc, invocation)
        except asyncio.CancelledError:  # observers still see the call end (spans, gauges)
            self._finish(invocation, _cancelled())
            raise
        if dead_letter and self._dead_letter is not None:
            await self._dead_letter.record(invocation, response)
        if response.success:
            logger.info(
                "Lambda execution successful for module '%s' (session: %s)",
                self.module_name,
                invocation.session_id,
            )
        self._finish(invocation, response)
        return response

    def _error_response(self, exc: Exception, invocation: Invocation) -> ExecuteResponse:
        """Log a call's failure; the failed response observers and callers see."""
        if isinstance(exc, ModuleSDKError):
            logger.error(
                "Lambda invocation error: %s (error_code=%s, after %d attempt(s), session: %s)",
                exc.message,
                exc.error_code.value,
                invocation.attempts,
                invocation.session_id,
                extra={"call_outcome": True},  # a caller printing the outcome may drop this
            )
            return self._failure(exc, invocation)
        logger.exception("unexpected error invoking Lambda (session: %s)", invocation.session_id)
        return self._failure(
            ModuleSDKError(f"unexpected error: {type(exc).__name__}: {exc}"), invocation
        )

    def _finish(self, invocation: Invocation, response: ExecuteResponse) -> None:
        """Attach the diagnostics and tell the observers the call ended."""
        response.diagnostics = self._diagnostics(invocation)
        duration = self._clock.monotonic() - invocation.started
        self._notify("on_finish", invocation, response, duration)

    async def credentials_missing(self) -> bool:
        """True when calls would go to AWS (not a loopback endpoint) and the credential chain
        finds nothing to sign them with: each would fail with ``error_code="credentials"``.
        Adapters given their own ``client`` or ``invoker`` answer False."""
        if self._client_settings is None:
            return False
        return await credentials_missing(
            endpoint_url=self._client_settings.endpoint_url,
            profile_name=self._client_settings.profile_name,
            aws_access_key_id=self._client_settings.aws_access_key_id,
        )

    async def aclose(self) -> None:
        """Let the calls in flight finish, then release this adapter's share of the AWS
        client (the last user closes it) and close a dead-letter sink it owns.

        Closing under a call in flight would fail it, and its retry would open a new client
        that nothing closes. Bound the wait with ``asyncio.timeout`` if you must.
        """
        loop = asyncio.get_running_loop()
        try:
            while pending := [f for f in self._calls if f.get_loop() is loop]:
                await asyncio.wait(pending)
        finally:
            await self._invoker.aclose()
            if self._dead_letter is not None:
                await self._dead_letter.aclose()

    def get_health_status(self) -> dict[str, Any]:
        """The seed's seven health keys, then latency percentiles, the last error, throttle
        and retry counts, calls in flight and the breaker state (see docs/observability.md)."""
        return {**super().get_health_status(), **self.health_window.get_status()}

    def get_module_info(self) -> dict[str, Any]:
        """WaddleBot's module info plus the Lambda settings and health."""
        info = super().get_module_info()
        info.update(
            {
                "type": "lambda_adapter",
                "function_name": self.function_name,
                "qualifier": self.qualifier,
                "region": self.invoke_region,
                "invocation_type": self.invocation_type,
                "max_retries": self.max_retries,
                "initial_retry_delay": self.initial_retry_delay,
                "max_retry_delay": self.max_retry_delay,
                "connect_timeout": self.connect_timeout,
                "read_timeout": self.read_timeout,
                "total_timeout": self.total_timeout,
                "http_client": self.http_client,
                "health": self.get_health_status(),
            }
        )
        return info
