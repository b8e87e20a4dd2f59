"""The module server's configuration: TOML, validated at start, overridden by the environment.

Every error names the file, the key and the problem (``modules.toml: modules[1].commands: ...``).
The loader is a table of keys (:data:`SERVER_KEYS`, :data:`AWS_KEYS`, :data:`MODULE_KEYS`).
The adapter's call settings (timeouts, retries, credentials, ...) are checked by building its
frozen :class:`~module_sdk.adapters.settings.LambdaSettings`, the one place they are validated;
the error then names the table and key they came from. The server's own keys have a check each.
Values that only :class:`~module_sdk.adapters.LambdaAdapter` understands travel through
``[aws.adapter]`` / ``[modules.adapter]`` tables as keyword arguments, so a new adapter option is
configurable without touching this module (the adapter's own error names the problem).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from module_sdk._module import MODULE_NAME_PATTERN
from module_sdk.adapters.lambda_adapter import (
    HTTP_CLIENTS,
    LambdaAdapter,
)
from module_sdk.adapters.settings import LambdaSettings
from module_sdk.errors import ConfigurationError, ErrorCode, ServerConfigError
from module_sdk.resilience.breaker import CircuitBreakerConfig
from module_sdk.resilience.cache import ResponseCacheConfig
from module_sdk.resilience.ratelimit import RateLimit

__all__ = [
    "AWS_KEYS",
    "DEFAULT_BUSY_ERROR_CODES",
    "ENVIRONMENT_VARIABLES",
    "MODULE_KEYS",
    "REDIS_KEYS",
    "SERVER_KEYS",
    "TABLE_FACTORIES",
    "ModuleSpec",
    "ServerConfig",
    "ServerConfigError",
    "build_adapter",
    "deadline_margin",
    "default_deadline",
    "load_config",
    "parse_config",
    "url_without_password",
]

logger = logging.getLogger(__name__)

DEFAULT_BUSY_ERROR_CODES: tuple[str, ...] = (
    ErrorCode.THROTTLED.value,
    ErrorCode.RATE_LIMITED.value,
    ErrorCode.CIRCUIT_OPEN.value,
)
"""Adapter error codes answered with 429 + ``Retry-After`` (the router then backs off)."""

ENVIRONMENT_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "SERVICE_API_KEY": "service_api_key",
        "AWS_REGION": "aws.region",
        "AWS_DEFAULT_REGION": "aws.region (only when neither the file nor AWS_REGION sets it)",
        "LAMBDA_FUNCTION_PREFIX": "aws.function_prefix (an empty value removes the prefix)",
        "AWS_ENDPOINT_URL_LAMBDA": "aws.endpoint_url",
        "AWS_ENDPOINT_URL": "aws.endpoint_url (when AWS_ENDPOINT_URL_LAMBDA is not set)",
        "AWS_PROFILE": "aws.profile",
        "REDIS_URL": "redis.url",
    }
)
"""The environment variables the loader reads, and the key each one overrides."""


# -- value checks -----------------------------------------------------------------------------

Check = Callable[[Any], str | None]
"""Returns None when the value is acceptable, else what is wrong with it (and what to use)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "use a non-empty string"


def _string_or_empty(value: Any) -> str | None:
    return None if isinstance(value, str) else "use a string"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "use one of " + ", ".join(repr(c) for c in choices)

    return check


