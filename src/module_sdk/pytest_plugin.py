"""pytest fixtures for WaddleBot modules (loaded through the ``pytest11`` entry point).

Installing the SDK makes these fixtures available to every test, with nothing to import:

- ``waddlebot_call``: call a handler in-process with the event the adapter would send:
  ``waddlebot_call(handler, "!weather", '"New York"')`` returns the handler's reply;
  ``.response(...)`` reads it the way the adapter does (an ``ExecuteResponse``);
  ``.event(...)`` is the event alone.
- ``waddlebot_runtime``: the local Lambda runtime serving the functions folder on a free port
  (``.url``, ``.invoke(name, event)``, ``.runtime``), stopped after the test.
- ``waddlebot_adapter``: ``waddlebot_adapter("quote")`` is a LambdaAdapter pointed at that
  runtime; ``.execute("!quote", "args")`` sends a command through it.
- ``waddlebot_server``: the module server in front of the runtime, configured from the
  project's ``modules.toml``; ``.execute("!quote", "args")`` posts what WaddleBot's router
  posts (real HTTP) and returns the JSON answer.

The functions folder is ``functions/`` under pytest's root folder (the ini option
``waddlebot_functions`` names another, relative to it; overriding the
``waddlebot_functions_dir`` fixture works too); ``modules.toml`` likewise
(``waddlebot_modules``, ``waddlebot_modules_file``). The runtime, adapters and server run on
an event loop in a background thread, so the fixtures work in plain and in async tests alike.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import secrets
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from module_sdk._models import ExecuteRequest, ExecuteResponse
from module_sdk.aws_lambda.args import split_args
from module_sdk.aws_lambda.payload import build_payload

# pytest loads this plugin in every project of an environment where the SDK is installed:
# the AWS client, aiohttp and the servers are imported by the fixtures that use them.
if TYPE_CHECKING:
    from module_sdk.adapters import LambdaAdapter
    from module_sdk.local import LocalLambdaRuntime
    from module_sdk.server import ModuleServer

__all__ = [
    "AdapterFactory",
    "HandlerCall",
    "ModuleAdapter",
    "RouterClient",
    "RuntimeHandle",
    "command_request",
]

T = TypeVar("T")

REGION = "us-east-1"
# botocore signs every call; the local runtime checks no signature.
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
CALL_TIMEOUT = 120.0
"""Seconds a fixture waits for the background loop before failing the test."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ini options naming the functions folder and the modules file."""
    parser.addini(
        "waddlebot_functions",
        "the functions folder served by the waddlebot_runtime fixture (relative to rootdir)",
        default="functions",
    )
    parser.addini(
        "waddlebot_modules",
        "the modules.toml the waddlebot_server fixture serves (relative to rootdir)",
        default="modules.toml",
    )


_session_ids = itertools.count(1)


def command_request(
    command: str,
    args: str | Sequence[str] = "",
    *,
    user_id: str = "viewer-1",
    entity_id: str = "channel-1",
    community_id: str = "community-1",
    session_id: str | None = None,
    platform: str = "twitch",
    metadata: Mapping[str, Any] | None = None,
) -> ExecuteRequest:
    """An ExecuteRequest as the module server builds it (a string ``args`` is split like it).

    ``session_id`` defaults to a new router-style id (``sess_`` + 32 hex digits).
    """
    words = split_args(args) if isinstance(args, str) else list(args)
    return ExecuteRequest(
        command=command,
        args=words,
        user_id=user_id,
        entity_id=entity_id,
        community_id=community_id,
        session_id=session_id or f"sess_{next(_session_ids):032x}",
        platform=platform,
        metadata=dict(metadata or {}),
    )


# -- in-process calls -----------------------------------------------------------------------


class HandlerCall:
    """Calls a handler in-process with the event the adapter would build (the fixture).

    ``call(handler, "!roll", "2d6", user_id=...)`` returns what the handler returned (an
    ``async def`` handler is run to completion); an exception propagates, so pytest shows it.
    """

    def event(self, command: str, args: str | Sequence[str] = "", **fields: Any) -> dict[str, Any]:
        """The Lambda event for a command (keyword arguments as :func:`command_request`)."""
        return build_payload(command_request(command, args, **fields), datetime.now(UTC))

    def __call__(
        self,
        handler: Callable[[Any, Any], Any],
        command: str,
        args: str | Sequence[str] = "",
        **fields: Any,
    ) -> Any:
        from module_sdk.testing import LambdaContext

        event = self.event(command, args, **fields)
        result = handler(event, LambdaContext("module", event["request_id"]))
        if inspect.isawaitable(result):
            result = _run_apart(result)
        # What leaves a real function is JSON: a reply that does not survive that fails here.
        return json.loads(json.dumps(result))

    def response(
        self,
        handler: Callable[[Any, Any], Any],
        command: str,
        args: str | Sequence[str] = "",
        **fields: Any,
    ) -> ExecuteResponse:
        """The handler's reply read the way the adapter reads it."""
        from module_sdk.aws_lambda.response import parse_reply

        return parse_reply(self(handler, command, args, **fields))


