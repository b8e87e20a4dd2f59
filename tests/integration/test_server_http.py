"""The module server over real HTTP, its adapters against a real Lambda-API endpoint."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from module_sdk import ExecuteRequest, ExecuteResponse
from module_sdk.adapters import BaseAdapter, LambdaAdapter
from module_sdk.aws_lambda.clients import ClientPool
from module_sdk.server import ModuleServer, ServerConfig, build_adapter, parse_config
from module_sdk.testing import Reply, ScriptedLambdaServer

KEY = "test-service-key-0123456789abcdef"
AUTH = {"X-Service-Key": KEY}


def make_config(endpoint: str, server: dict[str, Any] | None = None) -> ServerConfig:
    """Two Lambda-backed modules pointing at ``endpoint``, no retries."""
    return parse_config(
        {
            "service_api_key": KEY,
            "server": server or {},
            "aws": {
                "region": "us-east-1",
                "endpoint_url": endpoint,
                "function_prefix": "waddlebot-",
                "max_retries": 0,
                "read_timeout": 10.0,
            },
            "modules": [
                {"name": "dice", "function": "dice", "commands": ["!roll", "!dice"]},
                {
                    "name": "weather",
                    "function": "weather-fn",
                    "commands": ["!weather"],
                    "required_scopes": ["read:weather"],
                },
                {
                    "name": "audit",
                    "function": "audit",
                    "commands": ["!audit"],
                    "invocation_type": "Event",
                },
            ],
        },
        source="test.toml",
        env={},
    )


def body(command: str = "!roll", args: Any = "2d6", **extra: Any) -> dict[str, Any]:
    """A router-style request body; each call is a new command (a new session_id)."""
    return {
        "command": command,
        "args": args,
        "user_id": "u1",
        "entity_id": "e1",
        "community_id": "c1",
        "session_id": f"sess-{uuid.uuid4().hex}",
        "message": f"{command} {args}",
        **extra,
    }


class Client:
    """An aiohttp session bound to one server."""

    def __init__(self, session: aiohttp.ClientSession, server: ModuleServer) -> None:
        self.session = session
        self.server = server

    async def post(
        self, path: str, payload: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        """POST JSON (or raw bytes) and decode the JSON answer."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        hdrs = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
        async with self.session.post(self.server.url + path, data=data, headers=hdrs) as r:
            return r.status, await r.json(), r

    async def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """GET and decode the JSON answer."""
        async with self.session.get(
            self.server.url + path, headers=AUTH if headers is None else headers
        ) as r:
            return r.status, await r.json()


async def start(
    scripted: ScriptedLambdaServer,
    server: dict[str, Any] | None = None,
    adapters: dict[str, BaseAdapter] | None = None,
) -> ModuleServer:
    """A started server on 127.0.0.1, port 0."""
    module_server = ModuleServer(
        make_config(scripted.url, server), host="127.0.0.1", port=0, adapters=adapters
    )
    await module_server.start()
    return module_server


@pytest.fixture
async def client(scripted: ScriptedLambdaServer) -> AsyncIterator[Client]:
    """A client for a server with the default configuration."""
    server = await start(scripted)
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(session, server)
    finally:
        await server.aclose()


class RecordingAdapter(LambdaAdapter):
    """A real LambdaAdapter that also keeps each ExecuteRequest it builds an event for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[ExecuteRequest] = []

    def _build_lambda_payload(self, request: ExecuteRequest) -> dict[str, Any]:
        self.requests.append(request)
        return super()._build_lambda_payload(request)


class ExplodingAdapter(BaseAdapter):
    """An adapter that breaks its contract by raising."""

    async def execute_async(self, request: ExecuteRequest) -> ExecuteResponse:
        raise RuntimeError("secret internal detail")


async def test_execute_by_command_answers_200_with_the_response(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """A known command runs its module's function and answers the ExecuteResponse + ids."""
    status, answer, _ = await client.post("/api/v1/execute", body(session_id="sess-1"))
    assert status == 200
    assert answer["success"] is True
    assert answer["session_id"] == "sess-1"
    assert answer["module"] == "dice"
    assert answer["error_code"] is None
    assert set(answer) >= {"success", "message", "data", "error", "targets"}
    assert answer["data"]["trigger"]["command"] == "!roll"
    assert answer["data"]["trigger"]["context_text"] == "2d6"
    assert answer["data"]["request_id"] == "sess-1"
    assert [i["function"] for i in scripted.invocations] == ["waddlebot-dice"]


