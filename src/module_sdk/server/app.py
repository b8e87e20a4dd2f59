"""The HTTP module server: WaddleBot's router protocol in front of LambdaAdapters.

Routes::

    POST /api/v1/execute                  the module is picked by the request's command
    POST /modules/{name}/api/v1/execute   the module is picked by name (its own module_url)
    GET  /api/v1/modules                  each module's info and commands
    GET  /health                          200 when every module is healthy, else 503 (no key)
    GET  /ready                           200 once listening, 503 while draining (no key)
    GET  /metrics                         Prometheus exposition (needs the prometheus extra)

Status codes: 200 with the ExecuteResponse (also for the function's own failures, which the
router shows as the module's answer); 400 malformed JSON or fields; 401 missing or wrong
``X-Service-Key``; 403 the request's ``scopes`` lack the module's required scopes; 404 unknown
command or module; 413 body too large; 429 + ``Retry-After`` when the module is at its
``max_in_flight`` limit or the adapter answered a busy error code (throttled, rate_limited,
circuit_open); 503 while shutting down. Every error body is JSON:
``{"success": false, "error": "...", "error_code": "..."}``; no status ever carries a traceback.

The router re-sends the same body (same ``session_id``) after its timeout, a connection error
or a non-JSON reply: each (module, session_id) runs once and every re-send gets that run's
answer (:mod:`module_sdk.server._resend`). Deadlines derive from ``[server] router_timeout``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Self

from aiohttp import web

from module_sdk._health import health_summary
from module_sdk._models import ExecuteRequest, ExecuteResponse
from module_sdk.adapters.base_adapter import BaseAdapter
from module_sdk.aws_lambda.args import split_args
from module_sdk.aws_lambda.payload import validate_request
from module_sdk.errors import ConfigurationError, ErrorCode, RequestError
from module_sdk.resilience.backoff import backoff_cap
from module_sdk.server import _access
from module_sdk.server._access import AccessLog
from module_sdk.server._protection import (
    AuthFailures,
    ConnectionGuard,
    ConnectionLimits,
    GuardedSite,
    check_service_key,
    install_accept_log_limit,
)
from module_sdk.server._resend import Answer, Hit, RedisResendStore, ResendGuard
from module_sdk.server.config import (
    ServerConfig,
    build_adapter,
    deadline_margin,
    url_without_password,
)

__all__ = ["SERVICE_KEY_HEADER", "ModuleServer"]

logger = logging.getLogger(__name__)

SERVICE_KEY_HEADER = "X-Service-Key"
# Marks a response refused for the key.
_UNAUTHENTICATED = web.ResponseKey("module_sdk.unauthenticated", bool)
_REQUIRED_FIELDS = ("command", "user_id", "entity_id", "community_id", "session_id")
_JSON = "application/json"
_PROBES = frozenset({"/health", "/ready"})  # Kubernetes probes send no key


def _dumps(body: Any) -> str:
    """JSON that strict parsers accept: NaN and Infinity (which a function's reply may carry
    and Python's json writes) become null."""
    try:
        return json.dumps(body, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(body), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


_RESPONSE_FIELDS = tuple(
    f.name for f in dataclasses.fields(ExecuteResponse) if f.name != "diagnostics"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_STATUS: Mapping[ErrorCode, int] = MappingProxyType(
    {
        ErrorCode.INVALID_REQUEST: 400,
        ErrorCode.DISCONNECTED: 400,
        ErrorCode.UNAUTHORIZED: 401,
        ErrorCode.MISSING_SCOPES: 403,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.UNKNOWN_COMMAND: 404,
        ErrorCode.UNKNOWN_MODULE: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.BODY_TIMEOUT: 408,
        ErrorCode.ARGS_TOO_LARGE: 413,
        ErrorCode.PAYLOAD_TOO_LARGE: 413,
        ErrorCode.BUSY: 429,
        ErrorCode.TOO_MANY_FAILURES: 429,
        ErrorCode.INTERNAL: 500,
    }
)
"""The HTTP status of each error the server answers itself (``docs/server.md``)."""
_CODE_OF_STATUS: Mapping[int, ErrorCode] = MappingProxyType(
    {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.PAYLOAD_TOO_LARGE}
)
"""aiohttp's own refusals (no route, wrong method, body over client_max_size) by status."""


def _error(
    code: ErrorCode,
    message: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """The server's own error answer; ``status`` defaults to the code's (:data:`_STATUS`)."""
    status = _STATUS[code] if status is None else status
    body: dict[str, Any] = {"success": False, "error": message, "error_code": code.value}
    if extra:
        body.update(extra)
    return web.Response(status=status, text=_dumps(body), content_type=_JSON, headers=headers)


def _metrics_setting(metrics: Any) -> Any:
    """None/True: a PrometheusMetrics if prometheus-client is installed; False: none."""
    if metrics is False:
        return None
    if metrics is not None and metrics is not True:
        return metrics
    try:
        from module_sdk.observability.prometheus import server_metrics
    except ImportError:
        if metrics is True:
            raise ConfigurationError(
                "metrics=True needs prometheus-client: pip install "
                "'waddlebot-module-sdk[prometheus]'"
            ) from None
        return None
    return server_metrics()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def worst_case(adapter: BaseAdapter) -> tuple[float, str] | None:
    """An adapter's longest call without a deadline (attempts x read timeout + backoff caps)
    and how it adds up; None when the adapter has no such settings."""
    read = getattr(adapter, "read_timeout", None)
    retries = getattr(adapter, "max_retries", None)
    if not isinstance(read, int | float) or not isinstance(retries, int):
        return None
    initial = float(getattr(adapter, "initial_retry_delay", 0.0))
    maximum = float(getattr(adapter, "max_retry_delay", 0.0))
    backoff = sum(backoff_cap(i, initial, maximum) for i in range(retries))
    total = (retries + 1) * read + backoff
    return total, f"{retries + 1} attempt(s) x {read:g} s read timeout + {backoff:g} s backoff"


def _warn_if_too_slow(module: _Module, router_timeout: float) -> None:
    found = worst_case(module.adapter)
    if found is None:
        return
    total, how = found
    if total <= router_timeout:
        return
    deadline = getattr(module.adapter, "total_timeout", None)
    if isinstance(deadline, int | float) and deadline < router_timeout:
        cut = f"its deadline (total_timeout) of {deadline:g} s ends such calls with "
        cut += "deadline_exceeded"
    else:
        cut = "nothing ends such calls before the router re-sends"
    logger.warning(
        "module %r may take up to %g s (%s), longer than the router's %g s timeout; %s: lower "
        "read_timeout or max_retries, or match [server] router_timeout to the router's "
        "ROUTER_REQUEST_TIMEOUT",
        module.name,
        total,
        how,
        router_timeout,
        cut,
    )


def _redis_state(config: ServerConfig) -> Any:
    """The shared state of ``[redis]``, or None (no network call: redis-py connects lazily)."""
    if not config.redis_url:
        return None
    try:
        from module_sdk.resilience.redis_state import RedisState
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise ConfigurationError(
            f"{config.source}: [redis] needs redis-py: pip install 'waddlebot-module-sdk[redis]'"
        ) from None
    state = RedisState(
        config.redis_url, prefix=config.redis_prefix, socket_timeout=config.redis_socket_timeout
    )
    logger.info(
        "shared state (breakers, rate limits, cache, re-sends) in Redis at %s, prefix %r",
        url_without_password(config.redis_url),
        config.redis_prefix,
    )
    return state


def _resend_counter(metrics: Any) -> Any:
    """The counter of answers served to re-sends, on the metrics' registry (None: no metrics)."""
    if metrics is None or getattr(metrics, "registry", None) is None:
        return None
    existing = getattr(metrics, "_server_resend_counter", None)
    if existing is not None:  # one metrics object shared by several servers
        return existing
    from prometheus_client import Counter

    counter = Counter(
        f"{metrics.prefix}_server_resend_answers",
        "Re-sent commands (same session_id) answered without running the module again, by "
        "module and source (in_flight: joined the running call; stored: its stored answer).",
        ["module", "source"],
        registry=metrics.registry,
    )
    metrics._server_resend_counter = counter
    return counter


class BadRequest(Exception):
    """The request body cannot be turned into an ExecuteRequest (answered with 400)."""


class _ArgsTooLarge(BadRequest):
    """``args`` is over ``max_args_chars`` (answered with 413 before it is split)."""


class _BodyTimeout(Exception):
    """The body did not arrive within ``body_timeout`` (answered with 408)."""


class _Refused(Exception):
    """A step of request handling refused the request; ``response`` is the answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"the body is not valid JSON ({name} is not a JSON number)")


def _credentials_failing(status: dict[str, Any], none_at_start: bool) -> bool:
    """True while a module's calls fail for want of credentials (no success since)."""
    if none_at_start and status.get("last_success") is None:
        return True
    return bool(
        status.get("last_error_code") == ErrorCode.CREDENTIALS
        and status.get("consecutive_failures")
    )


class _Module:
    """A module as the server sees it: its adapter, commands and in-flight count."""

    __slots__ = (
        "adapter",
        "answer_by",
        "commands",
        "in_flight",
        "max_in_flight",
        "name",
        "rejected",
    )

    def __init__(
        self,
        name: str,
        adapter: BaseAdapter,
        commands: tuple[str, ...],
        max_in_flight: int,
        answer_by: float,
    ) -> None:
        self.name = name
        self.answer_by = answer_by
        self.adapter = adapter
        self.commands = commands
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.rejected = 0


def _text_field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise BadRequest(f"field {name!r} is missing")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # the router's ids may be numbers
    raise BadRequest(f"field {name!r} must be a string, not {type(value).__name__}")


class ModuleServer:
    """The module server, usable in-process as an async context manager::

        config = load_config("modules.toml")
        async with ModuleServer(config, host="127.0.0.1", port=0) as server:
            print(server.url)  # http://127.0.0.1:PORT

    Leaving the block shuts down gracefully: stop accepting, let in-flight requests finish
    (up to ``config.shutdown_grace`` seconds), then close every adapter's AWS client.

    Args:
        config: the validated configuration (:func:`module_sdk.server.load_config`).
        host / port: override ``config.host`` / ``config.port``.
        insecure_no_auth: serve without a service key (refused otherwise when none is set).
        adapters: prebuilt adapters by module name (for Python callers and tests); modules
            not listed get a LambdaAdapter built from their configuration.
        metrics: the ``PrometheusMetrics`` served at ``GET /metrics``; by default one on a
            private registry when prometheus-client is installed; False turns it off.
            Prebuilt ``adapters`` are counted only if built with ``observers=[metrics]``.
        reuse_port: listen with ``SO_REUSEPORT`` so that several processes share the port
            (``waddlebot-lambda serve --workers N``; Linux spreads connections among them).

    Raises:
        ConfigurationError: no service key and ``insecure_no_auth`` is False.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        host: str | None = None,
        port: int | None = None,
        insecure_no_auth: bool = False,
        adapters: Mapping[str, BaseAdapter] | None = None,
        metrics: Any = None,
        reuse_port: bool = False,
    ) -> None:
        self.reuse_port = reuse_port
        key = config.service_api_key
        if not key and not insecure_no_auth:
            raise ConfigurationError(
                f"{config.source}: service_api_key is missing: set service_api_key in the file "
                "or SERVICE_API_KEY in the environment (the router sends it as X-Service-Key), "
                "or pass --insecure-no-auth to serve without authentication on a trusted network"
            )
        if key:
            check_service_key(key, config.source)
        self.config = config
        self.host = config.host if host is None else host
        self.port = config.port if port is None else port
        self._key: bytes | None = key.encode() if key else None
        given = dict(adapters or {})
        self._modules: dict[str, _Module] = {}
        self._no_credentials: set[str] = set()
        self._by_command: dict[str, _Module] = {}
        self.metrics = _metrics_setting(metrics)
        observers = () if self.metrics is None else (self.metrics,)
        self.redis = _redis_state(config)
        # The server's own last word: between the modules' deadline and the router's timeout.
        answer_by = config.router_timeout - deadline_margin(config.router_timeout) / 2
        shared: dict[str, Any] = {} if self.redis is None else {"state": self.redis}
        for spec in config.modules:
            adapter = given.pop(spec.name, None) or build_adapter(
                spec, observers=observers, **shared
            )
            if self.metrics is not None:
                self.metrics.watch(adapter)
            module = _Module(spec.name, adapter, spec.commands, spec.max_in_flight, answer_by)
            _warn_if_too_slow(module, config.router_timeout)
            self._modules[spec.name] = module
            for command in spec.commands:
                self._by_command[command.casefold()] = module
        if given:
            raise ConfigurationError(
                f"adapters given for modules not in the configuration: {sorted(given)}"
            )
        self._guard = (
            ResendGuard(
                ttl=config.resend_ttl,
                max_bytes=config.resend_memory_bytes,
                shared=None if self.redis is None else RedisResendStore(self.redis),
            )
            if config.resend_ttl > 0
            else None
        )
        self._resend_counter = _resend_counter(self.metrics)
        self._access = None if config.access_log == "off" else AccessLog(config.access_log)
        self._retry_after = str(config.retry_after)
        self._busy_codes = config.busy_error_codes
        self._default_platform = config.default_platform
        self._draining = False
        self._runner: web.AppRunner | None = None
        self.connection_guard = ConnectionGuard(ConnectionLimits.from_config(config))
        self._auth_failures = AuthFailures(config.max_auth_failures, self.connection_guard.log)
        self._restore_loop_handler: Callable[[], None] | None = None
        self.url = ""
        self.bind_url = ""
        self.app = self._make_app()

    # -- lifecycle --------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_bytes,
            middlewares=[self._middleware],
        )
        app.router.add_post("/api/v1/execute", self._execute_by_command)
        app.router.add_post("/modules/{name}/api/v1/execute", self._execute_by_name)
        app.router.add_get("/api/v1/modules", self._list_modules)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        app.on_cleanup.append(self._cancel_flights)
        app.on_cleanup.append(self._close_adapters)
        app.on_cleanup.append(self._close_redis)
        return app

    @property
    def draining(self) -> bool:
        """True once shutdown began (/health answers 503; the listener closes after drain_delay)."""
        return self._draining

    @property
    def modules(self) -> Mapping[str, BaseAdapter]:
        """The adapters by module name."""
        return {name: m.adapter for name, m in self._modules.items()}

    async def start(self) -> str:
        """Start listening; returns the URL (``http://host:port``, the real port for 0)."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.config.shutdown_grace,
        )
        await runner.setup()
        site = GuardedSite(
            runner, self.connection_guard, self.host, self.port, reuse_port=self.reuse_port
        )  # limits: _protection.py
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._restore_loop_handler = install_accept_log_limit(
            asyncio.get_running_loop(), self.connection_guard.log
        )
        port = site.port
        wildcard = self.host in ("0.0.0.0", "", "::")
        shown = "127.0.0.1" if wildcard else self.host
        self.port = port
        self.url = f"http://{_bracketed(shown)}:{port}"
        self.bind_url = f"http://{_bracketed(self.host or '0.0.0.0')}:{port}"
        await self._check_credentials()
        logger.info(
            "module server listening on %s%s with %d module(s)",
            self.bind_url,
            " (every interface)" if wildcard else "",
            len(self._modules),
        )
        return self.url

    async def _check_credentials(self) -> None:
        """Warn at start-up when calls to AWS would have no credentials (/health says so)."""
        for module in self._modules.values():
            check = getattr(module.adapter, "credentials_missing", None)
            if check is not None and await check():
                self._no_credentials.add(module.name)
        if self._no_credentials:
            logger.warning(
                "no AWS credentials found for module(s) %s: every call will fail with "
                "error_code 'credentials' until some are set (AWS_PROFILE, "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role); /health "
                "reports these modules unhealthy",
                ", ".join(sorted(self._no_credentials)),
            )

    async def aclose(self) -> None:
        """Graceful shutdown: stop accepting, drain in-flight requests, close the adapters."""
        runner, self._runner = self._runner, None
        self._draining = True
        if runner is None:
            await self._close_adapters(self.app)
            await self._close_redis(self.app)
            return
        self.connection_guard.draining = True  # every answer now says Connection: close
        if self.config.drain_delay > 0:
            # Keep listening and answering while load balancers see /health 503 and move away.
            logger.info("draining: serving for %.1f s more (drain_delay)", self.config.drain_delay)
            await asyncio.sleep(self.config.drain_delay)
        in_flight = sum(m.in_flight for m in self._modules.values())
        logger.info(
            "shutting down: %d request(s) in flight, grace %.1f s",
            in_flight,
            self.config.shutdown_grace,
        )
        await runner.cleanup()  # stops the listener, waits for handlers, runs on_cleanup
        if self._restore_loop_handler is not None:
            self._restore_loop_handler()
            self._restore_loop_handler = None

    async def _cancel_flights(self, _app: web.Application) -> None:
        # Runs after the grace period: the requests that waited for these runs are gone.
        if self._guard is not None:
            await self._guard.cancel()

    async def _close_redis(self, _app: web.Application) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def _close_adapters(self, _app: web.Application) -> None:
        for module in self._modules.values():
            try:
                await module.adapter.aclose()
            except Exception:
                logger.exception("closing the adapter of module %r failed", module.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- middleware: auth and error shaping --------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        seen, token = _access.begin()
        try:
            response = await self._dispatch(request, handler)
        finally:
            _access.end(token)
        # Refusals for the key are counted in a rate-limited warning instead: a client without
        # the key cannot fill the log at the speed of its requests.
        if self._access is not None and _UNAUTHENTICATED not in response:
            self._access.log(
                request.method, request.path, response.status, time.perf_counter() - started, seen
            )
        return response

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._key is not None and request.path not in _PROBES:
            address = request.remote or "unknown"
            wait = self._auth_failures.retry_after(address)
            if wait:
                refused = _error(
                    ErrorCode.TOO_MANY_FAILURES,
                    f"too many wrong or missing {SERVICE_KEY_HEADER} headers from this address: "
                    f"try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
                refused[_UNAUTHENTICATED] = True
                return refused
            given = request.headers.get(SERVICE_KEY_HEADER)
            if given is None or not hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), self._key
            ):
                self._auth_failures.failed(address, request.method, request.raw_path, given is None)
                refused = _error(
                    ErrorCode.UNAUTHORIZED,
                    f"missing or wrong {SERVICE_KEY_HEADER} header: send the router's service key",
                )
                refused[_UNAUTHENTICATED] = True
                return refused
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(
                _CODE_OF_STATUS.get(exc.status, ErrorCode.HTTP_ERROR),
                f"{exc.reason}: {request.method} {request.path}",
                status=exc.status,
                headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
            )
        except ConnectionError as exc:  # the client went away mid-request: nothing to answer
            logger.debug(
                "%s %r: the client disconnected (%s)", request.method, request.raw_path, exc
            )
            return _error(ErrorCode.DISCONNECTED, "the client disconnected")
        except Exception:
            logger.exception("unexpected error handling %s %r", request.method, request.raw_path)
            return _error(ErrorCode.INTERNAL, "internal server error (details are in the log)")

    # -- handlers ---------------------------------------------------------------------------

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        try:  # a body dripped byte by byte must not hold a handler (or the shutdown)
            async with asyncio.timeout(self.config.body_timeout):
                raw = await request.read()  # 413 past client_max_size (chunked bodies too)
        except TimeoutError:
            raise _BodyTimeout from None
        try:
            body = json.loads(raw, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON ({exc})") from None
        except ValueError as exc:  # an integer over Python's 4,300-digit conversion limit
            raise BadRequest(f"the body has a number Python cannot read ({exc})") from None
        except RecursionError:
            raise BadRequest("the body is nested too deeply") from None
        if not isinstance(body, dict):
            raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
        return body

    def _build_request(self, body: Mapping[str, Any]) -> ExecuteRequest:
        fields = {name: _text_field(body, name) for name in _REQUIRED_FIELDS}
        if not fields["command"]:
            raise BadRequest("field 'command' must not be empty")
        args = body.get("args", "")
        if args is None:
            args = ""
        if isinstance(args, str):
            self._check_args_size(len(args))
            arg_list = split_args(args)
        elif isinstance(args, list) and all(isinstance(a, str) for a in args):
            self._check_args_size(sum(len(a) for a in args))
            arg_list = list(args)
        else:
            raise BadRequest("field 'args' must be a string (or a list of strings)")
        message = body.get("message", "")
        if message is not None and not isinstance(message, str):
            raise BadRequest(f"field 'message' must be a string, not {type(message).__name__}")
        platform = body.get("platform") or self._default_platform
        if not isinstance(platform, str):
            raise BadRequest(f"field 'platform' must be a string, not {type(platform).__name__}")
        metadata = body.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            raise BadRequest(f"field 'metadata' must be an object, not {type(metadata).__name__}")
        else:
            metadata = dict(metadata)
        if message:
            metadata.setdefault("message", message)
        scopes = body.get("scopes")
        if scopes is not None and (
            not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
        ):
            raise BadRequest("field 'scopes' must be a list of strings")
        request = ExecuteRequest(
            args=arg_list,
            platform=platform,
            metadata=metadata,
            scopes=list(scopes) if scopes is not None else [],
            **fields,
        )
        try:
            return validate_request(request)  # control characters, over-long ids, ...
        except RequestError as exc:
            raise BadRequest(exc.message.replace("ExecuteRequest.", "field ")) from None

    def _check_args_size(self, size: int) -> None:
        limit = self.config.max_args_chars
        if size > limit:
            raise _ArgsTooLarge(
                f"field 'args' is {size:,} characters, over the server's max_args_chars "
                f"({limit:,}): chat arguments are short; raise [server] max_args_chars if "
                "this module needs more"
            )

    async def _execute_by_command(self, request: web.Request) -> web.Response:
        return await self._execute(request, None)

    async def _execute_by_name(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        module = self._modules.get(name)
        if module is None:
            return _error(
                ErrorCode.UNKNOWN_MODULE,
                f"no module named {name!r}; modules: {', '.join(sorted(self._modules))}",
            )
        return await self._execute(request, module)

    async def _execute(self, request: web.Request, module: _Module | None) -> web.Response:
        """parse -> guard -> run once per session (admit, run, shape) -> reply."""
        # No refusal while draining: a request that reached a handler is an accepted one.
        started = time.perf_counter()
        try:
            body, execute_request = await self._parse(request)
            module = self._guard_request(body, execute_request, module)
        except _Refused as refused:
            return refused.response
        answer, hit = await self._run_once(module, execute_request)
        return self._reply(answer, hit, started)

    async def _parse(self, request: web.Request) -> tuple[dict[str, Any], ExecuteRequest]:
        """The body and the ExecuteRequest it holds; refused with 400, 408 or 413."""
        try:
            body = await self._read_body(request)
            return body, self._build_request(body)
        except _ArgsTooLarge as exc:
            raise _Refused(_error(ErrorCode.ARGS_TOO_LARGE, f"{exc}")) from None
        except BadRequest as exc:
            raise _Refused(_error(ErrorCode.INVALID_REQUEST, f"{exc}")) from None
        except _BodyTimeout:
            late = _error(
                ErrorCode.BODY_TIMEOUT,
                f"the body did not arrive within {self.config.body_timeout:g} s "
                "(the server's body_timeout)",
            )
            late.force_close()
            raise _Refused(late) from None
        except web.HTTPRequestEntityTooLarge:
            raise _Refused(
                _error(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"the body is over the server's max_body_bytes "
                    f"({self.config.max_body_bytes:,} bytes): send less metadata",
                )
            ) from None

    def _guard_request(
        self, body: Mapping[str, Any], execute_request: ExecuteRequest, module: _Module | None
    ) -> _Module:
        """The module that answers the request (by name or by command), if the request's
        scopes allow it; refused with 404 or 403."""
        command = execute_request.command
        seen = _access.facts()
        seen.session_id, seen.command = execute_request.session_id, command
        if module is None:
            module = self._by_command.get(command.casefold())
            if module is None:
                raise _Refused(
                    _error(
                        ErrorCode.UNKNOWN_COMMAND,
                        f"no module answers the command {command!r}",
                        extra={"session_id": execute_request.session_id},
                    )
                )
        seen.module = module.name
        if "scopes" in body and not module.adapter.validate_scopes(execute_request.scopes):
            missing = sorted(set(module.adapter.required_scopes) - set(execute_request.scopes))
            raise _Refused(
                _error(
                    ErrorCode.MISSING_SCOPES,
                    f"module {module.name!r} needs the scope(s) {missing}",
                    extra={"session_id": execute_request.session_id, "module": module.name},
                )
            )
        return module

    async def _run_once(
        self, module: _Module, execute_request: ExecuteRequest
    ) -> tuple[Answer, Hit | None]:
        """The module's answer, from one run per (module, session_id): a re-send gets the
        running or stored run's answer, and ``hit`` says which."""
        if self._guard is None:
            answer, hit = await self._run_module(module, execute_request), None
        else:
            answer, hit = await self._guard.run(
                module.name,
                execute_request.session_id,
                lambda: self._run_module(module, execute_request),
                wait_limit=module.answer_by,
            )
        seen = _access.facts()
        seen.attempts = 0 if hit is not None else answer.attempts
        seen.resend = hit
        if hit is not None:
            self._count_resend(module.name, hit)
            logger.info(
                "re-send of session %s for module %r answered from the %s run (resend=%s)",
                execute_request.session_id,
                module.name,
                "running" if hit == "in_flight" else "finished",
                hit,
            )
        return answer, hit

    def _reply(self, answer: Answer, hit: Hit | None, started: float) -> web.Response:
        """The HTTP response of an answer, with Server-Timing and Retry-After."""
        headers: dict[str, str] = {}
        if answer.module_ms is not None and hit is None:
            # The module's time and the server's own, in ms (W3C Server-Timing).
            own_ms = (time.perf_counter() - started) * 1000 - answer.module_ms
            headers["Server-Timing"] = f"module;dur={answer.module_ms:.3f}, server;dur={own_ms:.3f}"
        if answer.retry_after:
            headers["Retry-After"] = self._retry_after
        return web.Response(
            status=answer.status, text=answer.body, content_type=_JSON, headers=headers
        )

    async def _run_module(self, module: _Module, execute_request: ExecuteRequest) -> Answer:
        """Admit, run and shape the module's HTTP answer (stored for re-sends when final)."""
        busy = self._admit(module, execute_request)
        if busy is not None:
            return busy
        called = time.perf_counter()
        response = await self._run(module, execute_request)  # counted in flight from here
        module_ms = (time.perf_counter() - called) * 1000
        return self._shape(module, execute_request, response, module_ms)

    def _admit(self, module: _Module, execute_request: ExecuteRequest) -> Answer | None:
        """None when the module may take one more request, else the 429 ``busy`` answer."""
        if module.in_flight < module.max_in_flight:
            return None
        module.rejected += 1
        return Answer(
            429,
            _dumps(
                {
                    "success": False,
                    "error": f"module {module.name!r} has {module.in_flight} requests in "
                    "flight (its max_in_flight): try again later",
                    "error_code": ErrorCode.BUSY.value,
                    "session_id": execute_request.session_id,
                    "module": module.name,
                }
            ),
            retry_after=True,
            attempts=0,
        )

    async def _run(self, module: _Module, execute_request: ExecuteRequest) -> ExecuteResponse:
        """The adapter's response, within the server's own deadline; never raises."""
        module.in_flight += 1
        try:
            async with asyncio.timeout(module.answer_by):
                return await module.adapter.execute_async(execute_request)
        except TimeoutError:
            # The adapter's own deadline (total_timeout) should have answered first; this one
            # catches adapters without one. The router caches this answer instead of re-sending.
            logger.warning(
                "module %r gave no answer within %.1f s (the router's timeout is near)",
                module.name,
                module.answer_by,
            )
            return ExecuteResponse(
                success=False,
                error=f"module {module.name!r} did not answer within {module.answer_by:g} s",
                error_code=ErrorCode.DEADLINE_EXCEEDED.value,
            )
        except Exception as exc:  # adapters should never raise; a custom one might
            logger.exception("module %r raised instead of answering", module.name)
            return ExecuteResponse(
                success=False,
                error=f"module {module.name!r} failed unexpectedly ({type(exc).__name__})",
                error_code=ErrorCode.INTERNAL.value,
            )
        finally:
            module.in_flight -= 1

    def _shape(
        self,
        module: _Module,
        execute_request: ExecuteRequest,
        response: ExecuteResponse,
        module_ms: float,
    ) -> Answer:
        """The HTTP answer of a module's response: 200, or 429 for a busy error code, or 413
        when the event was over Lambda's payload limit."""
        status = 200
        if not response.success:
            if response.error_code in self._busy_codes:
                module.rejected += 1
                status = 429
            elif response.error_code == ErrorCode.PAYLOAD_TOO_LARGE.value:
                status = 413  # over Lambda's own payload limit (1 MB for Event calls)
        text = _dumps(self._response_body(response, execute_request.session_id, module.name))
        return Answer(
            status,
            text,
            retry_after=status == 429,
            module_ms=module_ms,
            attempts=None if response.diagnostics is None else response.diagnostics.attempts,
        )

    def _count_resend(self, module: str, hit: Hit) -> None:
        if self._resend_counter is not None:
            self._resend_counter.labels(module=module, source=hit).inc()

    def _retry_hdr(self) -> dict[str, str]:
        return {"Retry-After": self._retry_after}

    def _response_body(
        self, response: ExecuteResponse, session_id: str, name: str
    ) -> dict[str, Any]:
        # A shallow copy: to_dict()'s recursive asdict() deep-copies data for nothing here.
        body = {key: getattr(response, key) for key in _RESPONSE_FIELDS}
        diagnostics = response.diagnostics
        body["diagnostics"] = None if diagnostics is None else diagnostics.to_dict()
        if not self.config.expose_error_details:
            # A function's internals (stack trace, file paths, its log) stay in this server:
            # the error type, message and code are what the router shows.
            data = body["data"]
            if (
                response.error_code == ErrorCode.FUNCTION_ERROR.value
                and isinstance(data, dict)
                and "stack_trace" in data
            ):
                body["data"] = {k: v for k, v in data.items() if k != "stack_trace"}
            if body["diagnostics"] is not None and body["diagnostics"].get("log_tail"):
                body["diagnostics"]["log_tail"] = None
        body["session_id"] = session_id
        body["module"] = name
        return body

    async def _list_modules(self, request: web.Request) -> web.Response:
        modules = []
        for module in self._modules.values():
            info = module.adapter.get_module_info()
            info["commands"] = list(module.commands)
            info["max_in_flight"] = module.max_in_flight
            info["in_flight"] = module.in_flight
            info["url_path"] = f"/modules/{module.name}/api/v1/execute"
            modules.append(info)
        return web.Response(text=_dumps({"modules": modules}), content_type=_JSON)

    async def _health(self, request: web.Request) -> web.Response:
        modules = {}
        healthy = not self._draining
        # Probes call /health without the key: the functions' own error texts (which may
        # quote user input) are shown only to callers holding it; error codes always are.
        given = request.headers.get(SERVICE_KEY_HEADER)
        trusted = self._key is None or (
            given is not None
            and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._key)
        )
        for module in self._modules.values():
            status = module.adapter.get_health_status()
            if not trusted and status.get("last_error") is not None:
                status["last_error"] = "[hidden: send X-Service-Key to see it]"
            status["in_flight"] = module.in_flight
            status["rejected_busy"] = module.rejected
            if _credentials_failing(status, module.name in self._no_credentials):
                # Not a passing fault: every call fails the same way until credentials are set.
                status["is_healthy"] = False
                status["credentials"] = "missing"
            else:
                self._no_credentials.discard(module.name)
            status["summary"] = health_summary(status)
            modules[module.name] = status
            healthy = healthy and bool(status["is_healthy"])
        state = "draining" if self._draining else ("healthy" if healthy else "unhealthy")
        return web.Response(
            status=200 if healthy else 503,
            text=_dumps({"status": state, "modules": modules}),
            content_type=_JSON,
        )

    async def _ready(self, request: web.Request) -> web.Response:
        # Readiness, not liveness: configured and accepting work. An unhealthy function does
        # not make the server unready (the router would get nothing better elsewhere).
        if self._draining:
            return web.Response(status=503, text=_dumps({"status": "draining"}), content_type=_JSON)
        return web.Response(
            text=_dumps({"status": "ready", "modules": sorted(self._modules)}),
            content_type=_JSON,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            return _error(
                ErrorCode.NOT_FOUND,
                "metrics are off: install the prometheus extra "
                "(pip install 'waddlebot-module-sdk[prometheus]')",
            )
        from module_sdk.observability.prometheus import render_metrics

        await self.metrics.refresh()
        body, content_type = render_metrics(self.metrics.registry, request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})