def _run_apart(awaitable: Any) -> Any:
    """Run an awaitable to completion on a loop of its own (works inside async tests too)."""

    async def wrap() -> Any:
        return await awaitable

    loop = _Background()
    try:
        return loop.run(wrap())
    finally:
        loop.close()


# -- the background loop --------------------------------------------------------------------


class _Background:
    """An event loop in a daemon thread; ``run`` waits for a coroutine from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="waddlebot-fixtures", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            # Wind down as asyncio.run does, so that closed transports (the runtime's worker
            # pipes) finish closing here rather than warning when garbage-collected.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT)


@pytest.fixture
def waddlebot_call() -> HandlerCall:
    """Call a handler in-process: ``waddlebot_call(handler, "!roll", "2d6")``."""
    return HandlerCall()


@pytest.fixture
def _waddlebot_loop() -> Iterator[_Background]:
    background = _Background()
    try:
        yield background
    finally:
        background.close()


# -- the local runtime ----------------------------------------------------------------------


def _ini_path(config: pytest.Config, name: str) -> Path:
    value = str(config.getini(name))
    path = Path(value)
    return path if path.is_absolute() else Path(config.rootpath) / path


@pytest.fixture
def waddlebot_functions_dir(pytestconfig: pytest.Config) -> Path:
    """The functions folder: ``functions/`` under the root folder (ini: waddlebot_functions)."""
    return _ini_path(pytestconfig, "waddlebot_functions")


@pytest.fixture
def waddlebot_modules_file(pytestconfig: pytest.Config) -> Path:
    """The modules file: ``modules.toml`` under the root folder (ini: waddlebot_modules)."""
    return _ini_path(pytestconfig, "waddlebot_modules")


# The runtime refuses calls without a SigV4-shaped Authorization header (web pages cannot send
# one); it checks the shape, not the signature, so this local client sends a placeholder.
_SIGNED_SHAPE = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=LOCAL/20260101/us-east-1/lambda/"
    "aws4_request, SignedHeaders=host, Signature=" + "0" * 64
}


class RuntimeHandle:
    """The local runtime of the ``waddlebot_runtime`` fixture (running in the background)."""

    def __init__(self, runtime: LocalLambdaRuntime, loop: _Background) -> None:
        self.runtime = runtime
        self.url = runtime.url
        self._loop = loop

    def invoke(self, function: str, event: Mapping[str, Any]) -> Any:
        """Invoke a function over the Lambda API (real HTTP) and return its decoded reply."""
        request = urllib.request.Request(  # noqa: S310 (the runtime's own http:// URL)
            f"{self.url}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(event).encode(),
            method="POST",
            headers=_SIGNED_SHAPE,
        )
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as answer:  # noqa: S310
            return json.loads(answer.read() or b"null")


@pytest.fixture
def waddlebot_function_environment() -> dict[str, str]:
    """Variables every function gets in the ``waddlebot_runtime`` (none by default).

    Functions never inherit the test process's environment (nor does Lambda give them the
    caller's); override this fixture to point them at a local AWS endpoint, for example.
    """
    return {}


@pytest.fixture
def waddlebot_runtime(
    waddlebot_functions_dir: Path,
    waddlebot_function_environment: dict[str, str],
    _waddlebot_loop: _Background,
) -> Iterator[RuntimeHandle]:
    """The local Lambda runtime serving the functions folder on a free port."""
    if not waddlebot_functions_dir.is_dir():
        pytest.fail(
            f"no functions folder at {waddlebot_functions_dir}: create it, set the ini option "
            "waddlebot_functions, or override the waddlebot_functions_dir fixture",
            pytrace=False,
        )
    from module_sdk.local import LocalLambdaRuntime

    runtime = LocalLambdaRuntime(
        waddlebot_functions_dir, port=0, environment=waddlebot_function_environment
    )
    _waddlebot_loop.run(runtime.start())
    try:
        yield RuntimeHandle(runtime, _waddlebot_loop)
    finally:
        _waddlebot_loop.run(runtime.aclose())


# -- adapters -------------------------------------------------------------------------------


class ModuleAdapter:
    """A LambdaAdapter against the test's local runtime (``.adapter``), driven from the test."""

    def __init__(self, adapter: LambdaAdapter, loop: _Background) -> None:
        self.adapter = adapter
        self._loop = loop

    def execute(
        self, command: str, args: str | Sequence[str] = "", **fields: Any
    ) -> ExecuteResponse:
        """Send a command (keyword arguments as :func:`command_request`); the response."""
        request = command_request(command, args, **fields)
        return self._loop.run(self.adapter.execute_async(request))