async def test_answers_carry_server_timing(client: Client) -> None:
    """A module's answer says how long the module and the server itself took."""
    _, _, reply = await client.post("/api/v1/execute", body())
    timing = dict(part.strip().split(";dur=") for part in reply.headers["Server-Timing"].split(","))
    assert set(timing) == {"module", "server"}
    assert float(timing["module"]) > 0
    assert float(timing["server"]) >= 0


async def test_commands_match_case_insensitively(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """``!ROLL`` reaches the module that declared ``!roll``."""
    status, answer, _ = await client.post("/api/v1/execute", body(command="!ROLL"))
    assert (status, answer["module"]) == (200, "dice")


async def test_execute_by_module_name(client: Client, scripted: ScriptedLambdaServer) -> None:
    """``/modules/{name}/api/v1/execute`` picks the module by name whatever the command."""
    status, answer, _ = await client.post(
        "/modules/weather/api/v1/execute", body(command="forecast", args="Paris")
    )
    assert (status, answer["module"]) == (200, "weather")
    assert scripted.invocations[0]["function"] == "waddlebot-weather-fn"


async def test_unknown_module_name_is_404(client: Client) -> None:
    """An unknown module in the path is a JSON 404 listing the modules."""
    status, answer, _ = await client.post("/modules/nope/api/v1/execute", body())
    assert status == 404
    assert answer["error_code"] == "unknown_module"
    assert "dice" in answer["error"]


async def test_unknown_command_is_404(client: Client, scripted: ScriptedLambdaServer) -> None:
    """A command no module answers is a JSON 404 and no function is called."""
    sent = body(command="!nope", session_id="sess-1")
    status, answer, _ = await client.post("/api/v1/execute", sent)
    assert status == 404
    assert answer == {
        "success": False,
        "error": "no module answers the command '!nope'",
        "error_code": "unknown_command",
        "session_id": "sess-1",
    }
    assert scripted.count() == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('London "New York"', ["London", "New York"]),
        ("it's raining", ["it's", "raining"]),
        ("", []),
        (["already", "split words"], ["already", "split words"]),
        (None, []),
    ],
    ids=["quotes", "unbalanced-apostrophe", "empty", "list", "null"],
)
async def test_args_are_split_like_a_shell(
    scripted: ScriptedLambdaServer, args: Any, expected: list[str]
) -> None:
    """The router's one-string args become the ExecuteRequest's list, quotes respected."""
    config = make_config(scripted.url)
    recorder = RecordingAdapter(**config.modules[0].adapter_kwargs)
    server = ModuleServer(config, host="127.0.0.1", port=0, adapters={"dice": recorder})
    async with server, aiohttp.ClientSession() as session:
        status, _, _ = await Client(session, server).post("/api/v1/execute", body(args=args))
    assert status == 200
    assert recorder.requests[0].args == expected


async def test_request_fields_reach_the_execute_request(scripted: ScriptedLambdaServer) -> None:
    """Ids, platform, metadata and the chat message are carried into the ExecuteRequest."""
    config = make_config(scripted.url)
    recorder = RecordingAdapter(**config.modules[0].adapter_kwargs)
    server = ModuleServer(config, host="127.0.0.1", port=0, adapters={"dice": recorder})
    payload = body(platform="twitch", metadata={"user": {"username": "bob"}}, community_id=42)
    async with server, aiohttp.ClientSession() as session:
        status, answer, _ = await Client(session, server).post("/api/v1/execute", payload)
    assert status == 200
    request = recorder.requests[0]
    assert (request.user_id, request.entity_id, request.community_id) == ("u1", "e1", "42")
    assert request.platform == "twitch"
    assert request.metadata == {"user": {"username": "bob"}, "message": "!roll 2d6"}
    assert answer["data"]["user"]["username"] == "bob"