def _positive(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "use a number > 0"


def _non_negative(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "use a number >= 0"


def _int_range(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        if ok and (high is None or value <= high):
            return None
        return f"use an integer from {low} to {high}" if high else f"use an integer >= {low}"

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "use true or false"


def _string_list(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return None if ok else "use a list of non-empty strings"


def _commands(value: Any) -> str | None:
    if _string_list(value) is not None:
        return 'use a list of command strings, such as ["!roll", "!dice"]'
    for command in value:
        if command != command.strip() or any(c.isspace() for c in command):
            return f"command {command!r} contains whitespace: use one word per command"
    return None


def _busy_codes(value: Any) -> str | None:
    known = {code.value for code in ErrorCode}
    if _string_list(value) is not None:
        return 'use a list of error codes, such as ["throttled", "circuit_open"]'
    unknown = [v for v in value if v not in known]
    if unknown:
        return f"unknown error code(s) {unknown!r}: use values of module_sdk.ErrorCode"
    return None


def _table(value: Any) -> str | None:
    return None if isinstance(value, dict) else "use a table of keyword arguments"


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key: its check, the LambdaAdapter parameter it feeds, its meaning.

    ``check`` is None for the adapter's call settings: :class:`LambdaSettings` checks those.
    """

    check: Check | None
    help: str
    adapter_param: str | None = None


def _setting(help: str, field_name: str) -> Key:
    """A key holding one of :class:`LambdaSettings`' fields (validated by building it)."""
    return Key(None, help, field_name)


SERVER_KEYS: Mapping[str, Key] = MappingProxyType(
    {
        "host": Key(_string, "interface to listen on (default 0.0.0.0; --host wins)"),
        "port": Key(_int_range(0, 65535), "TCP port (default 8000, 0 = any free port)"),
        "max_body_bytes": Key(_int_range(1), "largest request body accepted (default 1 MiB)"),
        "shutdown_grace": Key(
            _positive, "seconds in-flight requests get to finish after SIGTERM (default 25)"
        ),
        "max_in_flight": Key(
            _int_range(1), "default per-module limit of concurrent requests (default 1000)"
        ),
        "retry_after": Key(_int_range(1), "seconds sent in Retry-After with a 429 (default 1)"),
        "busy_error_codes": Key(
            _busy_codes, "adapter error codes answered with 429 (default throttled, ...)"
        ),
        "default_platform": Key(
            _string_or_empty, "platform used when the request has none (default 'unknown')"
        ),
        "expose_error_details": Key(
            _boolean,
            "send a function error's stack trace and the log tail to the router (default false)",
        ),
        "access_log": Key(
            _one_of("plain", "json", "off"), "one line per request: plain, json or off"
        ),
        "router_timeout": Key(
            _positive, "the router's per-attempt timeout, ROUTER_REQUEST_TIMEOUT (default 30)"
        ),
        "resend_ttl": Key(
            _non_negative, "seconds an answer is kept for the router's re-sends (default 120)"
        ),
        "resend_memory_bytes": Key(
            _int_range(1), "memory for answers kept for re-sends (default 64 MiB)"
        ),
        "max_connections": Key(
            _int_range(1), "open connections before a new one gets 503 (default 1000)"
        ),
        "header_timeout": Key(_positive, "seconds a request head may take to arrive (default 10)"),
        "keepalive_timeout": Key(_positive, "seconds an idle connection stays open (default 15)"),
        "body_timeout": Key(_positive, "seconds a request body may take to arrive (default 30)"),
        "max_head_bytes": Key(
            _int_range(1024), "largest request head (request line + headers; default 32768)"
        ),
        "max_headers": Key(_int_range(8), "most header lines in a request (default 32)"),
        "max_field_size": Key(
            _int_range(256), "longest header line or request line (default 8190)"
        ),
        "max_args_chars": Key(
            _int_range(1), "longest args a request may carry, in characters (default 4096)"
        ),
        "max_auth_failures": Key(
            _int_range(0), "wrong keys per minute from one address before 429 (default 20)"
        ),
        "drain_delay": Key(
            _non_negative, "seconds to keep serving (/health 503) after SIGTERM (default 0)"
        ),
    }
)
"""Keys of the ``[server]`` table."""

AWS_KEYS: Mapping[str, Key] = MappingProxyType(
    {
        "region": Key(_string, "AWS region of the functions", "region"),
        "function_prefix": Key(_string_or_empty, "glued to bare function names", "function_prefix"),
        "endpoint_url": _setting("another Lambda API endpoint", "endpoint_url"),
        "invocation_type": _setting("RequestResponse, Event or DryRun", "invocation_type"),
        "connect_timeout": _setting("seconds per connection attempt", "connect_timeout"),
        "read_timeout": _setting('seconds to wait for the function, or "auto"', "read_timeout"),
        "total_timeout": _setting("overall deadline of one request", "total_timeout"),
        "max_retries": _setting("retries after the first attempt", "max_retries"),
        "initial_retry_delay": _setting("first backoff cap (seconds)", "initial_retry_delay"),
        "max_retry_delay": _setting("largest backoff cap (seconds)", "max_retry_delay"),
        "retry_on_timeout": _setting("retry after a read timeout", "retry_on_timeout"),
        "max_connections": _setting("HTTP connection pool size", "max_connections"),
        "log_type": _setting("'Tail' to receive the log tail", "log_type"),
        "http_client": Key(
            _one_of(*HTTP_CLIENTS), "'lean' (default) or 'aiobotocore'", "http_client"
        ),
        "profile": _setting("AWS shared-config profile", "profile_name"),
        "aws_access_key_id": _setting("prefer the environment", "aws_access_key_id"),
        "aws_secret_access_key": _setting("prefer the environment", "aws_secret_access_key"),
        "aws_session_token": _setting("prefer the environment", "aws_session_token"),
        "adapter": Key(_table, "extra LambdaAdapter keyword arguments"),
    }
)
"""Keys of the ``[aws]`` table; each may also be set per module."""


def _redis_url(value: Any) -> str | None:
    ok = isinstance(value, str) and value.startswith(("redis://", "rediss://", "unix://"))
    return None if ok else "use redis://[:password@]host:port/db, rediss://... or unix:///path"


REDIS_KEYS: Mapping[str, Key] = MappingProxyType(
    {
        "url": Key(_redis_url, "the Redis server (REDIS_URL wins; the password is never logged)"),
        "prefix": Key(_string_or_empty, "prepended to every key (default 'waddlebot:')"),
        "socket_timeout": Key(_positive, "seconds per Redis command (default 1)"),
    }
)
"""Keys of the ``[redis]`` table: shared breaker, rate-limit, cache and re-send state."""


def url_without_password(url: str) -> str:
    """``url`` with its password (and user name) replaced by ``***``, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<hidden>"
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    path, _, query = path.partition("?")
    shown = f"{scheme}://{authority}{slash}{path}"
    return shown + ("?..." if query else "")


MODULE_KEYS: Mapping[str, Key] = MappingProxyType(
    {
        "name": Key(_string, "the WaddleBot module name (required)"),
        "function": Key(_string, "function name, name:qualifier or ARN (default: name)"),
        "qualifier": Key(_string, "version or alias", "qualifier"),
        "commands": Key(_commands, "the router commands this module answers"),
        "required_scopes": Key(_string_list, "scopes the module needs", "required_scopes"),
        "version": Key(_string, "module version (default 1.0.0)", "module_version"),
        "max_in_flight": Key(_int_range(1), "concurrent requests before 429"),
        **AWS_KEYS,
    }
)
"""Keys of each ``[[modules]]`` entry (the ``[aws]`` keys act as per-module overrides)."""

# LambdaAdapter parameters the loader sets itself: not allowed in an `adapter` table.
_MANAGED_PARAMS = frozenset(
    {"function_identifier", "module_name"}
    | {k.adapter_param for k in MODULE_KEYS.values() if k.adapter_param}
)
# Values never repeated in an error message.
_SECRET_KEYS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "url"})
# Parameters that only take Python objects and would make no sense from a file.
_OBJECT_PARAMS = frozenset({"client", "invoker", "pool", "clock", "rng"})


# Tables that become a policy's config object: parameter -> its class. A nested table becomes
# the nested dataclass its field is annotated with; a list becomes a frozenset, set or tuple
# when the field is annotated so.
TABLE_FACTORIES: Mapping[str, type] = MappingProxyType(
    {
        "circuit_breaker": CircuitBreakerConfig,
        "rate_limit": RateLimit,
        "cache": ResponseCacheConfig,
    }
)


def _dataclass_in(annotation: Any) -> type | None:
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    for arg in typing.get_args(annotation):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def _collection_in(annotation: Any) -> type | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        origin = typing.get_origin(candidate) or candidate
        if origin in (frozenset, set, tuple):
            return origin  # type: ignore[no-any-return]
    return None


def _from_table(cls: type, table: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` from a TOML table, converting nested tables and lists."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # names only imported for type checkers: no conversion then
        hints = {}
    fields = (
        [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
    )
    values: dict[str, Any] = {}
    for name, value in table.items():
        if fields and name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown key {name!r}{hint}; the keys are {', '.join(fields)}")
        annotation = hints.get(name)
        if isinstance(value, dict) and (nested := _dataclass_in(annotation)) is not None:
            value = _from_table(nested, value)
        elif isinstance(value, list) and (collection := _collection_in(annotation)) is not None:
            value = collection(value)
        values[name] = value
    return cls(**values)


def _convert_adapter_table(where: str, table: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for key, value in table.items():
        cls = TABLE_FACTORIES.get(key)
        if cls is not None and isinstance(value, dict):
            class_name = cls.__name__
            try:
                value = _from_table(cls, value)
            except (TypeError, ValueError) as exc:
                message = exc.message if isinstance(exc, ConfigurationError) else str(exc)
                raise ServerConfigError(
                    f"{where}adapter.{key} is invalid ({class_name}): {message}"
                ) from exc
        converted[key] = value
    return converted


# -- the result -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """One module, ready to become a LambdaAdapter.

    Attributes:
        name: the module name (``/modules/{name}/api/v1/execute``).
        commands: the router commands it answers, as written in the file.
        max_in_flight: concurrent requests before the server answers 429.
        adapter_kwargs: every LambdaAdapter keyword argument (defaults, overrides, env applied).
        where: the file and entry (``modules.toml: modules[0] (dice)``) for error messages.
    """

    name: str
    commands: tuple[str, ...]
    max_in_flight: int
    adapter_kwargs: Mapping[str, Any] = field(repr=False)
    where: str = ""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole validated configuration. The service key is kept out of ``repr``."""

    modules: tuple[ModuleSpec, ...]
    service_api_key: str | None = field(default=None, repr=False)
    host: str = "0.0.0.0"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    shutdown_grace: float = 25.0
    retry_after: int = 1
    busy_error_codes: frozenset[str] = frozenset(DEFAULT_BUSY_ERROR_CODES)
    default_platform: str = "unknown"
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "waddlebot:"
    redis_socket_timeout: float = 1.0
    router_timeout: float = 30.0
    expose_error_details: bool = False
    access_log: str = "plain"
    resend_ttl: float = 120.0
    resend_memory_bytes: int = 64 * 1024 * 1024
    source: str = "<config>"
    max_connections: int = 1000
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    body_timeout: float = 30.0
    max_head_bytes: int = 32 * 1024
    max_headers: int = 32
    max_field_size: int = 8190
    max_args_chars: int = 4096
    max_auth_failures: int = 20
    drain_delay: float = 0.0


# -- loading ----------------------------------------------------------------------------------


def _unknown(where: str, key: str, known: Mapping[str, Key]) -> ServerConfigError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ServerConfigError(
        f"{where}{key}: unknown key{hint}; known keys: {', '.join(sorted(known))}"
    )


def _check_table(
    source: str, prefix: str, table: Mapping[str, Any], known: Mapping[str, Key]
) -> None:
    for key, value in table.items():
        spec = known.get(key)
        if spec is None:
            raise _unknown(f"{source}: {prefix}", key, known)
        problem = None if spec.check is None else spec.check(value)
        if problem is not None:
            shown = "<hidden>" if key in _SECRET_KEYS else repr(value)
            raise ServerConfigError(f"{source}: {prefix}{key} = {shown} is invalid: {problem}")


def _check_adapter_table(source: str, prefix: str, table: Mapping[str, Any]) -> None:
    params = inspect.signature(LambdaAdapter.__init__).parameters
    for key in table:
        if key in _MANAGED_PARAMS:
            plain = next(
                (k for k, s in MODULE_KEYS.items() if s.adapter_param == key), "name/function"
            )
            raise ServerConfigError(
                f"{source}: {prefix}adapter.{key}: set it as the key {plain!r} instead"
            )
        if key in _OBJECT_PARAMS:
            raise ServerConfigError(
                f"{source}: {prefix}adapter.{key}: takes a Python object and cannot come from "
                "a file; build the server in Python (ModuleServer(..., adapters=...)) instead"
            )
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ServerConfigError(
                f"{source}: {prefix}adapter.{key}: LambdaAdapter has no parameter {key!r}{hint}"
            )


def _env_overrides(env: Mapping[str, str], aws: dict[str, Any]) -> None:
    """Apply the environment to the ``[aws]`` defaults, in place."""
    region = env.get("AWS_REGION")
    if region:
        aws["region"] = region
    elif "region" not in aws and env.get("AWS_DEFAULT_REGION"):
        aws["region"] = env["AWS_DEFAULT_REGION"]
    if "LAMBDA_FUNCTION_PREFIX" in env:
        aws["function_prefix"] = env["LAMBDA_FUNCTION_PREFIX"]
    endpoint = env.get("AWS_ENDPOINT_URL_LAMBDA") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        aws["endpoint_url"] = endpoint
    if env.get("AWS_PROFILE"):
        aws["profile"] = env["AWS_PROFILE"]


def _adapter_kwargs(
    name: str, function: str, settings: Mapping[str, Any], adapter: Mapping[str, Any]
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"function_identifier": function, "module_name": name}
    for key, value in settings.items():
        param = MODULE_KEYS[key].adapter_param
        if param is None:
            continue
        if param == "function_prefix" and value == "":
            value = None
        kwargs[param] = value
    kwargs.update(adapter)
    return kwargs


_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(LambdaSettings))
_AUTO = 'or "auto" (the function\'s configured timeout plus a margin)'


def _lambda_settings(
    source: str,
    where: str,
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    defaults: Mapping[str, Any] | None = None,
) -> LambdaSettings:
    """Build the adapter's settings from ``layers`` (table prefix, table), later ones winning.

    LambdaSettings is where every call setting is checked; its error is given back naming the
    file, the table and the key the bad value came from.
    """
    given: dict[str, Any] = dict(defaults or {})
    origin: dict[str, tuple[str, Any]] = {}
    for prefix, table in layers:
        for key, value in table.items():
            spec = MODULE_KEYS.get(key)
            name = None if spec is None else spec.adapter_param
            if name not in _SETTINGS_FIELDS or (name == "read_timeout" and value == "auto"):
                continue
            given[name] = value
            origin[name] = (f"{prefix}{key}", value)
    try:
        return LambdaSettings(**given)
    except ConfigurationError as exc:
        message = exc.message
        head, invalid, problem = message.partition(" is invalid: ")
        field_name = re.match(r"\w+", head)
        found = origin.get(field_name.group() if field_name else "")
        if found is None or not invalid:  # two keys that go together, or a computed default
            raise ServerConfigError(f"{source}: {where}: {message}") from None
        key, value = found
        shown = "<hidden>" if key.rpartition(".")[2] in _SECRET_KEYS else repr(value)
        problem = problem.replace("True or False", "true or false").removesuffix(" or None")
        if field_name is not None and field_name.group() == "read_timeout":
            problem += f", {_AUTO}"
        raise ServerConfigError(f"{source}: {key} = {shown} is invalid: {problem}") from None


def deadline_margin(router_timeout: float) -> float:
    """Seconds a module's answer keeps clear of the router's timeout: 10 %, from 0.2 s to 2 s."""
    return min(2.0, max(0.2, router_timeout * 0.1))


def default_deadline(router_timeout: float) -> float:
    """A module's default ``total_timeout``: the router's per-attempt timeout minus the margin
    (30 s -> 28 s), so the module answers before the router gives up and re-sends."""
    return router_timeout - deadline_margin(router_timeout)


def build_adapter(spec: ModuleSpec, **extra: Any) -> LambdaAdapter:
    """Build the LambdaAdapter of ``spec``; an invalid value raises ServerConfigError.

    ``extra`` keyword arguments (a ``pool``, ``clock``...) are added for Python callers.
    """
    try:
        return LambdaAdapter(**{**spec.adapter_kwargs, **extra})
    except ConfigurationError as exc:
        raise ServerConfigError(f"{spec.where}: {exc.message}") from exc
    except (TypeError, ValueError) as exc:
        raise ServerConfigError(f"{spec.where}: {exc}") from exc


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
) -> ServerConfig:
    """Validate a decoded TOML document and apply the environment.

    Every module's LambdaAdapter is built once (no network call) so that any value only the
    adapter can judge fails here, at start, rather than on the first request.

    Raises:
        ServerConfigError: naming ``source``, the key and the problem.
    """
    env = os.environ if env is None else env
    top_keys = {"service_api_key", "server", "aws", "redis", "modules"}
    for key in data:
        if key not in top_keys:
            raise _unknown(f"{source}: ", key, dict.fromkeys(top_keys, Key(_string, "")))

    api_key = data.get("service_api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ServerConfigError(f"{source}: service_api_key is invalid: use a non-empty string")
    if env.get("SERVICE_API_KEY"):
        api_key = env["SERVICE_API_KEY"]

    server = data.get("server", {})
    if not isinstance(server, dict):
        raise ServerConfigError(f"{source}: server must be a table: write [server]")
    _check_table(source, "server.", server, SERVER_KEYS)

    redis = data.get("redis", {})
    if not isinstance(redis, dict):
        raise ServerConfigError(f"{source}: redis must be a table: write [redis]")
    redis = dict(redis)
    _check_table(source, "redis.", redis, REDIS_KEYS)
    if env.get("REDIS_URL"):
        redis["url"] = env["REDIS_URL"]
        if _redis_url(redis["url"]) is not None:
            raise ServerConfigError(
                f"{source}: the REDIS_URL environment variable is invalid: "
                f"{_redis_url(redis['url'])}"
            )

    aws = dict(data.get("aws", {})) if isinstance(data.get("aws", {}), dict) else None
    if aws is None:
        raise ServerConfigError(f"{source}: aws must be a table: write [aws]")
    _check_table(source, "aws.", aws, AWS_KEYS)
    _env_overrides(env, aws)
    _check_table(source, "aws.", aws, AWS_KEYS)  # the environment's values too
    aws_adapter = aws.pop("adapter", {})
    _lambda_settings(source, "aws", [("aws.", aws)])  # even if every module overrides them
    _check_adapter_table(source, "aws.", aws_adapter)
    aws_adapter = _convert_adapter_table(f"{source}: aws.", aws_adapter)

    modules = data.get("modules")
    if modules is None:
        raise ServerConfigError(
            f"{source}: modules is missing: add at least one [[modules]] entry with name, "
            "function and commands"
        )
    if (
        not isinstance(modules, list)
        or not modules
        or not all(isinstance(m, dict) for m in modules)
    ):
        raise ServerConfigError(
            f"{source}: modules is invalid: write one or more [[modules]] tables"
        )

    default_in_flight = server.get("max_in_flight", 1000)
    router_timeout = float(server.get("router_timeout", 30.0))
    specs: list[ModuleSpec] = []
    names: dict[str, str] = {}
    commands: dict[str, str] = {}
    for index, entry in enumerate(modules):
        prefix = f"modules[{index}]."
        _check_table(source, prefix, entry, MODULE_KEYS)
        name = entry.get("name")
        if name is None:
            raise ServerConfigError(f"{source}: {prefix}name is missing: every module needs one")
        if not MODULE_NAME_PATTERN.fullmatch(name):
            raise ServerConfigError(
                f"{source}: {prefix}name = {name!r} is invalid: use letters, digits, '_' or '-'"
            )
        where = f"{source}: modules[{index}] ({name})"
        if name in names:
            raise ServerConfigError(f"{where}: name {name!r} is already used by {names[name]}")
        names[name] = f"modules[{index}]"
        module_commands = tuple(entry.get("commands", ()))
        for command in module_commands:
            folded = command.casefold()
            if folded in commands:
                raise ServerConfigError(
                    f"{where}: commands: {command!r} is already answered by module "
                    f"{commands[folded]!r}; each command goes to one module"
                )
            commands[folded] = name
        if "region" not in aws and "region" not in entry:
            raise ServerConfigError(
                f'{source}: aws.region is missing: set [aws] region = "us-east-1" (or the '
                f"AWS_REGION environment variable), or region in {prefix[:-1]}"
            )
        values = dict(aws)
        values.update({k: v for k, v in entry.items() if k != "adapter"})
        adapter_table = entry.get("adapter", {})
        _check_adapter_table(source, prefix, adapter_table)
        adapter_table = _convert_adapter_table(f"{source}: {prefix}", adapter_table)
        kwargs = _adapter_kwargs(
            name, entry.get("function", name), values, {**aws_adapter, **adapter_table}
        )
        kwargs.setdefault("total_timeout", default_deadline(router_timeout))
        call_settings = _lambda_settings(
            source,
            where,
            [("aws.", aws), (prefix, entry)],
            {"total_timeout": kwargs["total_timeout"]},
        )
        for param in _SETTINGS_FIELDS & kwargs.keys():
            if kwargs[param] != "auto":
                kwargs[param] = getattr(call_settings, param)  # as validated: floats for seconds
        spec = ModuleSpec(
            name=name,
            commands=module_commands,
            max_in_flight=entry.get("max_in_flight", default_in_flight),
            adapter_kwargs=MappingProxyType(kwargs),
            where=where,
        )
        # What only the adapter judges (the function name, the region, [*.adapter] options)
        # fails here too, at start: the constructor makes no network call.
        build_adapter(spec)
        specs.append(spec)

    busy = server.get("busy_error_codes", DEFAULT_BUSY_ERROR_CODES)
    return ServerConfig(
        modules=tuple(specs),
        service_api_key=api_key,
        host=server.get("host", "0.0.0.0"),
        port=server.get("port", 8000),
        max_body_bytes=server.get("max_body_bytes", 1024 * 1024),
        shutdown_grace=float(server.get("shutdown_grace", 25.0)),
        retry_after=server.get("retry_after", 1),
        busy_error_codes=frozenset(busy),
        default_platform=server.get("default_platform", "unknown"),
        redis_url=redis.get("url"),
        redis_prefix=redis.get("prefix", "waddlebot:"),
        redis_socket_timeout=float(redis.get("socket_timeout", 1.0)),
        router_timeout=router_timeout,
        expose_error_details=server.get("expose_error_details", False),
        access_log=server.get("access_log", "plain"),
        resend_ttl=float(server.get("resend_ttl", 120.0)),
        resend_memory_bytes=server.get("resend_memory_bytes", 64 * 1024 * 1024),
        source=source,
        max_connections=server.get("max_connections", 1000),
        header_timeout=float(server.get("header_timeout", 10.0)),
        keepalive_timeout=float(server.get("keepalive_timeout", 15.0)),
        body_timeout=float(server.get("body_timeout", 30.0)),
        max_head_bytes=server.get("max_head_bytes", 32 * 1024),
        max_headers=server.get("max_headers", 32),
        max_field_size=server.get("max_field_size", 8190),
        max_args_chars=server.get("max_args_chars", 4096),
        max_auth_failures=server.get("max_auth_failures", 20),
        drain_delay=float(server.get("drain_delay", 0.0)),
    )


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ServerConfig:
    """Read and validate a TOML configuration file (see ``docs/server.md``).

    Raises:
        ServerConfigError: the file is missing, not TOML, or a key is invalid; the message
            names the file, the key and the problem.
    """
    source = str(path)
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise ServerConfigError(f"{source}: no such file: pass --config PATH") from None
    except OSError as exc:
        raise ServerConfigError(f"{source}: cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ServerConfigError(f"{source}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServerConfigError(f"{source}: is not valid TOML: {exc}") from None
    return parse_config(data, source=source, env=env)