class AdapterFactory:
    """``waddlebot_adapter("quote", **LambdaAdapter options)`` -> a :class:`ModuleAdapter`."""

    def __init__(self, runtime: RuntimeHandle, loop: _Background) -> None:
        self._runtime = runtime
        self._loop = loop
        self.adapters: list[LambdaAdapter] = []

    def __call__(
        self, function: str, *, module_name: str | None = None, **options: Any
    ) -> ModuleAdapter:
        from module_sdk.adapters import LambdaAdapter

        settings: dict[str, Any] = {"max_retries": 0, **LOCAL_CREDENTIALS, **options}
        settings["endpoint_url"] = self._runtime.url
        name = module_name or function.partition(":")[0]
        adapter = LambdaAdapter(function, REGION, name, **settings)
        self.adapters.append(adapter)
        return ModuleAdapter(adapter, self._loop)

    async def aclose(self) -> None:
        for adapter in self.adapters:
            await adapter.aclose()


@pytest.fixture
def waddlebot_adapter(
    waddlebot_runtime: RuntimeHandle, _waddlebot_loop: _Background
) -> Iterator[AdapterFactory]:
    """Adapters pointed at the local runtime: ``waddlebot_adapter("quote").execute("!quote")``."""
    factory = AdapterFactory(waddlebot_runtime, _waddlebot_loop)
    try:
        yield factory
    finally:
        _waddlebot_loop.run(factory.aclose())


# -- the module server ----------------------------------------------------------------------


class RouterClient:
    """Posts to the ``waddlebot_server`` fixture's module server the way the router does."""

    def __init__(self, server: ModuleServer, service_key: str) -> None:
        self.server = server
        self.url = server.url
        self.service_key = service_key

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST JSON with the service key; ``(status, decoded answer)``, whatever the status."""
        request = urllib.request.Request(  # noqa: S310 (the server's own http:// URL)
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Service-Key": self.service_key},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as answer:  # noqa: S310
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")

    def execute(
        self,
        command: str,
        args: str = "",
        *,
        user_id: str = "viewer-1",
        entity_id: str = "channel-1",
        community_id: int = 1,
        session_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a command with the body the router builds; the module's JSON answer.

        The router's seven fields: ``command``, ``args`` (one string), ``user_id``,
        ``entity_id``, ``community_id`` (an int), ``session_id`` (default: a new
        ``sess_`` id) and ``message``. ``extra`` adds fields the router never sends
        (``platform``, ``metadata``). Fails the test on any status but 200 (:meth:`post`
        checks those).
        """
        body = {
            "command": command,
            "args": args,
            "user_id": user_id,
            "entity_id": entity_id,
            "community_id": community_id,
            "session_id": session_id or f"sess_{next(_session_ids):032x}",
            "message": f"{command} {args}" if args else command,
            **extra,
        }
        status, answer = self.post("/api/v1/execute", body)
        if status != 200:
            pytest.fail(f"the module server answered {status}: {answer}", pytrace=False)
        assert isinstance(answer, dict)
        return answer


def _modules_table(modules_file: Path, functions_dir: Path) -> dict[str, Any]:
    if modules_file.is_file():
        with modules_file.open("rb") as file:
            return tomllib.load(file)
    # No modules file: one module per function, answering "!<name>".
    names = sorted(p.stem for p in functions_dir.glob("*.py") if not p.name.startswith("_"))
    return {"modules": [{"name": n, "commands": [f"!{n}"]} for n in names]}


@pytest.fixture
def waddlebot_server(
    waddlebot_runtime: RuntimeHandle,
    waddlebot_modules_file: Path,
    waddlebot_functions_dir: Path,
    _waddlebot_loop: _Background,
) -> Iterator[RouterClient]:
    """The module server in front of the local runtime, configured from ``modules.toml``.

    The file's ``[aws]`` settings are kept except where the test needs its own: the endpoint
    is the local runtime, the function prefix is empty (local functions are named after
    their files), placeholder credentials, and a fresh service key.
    """
    from module_sdk.server import ModuleServer, parse_config

    data = _modules_table(waddlebot_modules_file, waddlebot_functions_dir)
    aws = dict(data.get("aws", {}))
    aws.setdefault("region", REGION)
    if "profile" not in aws:
        for key, value in LOCAL_CREDENTIALS.items():
            aws.setdefault(key, value)
    data = {**data, "aws": aws}
    key = secrets.token_hex(16)
    env = {
        "AWS_ENDPOINT_URL_LAMBDA": waddlebot_runtime.url,
        "LAMBDA_FUNCTION_PREFIX": "",
        "SERVICE_API_KEY": key,
    }
    config = parse_config(data, source=str(waddlebot_modules_file), env=env)
    server = ModuleServer(config, host="127.0.0.1", port=0, metrics=False)
    _waddlebot_loop.run(server.start())
    try:
        yield RouterClient(server, key)
    finally:
        _waddlebot_loop.run(server.aclose())