async def test_platform_defaults_when_absent(scripted: ScriptedLambdaServer) -> None:
    """Without ``platform`` the configured default_platform is used."""
    server = await start(scripted, {"default_platform": "discord"})
    try:
        async with aiohttp.ClientSession() as session:
            status, answer, _ = await Client(session, server).post("/api/v1/execute", body())
    finally:
        await server.aclose()
    assert status == 200
    assert answer["data"]["user"]["platform"] == "discord"


@pytest.mark.parametrize("headers", [{}, {"X-Service-Key": "wrong"}], ids=["missing", "wrong"])
async def test_missing_or_wrong_key_is_401_and_not_logged(
    client: Client,
    scripted: ScriptedLambdaServer,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
) -> None:
    """A missing or wrong X-Service-Key gets 401; the log names the problem, not the key."""
    with caplog.at_level(logging.DEBUG):
        status, answer, _ = await client.post("/api/v1/execute", body(), headers=headers)
    assert status == 401
    assert answer["error_code"] == "unauthorized"
    assert scripted.count() == 0
    assert "X-Service-Key" in caplog.text
    assert KEY not in caplog.text
    assert "wrong" not in caplog.text.replace("wrong X-Service-Key", "")


async def test_module_list_needs_the_key(client: Client) -> None:
    """``GET /api/v1/modules`` is behind the key too."""
    status, answer = await client.get("/api/v1/modules", headers={})
    assert (status, answer["error_code"]) == (401, "unauthorized")


async def test_health_needs_no_key(client: Client) -> None:
    """``GET /health`` answers probes without a key."""
    status, answer = await client.get("/health", headers={})
    assert status == 200
    assert answer["status"] == "healthy"
    assert set(answer["modules"]) == {"dice", "weather", "audit"}
    assert answer["modules"]["dice"]["is_healthy"] is True


async def test_insecure_no_auth_serves_without_a_key(scripted: ScriptedLambdaServer) -> None:
    """With no key configured and insecure_no_auth, requests need no header."""
    config = parse_config(
        {
            "aws": {"region": "us-east-1", "endpoint_url": scripted.url},
            "modules": [{"name": "dice", "commands": ["!roll"]}],
        },
        env={},
    )
    async with (
        ModuleServer(config, host="127.0.0.1", port=0, insecure_no_auth=True) as server,
        aiohttp.ClientSession() as session,
    ):
        status, answer, _ = await Client(session, server).post("/api/v1/execute", body(), {})
    assert (status, answer["module"]) == (200, "dice")


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'{"command": "!roll", "metadata": {"x": NaN}}', "NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ({**body(), "command": ""}, "'command' must not be empty"),
        ({k: v for k, v in body().items() if k != "session_id"}, "'session_id' is missing"),
        ({k: v for k, v in body().items() if k != "user_id"}, "'user_id' is missing"),
        ({**body(), "entity_id": ["x"]}, "'entity_id' must be a string, not list"),
        ({**body(), "args": 5}, "'args' must be a string"),
        ({**body(), "metadata": "x"}, "'metadata' must be an object"),
        ({**body(), "message": 1}, "'message' must be a string"),
        ({**body(), "platform": 3}, "'platform' must be a string"),
        ({**body(), "scopes": "all"}, "'scopes' must be a list"),
    ],
    ids=[
        "malformed",
        "not-utf8",
        "array",
        "nan",
        "deep",
        "empty-command",
        "no-session",
        "no-user",
        "bad-entity",
        "bad-args",
        "bad-metadata",
        "bad-message",
        "bad-platform",
        "bad-scopes",
    ],
)
async def test_bad_bodies_are_400_naming_the_problem(
    client: Client, scripted: ScriptedLambdaServer, payload: Any, problem: str
) -> None:
    """Malformed JSON and missing or mistyped fields get a JSON 400 saying what is wrong."""
    status, answer, _ = await client.post("/api/v1/execute", payload)
    assert status == 400
    assert answer["error_code"] == "invalid_request"
    assert problem in answer["error"]
    assert scripted.count() == 0


async def test_control_characters_in_ids_are_400(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """Ids the adapter would refuse (control characters) are a 400 naming the field."""
    status, answer, _ = await client.post("/api/v1/execute", body(user_id="bad\nid"))
    assert status == 400
    assert answer["error_code"] == "invalid_request"
    assert "field user_id=" in answer["error"]
    assert scripted.count() == 0


async def test_an_event_over_lambdas_limit_is_413(
    scripted: ScriptedLambdaServer,
) -> None:
    """A body the server accepts but over Lambda's 1 MB Event limit is a 413 too."""
    server = await start(
        scripted, {"max_body_bytes": 4 * 1024 * 1024, "max_args_chars": 2 * 1024 * 1024}
    )
    try:
        async with aiohttp.ClientSession() as session:
            big = json.dumps(body(command="!audit", args="x" * (1024 * 1024 + 10))).encode()
            async with session.post(
                server.url + "/api/v1/execute", data=io.BytesIO(big), headers=AUTH
            ) as reply:
                status, answer = reply.status, await reply.json()
    finally:
        await server.aclose()
    assert status == 413
    assert answer["error_code"] == "payload_too_large"
    assert scripted.count() == 0


async def test_body_too_large_is_413(scripted: ScriptedLambdaServer) -> None:
    """A body over max_body_bytes gets a JSON 413, with or without Content-Length."""
    server = await start(scripted, {"max_body_bytes": 2048})
    big = json.dumps(body(args="x" * 4096)).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    try:
        async with aiohttp.ClientSession() as session:
            status, answer, _ = await Client(session, server).post("/api/v1/execute", big)
            async with session.post(
                server.url + "/api/v1/execute", data=chunks(), headers=AUTH
            ) as reply:
                chunked = (reply.status, await reply.json())
    finally:
        await server.aclose()
    assert status == 413
    assert answer["error_code"] == "payload_too_large"
    assert "2,048" in answer["error"]
    assert chunked[0] == 413
    assert chunked[1]["error_code"] == "payload_too_large"
    assert scripted.count() == 0


async def test_max_in_flight_answers_429_with_retry_after(
    scripted: ScriptedLambdaServer,
) -> None:
    """Past a module's max_in_flight the server answers 429 + Retry-After at once."""
    server = await start(scripted, {"max_in_flight": 1, "retry_after": 2})
    scripted.script("waddlebot-dice", Reply.slow(0.3, Reply.ok({"success": True})))
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, server)
            first = asyncio.ensure_future(client.post("/api/v1/execute", body()))
            async with asyncio.timeout(30):
                await scripted.received()
            status, answer, reply = await client.post("/api/v1/execute", body())
            first_status = (await first)[0]
            _, health = await client.get("/health")
    finally:
        await server.aclose()
    assert status == 429
    assert reply.headers["Retry-After"] == "2"
    assert (answer["error_code"], answer["module"]) == ("busy", "dice")
    assert first_status == 200
    assert scripted.count() == 1
    assert health["modules"]["dice"]["rejected_busy"] == 1


async def test_throttled_function_answers_429(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """Lambda's own 429 (after the adapter's retries) becomes the router's 429 + Retry-After."""
    scripted.script("waddlebot-dice", Reply.aws_error(429, "TooManyRequestsException", "slow"))
    status, answer, reply = await client.post("/api/v1/execute", body(session_id="sess-1"))
    assert status == 429
    assert reply.headers["Retry-After"] == "1"
    assert (answer["success"], answer["error_code"]) == (False, "throttled")
    assert answer["session_id"] == "sess-1"


async def test_function_error_is_a_200_failure(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """A function that raises is the module's answer (200, success false), not an outage."""
    scripted.script(
        "waddlebot-dice", Reply.function_error({"errorMessage": "boom", "errorType": "ValueError"})
    )
    status, answer, _ = await client.post("/api/v1/execute", body())
    assert status == 200
    assert (answer["success"], answer["error_code"]) == (False, "function_error")
    assert "boom" in answer["error"]


async def test_event_invocation_answers_queued(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """An Event module answers as soon as Lambda queued the call."""
    status, answer, _ = await client.post("/api/v1/execute", body(command="!audit"))
    assert (status, answer["success"], answer["module"]) == (200, True, "audit")
    assert scripted.invocations[0]["invocation_type"] == "Event"


async def test_missing_scopes_are_403(client: Client, scripted: ScriptedLambdaServer) -> None:
    """When the request lists granted scopes, a module needing others is refused."""
    status, answer, _ = await client.post(
        "/api/v1/execute", body(command="!weather", scopes=["chat:read"])
    )
    assert status == 403
    assert answer["error_code"] == "missing_scopes"
    assert "read:weather" in answer["error"]
    ok, _, _ = await client.post(
        "/api/v1/execute", body(command="!weather", scopes=["read:weather"])
    )
    assert ok == 200
    assert scripted.count() == 1


async def test_health_is_503_when_a_module_is_unhealthy(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """Three failed calls make the module unhealthy and /health answer 503."""
    failure = Reply.aws_error(500, "ServiceException", "down")
    scripted.script("waddlebot-dice", failure, failure, failure)
    for _ in range(3):
        status, answer, _ = await client.post("/api/v1/execute", body())
        assert (status, answer["error_code"]) == (200, "service_error")
    status, health = await client.get("/health")
    assert status == 503
    assert health["status"] == "unhealthy"
    assert health["modules"]["dice"]["is_healthy"] is False
    assert health["modules"]["dice"]["consecutive_failures"] == 3
    assert health["modules"]["weather"]["is_healthy"] is True


async def test_module_list_describes_every_module(client: Client) -> None:
    """``GET /api/v1/modules`` gives each module's info, commands and path."""
    status, answer = await client.get("/api/v1/modules")
    assert status == 200
    by_name = {m["name"]: m for m in answer["modules"]}
    assert set(by_name) == {"dice", "weather", "audit"}
    dice = by_name["dice"]
    assert dice["commands"] == ["!roll", "!dice"]
    assert dice["function_name"] == "waddlebot-dice"
    assert dice["type"] == "lambda_adapter"
    assert dice["url_path"] == "/modules/dice/api/v1/execute"
    assert by_name["weather"]["required_scopes"] == ["read:weather"]
    assert by_name["audit"]["invocation_type"] == "Event"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/api/v1/execute", 405, "method_not_allowed"),
    ],
    ids=["unknown-route", "wrong-method"],
)
async def test_routing_errors_are_json(
    client: Client, method: str, path: str, status: int, code: str
) -> None:
    """aiohttp's own 404/405 come back as JSON errors too."""
    async with client.session.request(method, client.server.url + path, headers=AUTH) as reply:
        assert reply.status == status
        assert (await reply.json())["error_code"] == code


async def test_an_adapter_that_raises_gives_no_traceback(scripted: ScriptedLambdaServer) -> None:
    """A custom adapter raising becomes a 200 failure without internals; the log has them."""
    server = await start(scripted, adapters={"dice": ExplodingAdapter("dice")})
    try:
        async with aiohttp.ClientSession() as session:
            status, answer, _ = await Client(session, server).post("/api/v1/execute", body())
    finally:
        await server.aclose()
    assert status == 200
    assert (answer["success"], answer["error_code"]) == (False, "internal")
    assert "secret internal detail" not in json.dumps(answer)
    assert "Traceback" not in json.dumps(answer)


async def test_concurrent_requests_each_get_their_own_answer(
    scripted: ScriptedLambdaServer,
) -> None:
    """Many requests at once all succeed and each answer carries its own session."""
    server = await start(scripted)
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, server)
            results = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/execute",
                        body(command="!roll" if i % 2 else "!weather", session_id=f"s{i}"),
                    )
                    for i in range(100)
                )
            )
    finally:
        await server.aclose()
    assert [r[0] for r in results] == [200] * 100
    assert [r[1]["session_id"] for r in results] == [f"s{i}" for i in range(100)]
    assert [r[1]["data"]["request_id"] for r in results] == [f"s{i}" for i in range(100)]
    assert scripted.count("waddlebot-dice") == 50
    assert scripted.count("waddlebot-weather-fn") == 50


async def test_closing_the_server_closes_the_aws_clients(scripted: ScriptedLambdaServer) -> None:
    """Shutting down releases the adapters' shared AWS client."""
    config = make_config(scripted.url)
    pool = ClientPool()
    adapters: dict[str, BaseAdapter] = {
        spec.name: build_adapter(spec, pool=pool) for spec in config.modules
    }
    server = ModuleServer(config, host="127.0.0.1", port=0, adapters=adapters)
    async with server, aiohttp.ClientSession() as session:
        status, _, _ = await Client(session, server).post("/api/v1/execute", body())
        during = pool.open_clients()
    assert status == 200
    assert during == 1
    assert pool.open_clients() == 0


@pytest.mark.parametrize(
    ("adapter", "code"),
    [
        ({"circuit_breaker": {"consecutive_failures": 1, "open_duration": 60}}, "circuit_open"),
        ({"rate_limit": {"rate": 0.001, "burst": 1}}, "rate_limited"),
    ],
    ids=["circuit-open", "rate-limited"],
)
async def test_adapter_policies_refusing_work_answer_429(
    scripted: ScriptedLambdaServer, adapter: dict[str, Any], code: str
) -> None:
    """An open breaker or an empty rate-limit bucket becomes 429 + Retry-After."""
    config = parse_config(
        {
            "service_api_key": KEY,
            "aws": {"region": "us-east-1", "endpoint_url": scripted.url, "max_retries": 0},
            "modules": [{"name": "dice", "commands": ["!roll"], "adapter": adapter}],
        },
        env={},
    )
    scripted.script("dice", Reply.aws_error(500, "ServiceException", "down"))
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        client = Client(session, server)
        first, _, _ = await client.post("/api/v1/execute", body())
        status, answer, reply = await client.post("/api/v1/execute", body())
    assert first == 200
    assert status == 429
    assert reply.headers["Retry-After"] == "1"
    assert answer["error_code"] == code
    assert scripted.count() == 1


async def test_a_port_in_use_fails_at_start(scripted: ScriptedLambdaServer) -> None:
    """Starting on a taken port raises OSError (the CLI prints it and exits 2)."""
    first = await start(scripted)
    try:
        second = ModuleServer(make_config(scripted.url), host="127.0.0.1", port=first.port)
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        await second.aclose()
    finally:
        await first.aclose()


async def test_a_key_that_is_not_utf8_is_a_401(client: Client) -> None:
    """Raw non-UTF-8 bytes in X-Service-Key are refused like any wrong key."""
    host, port = client.server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/execute HTTP/1.1\r\nHost: x\r\nX-Service-Key: \xff\xfe\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    await writer.drain()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert b'"unauthorized"' in reply


async def test_health_hides_error_text_without_the_key(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """Unauthenticated probes see error codes, not the functions' own error text."""
    scripted.script(
        "waddlebot-dice",
        Reply.function_error({"errorMessage": "secret user input", "errorType": "ValueError"}),
    )
    await client.post("/api/v1/execute", body())
    _, anonymous = await client.get("/health", headers={})
    _, trusted = await client.get("/health")
    dice_anonymous, dice_trusted = anonymous["modules"]["dice"], trusted["modules"]["dice"]
    assert dice_anonymous["last_error_code"] == "function_error"
    assert "secret user input" not in json.dumps(anonymous)
    assert "secret user input" in dice_trusted["last_error"]


async def test_non_finite_numbers_become_null(
    client: Client, scripted: ScriptedLambdaServer
) -> None:
    """NaN/Infinity in a function's reply reach the router as null (strict JSON)."""
    scripted.script(
        "waddlebot-dice", Reply.ok(raw=b'{"success": true, "score": NaN, "max": Infinity}')
    )
    async with client.session.post(
        client.server.url + "/api/v1/execute", json=body(), headers=AUTH
    ) as reply:
        text = await reply.text()

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    answer = json.loads(text, parse_constant=refuse)
    assert answer["success"] is True
    assert answer["data"] == {"score": None, "max": None}
