"""LambdaAdapter over real HTTP: the real aiobotocore client against a scripted Lambda API.

Every scenario proves the exact number of invocations the endpoint received, so hidden
botocore retries (the original's 4 x 5 = 20 calls) would show.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from typing import Any

import pytest

from module_sdk import ExecuteRequest, ExecuteResponse, LambdaAdapter
from module_sdk.resilience.cache import ResponseCacheConfig
from module_sdk.testing import FakeClock, Reply, ScriptedLambdaServer


def request(session: str = "sess-1", **metadata: Any) -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest(
        command="!roll",
        args=["2d6"],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id=session,
        platform="twitch",
        metadata=dict(metadata),
    )


def adapter_for(
    server: ScriptedLambdaServer, function: str = "dice", **kwargs: Any
) -> LambdaAdapter:
    """An adapter pointed at the scripted server with a fake clock and seeded jitter."""
    params: dict[str, Any] = {
        "endpoint_url": server.url,
        "clock": FakeClock(),
        "rng": random.Random(0),
        "read_timeout": 5.0,
    }
    params.update(kwargs)
    return LambdaAdapter(function, "us-east-1", "dice", **params)


def sleeps(adapter: LambdaAdapter) -> list[float]:
    """The backoff sleeps the adapter's fake clock recorded."""
    clock = adapter.clock
    assert isinstance(clock, FakeClock)
    return clock.sleeps


THROTTLE = Reply.aws_error(
    429,
    "TooManyRequestsException",
    "Rate exceeded",
    retry_after=1,
    reason="ReservedFunctionConcurrentInvocationLimitExceeded",
)
SUCCESS = Reply.ok({"success": True, "message": "You rolled 7", "targets": ["twitch"]})


async def test_success_single_call(scripted: ScriptedLambdaServer) -> None:
    """A successful call is one invocation with the seed's event and a parsed reply."""
    scripted.script("dice", SUCCESS)
    async with adapter_for(scripted) as adapter:
        response = await adapter.execute_async(request())
    assert response == ExecuteResponse(
        success=True,
        message="You rolled 7",
        data={"targets": ["twitch"]},
        targets=[{"type": "twitch"}],
    )
    assert scripted.count() == 1
    sent = scripted.invocations[0]
    event = json.loads(sent["body"])
    assert set(event) == {"community", "trigger", "user", "entity", "request_id", "timestamp"}
    assert event["request_id"] == "sess-1"
    assert event["timestamp"].endswith("Z")
    assert sent["invocation_type"] == "RequestResponse"
    assert adapter.get_health_status()["total_requests"] == 1


async def test_throttle_then_success_honours_retry_after(scripted: ScriptedLambdaServer) -> None:
    """429s are retried after at least Retry-After; retries reuse one request_id and timestamp."""
    scripted.script("dice", THROTTLE, THROTTLE, SUCCESS)
    async with adapter_for(scripted) as adapter:
        response = await adapter.execute_async(request())
        assert response.success is True
        assert scripted.count("dice") == 3
        assert all(delay >= 1.0 for delay in sleeps(adapter))
        assert len(sleeps(adapter)) == 2
    bodies = {inv["body"] for inv in scripted.invocations}
    assert len(bodies) == 1, "every attempt must send the identical event"


@pytest.mark.parametrize(
    ("reply", "error_code"),
    [
        (THROTTLE, "throttled"),
        (Reply.aws_error(500, "ServiceException", "boom"), "service_error"),
        (Reply.aws_error(502, "ResourceNotReadyException"), "service_error"),
        (Reply.aws_error(502, "EC2UnexpectedException"), "service_error"),
        (Reply.aws_error(503, "ServiceUnavailableException"), "service_error"),
        (Reply(504, b"gateway timeout"), "service_error"),
        (Reply.drop_connection(), "connection"),
    ],
    ids=["429", "500", "502-not-ready", "502-ec2", "503", "504", "dropped"],
)
async def test_transient_errors_retry_exactly_max_retries(
    scripted: ScriptedLambdaServer, reply: Reply, error_code: str
) -> None:
    """Transient failures get 1 + max_retries invocations, no more (botocore retries are off)."""
    scripted.script("dice", *([reply] * 10))
    async with adapter_for(scripted, max_retries=3) as adapter:
        response = await adapter.execute_async(request())
    assert response.success is False
    assert response.error_code == error_code
    assert scripted.count("dice") == 4
    assert response.diagnostics is not None and response.diagnostics.attempts == 4
    assert response.data is None


@pytest.mark.parametrize(
    ("reply", "error_code"),
    [
        (Reply.aws_error(404, "ResourceNotFoundException", "Function not found"), "not_found"),
        (Reply.aws_error(403, "AccessDeniedException", "no"), "access_denied"),
        (Reply.aws_error(403, "UnrecognizedClientException", "bad key"), "access_denied"),
        (Reply.aws_error(400, "InvalidRequestContentException", "bad json"), "invalid_request"),
        (Reply.aws_error(413, "RequestTooLargeException", "too big"), "payload_too_large"),
        (Reply.aws_error(502, "KMSAccessDeniedException", "kms"), "configuration"),
        (
            Reply.function_error(
                {
                    "errorMessage": "Rate exceeded ThrottlingException",
                    "errorType": "ThrottlingException",
                }
            ),
            "function_error",
        ),
        (Reply.ok({"success": False, "error": "unknown city"}), "module_error"),
        (Reply.ok(raw=b"<html>oops</html>"), "invalid_response"),
    ],
    ids=["404", "403", "403-key", "400", "413", "kms", "function-error", "business", "garbage"],
)
async def test_permanent_failures_are_not_retried(
    scripted: ScriptedLambdaServer, reply: Reply, error_code: str
) -> None:
    """Permanent errors, function errors and business answers make exactly one call."""
    scripted.script("dice", reply, SUCCESS)
    async with adapter_for(scripted) as adapter:
        response = await adapter.execute_async(request())
    assert (response.success, response.error_code) == (False, error_code)
    assert response.error
    assert scripted.count("dice") == 1
    assert sleeps(adapter) == []


async def test_read_timeout_is_retried_with_same_request_id(
    scripted: ScriptedLambdaServer,
) -> None:
    """A reply slower than read_timeout is retried (same request_id) and then succeeds."""
    scripted.script("dice", Reply.slow(1.0, SUCCESS), SUCCESS)
    async with adapter_for(scripted, read_timeout=0.2) as adapter:
        response = await adapter.execute_async(request("sess-timeout"))
    assert response.success is True
    assert scripted.count("dice") == 2
    ids = {json.loads(inv["body"])["request_id"] for inv in scripted.invocations}
    assert ids == {"sess-timeout"}


async def test_read_timeout_not_retried_when_disabled(scripted: ScriptedLambdaServer) -> None:
    """retry_on_timeout=False protects non-idempotent functions from a second run."""
    scripted.script("dice", Reply.slow(1.0, SUCCESS), SUCCESS)
    async with adapter_for(scripted, read_timeout=0.2, retry_on_timeout=False) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "timeout"
    assert scripted.count("dice") == 1


async def test_max_retries_zero(scripted: ScriptedLambdaServer) -> None:
    """max_retries=0 means one attempt."""
    scripted.script("dice", THROTTLE, SUCCESS)
    async with adapter_for(scripted, max_retries=0) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "throttled"
    assert scripted.count("dice") == 1


async def test_total_timeout_bounds_attempts_and_sleeps(scripted: ScriptedLambdaServer) -> None:
    """A sleep that would cross total_timeout ends the call with deadline_exceeded."""
    scripted.script(
        "dice", *([Reply.aws_error(429, "TooManyRequestsException", retry_after=5)] * 5)
    )
    async with adapter_for(scripted, total_timeout=8.0, max_retry_delay=10.0) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "deadline_exceeded"
    assert "total_timeout" in (response.error or "")
    assert scripted.count("dice") == 2  # 0 s, then 5 s; a third attempt would start at 10 s
    assert sleeps(adapter) == [5.0]


async def test_backoff_is_jittered_under_the_seed_cap(scripted: ScriptedLambdaServer) -> None:
    """Delays are uniform draws under min(initial * 2**k, max) (exact with a seeded RNG)."""
    error = Reply.aws_error(500, "ServiceException")
    scripted.script("dice", error, error, error, error)
    async with adapter_for(
        scripted, initial_retry_delay=0.5, max_retry_delay=1.5, rng=random.Random(3)
    ) as adapter:
        await adapter.execute_async(request())
    expected = random.Random(3)
    assert sleeps(adapter) == [expected.uniform(0, cap) for cap in (0.5, 1.0, 1.5)]


async def test_arn_region_and_qualifier_reach_the_endpoint(scripted: ScriptedLambdaServer) -> None:
    """The ARN's region signs the call; qualifier and name are what Lambda receives."""
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:dice"
    scripted.script(arn, SUCCESS)
    async with LambdaAdapter(
        arn + ":prod",
        "us-east-1",
        "dice",
        function_prefix="waddlebot-",
        endpoint_url=scripted.url,
    ) as adapter:
        response = await adapter.execute_async(request())
    assert response.success, response.error
    sent = scripted.invocations[0]
    assert sent["function"] == arn
    assert sent["qualifier"] == "prod"
    assert "/eu-west-1/lambda/aws4_request" in sent["authorization"]


async def test_prefix_and_name_qualifier(scripted: ScriptedLambdaServer) -> None:
    """A prefixed bare name with a qualifier goes to waddlebot-dice?Qualifier=7."""
    scripted.script("waddlebot-dice", SUCCESS)
    async with adapter_for(scripted, "dice:7", function_prefix="waddlebot-") as adapter:
        assert (await adapter.execute_async(request())).success
    assert (scripted.invocations[0]["function"], scripted.invocations[0]["qualifier"]) == (
        "waddlebot-dice",
        "7",
    )
    assert "/us-east-1/lambda/" in scripted.invocations[0]["authorization"]


async def test_event_invocation(scripted: ScriptedLambdaServer) -> None:
    """Event calls return 'queued' at once."""
    async with adapter_for(scripted, invocation_type="Event") as adapter:
        response = await adapter.execute_async(request())
    assert (response.success, response.message) == (True, "Lambda function queued")
    assert scripted.invocations[0]["invocation_type"] == "Event"


async def test_dry_run(scripted: ScriptedLambdaServer) -> None:
    """DryRun succeeds when the call is allowed and fails when it is not."""
    scripted.script("dice", Reply(204), Reply.aws_error(403, "AccessDeniedException"))
    async with adapter_for(scripted, invocation_type="DryRun") as adapter:
        allowed = await adapter.execute_async(request())
        denied = await adapter.execute_async(request())
    assert allowed.success is True
    assert denied.error_code == "access_denied"


async def test_log_tail(scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture) -> None:
    """log_type=Tail sends the header and keeps the decoded tail in diagnostics (DEBUG log)."""
    scripted.script("dice", Reply.ok({"success": True}, log_tail="START\nrolling\nEND\n"))
    with caplog.at_level(logging.DEBUG, logger="module_sdk"):
        async with adapter_for(scripted, log_type="Tail") as adapter:
            response = await adapter.execute_async(request())
    assert scripted.invocations[0]["log_type"] == "Tail"
    assert response.data == {}
    assert response.diagnostics is not None
    assert response.diagnostics.log_tail == "START\nrolling\nEND\n"
    assert "rolling" not in repr(response)
    assert "rolling" in caplog.text


async def test_diagnostics_never_mix_with_the_functions_keys(
    scripted: ScriptedLambdaServer,
) -> None:
    """Over HTTP with a log tail and the cache: the function's own ``log_tail`` and
    ``attempts`` keys reach the caller unchanged, first and from the cache."""
    own = {"log_tail": "mine", "attempts": 9}
    scripted.script("dice", Reply.ok({"success": True, **own}, log_tail="START\nEND\n"))
    async with adapter_for(
        scripted, log_type="Tail", cache=ResponseCacheConfig(commands={"!roll": 60})
    ) as adapter:
        first = await adapter.execute_async(request())
        hit = await adapter.execute_async(request())
    assert scripted.count("dice") == 1
    assert first.data == hit.data == own
    assert first.diagnostics is not None and hit.diagnostics is not None
    assert (first.diagnostics.log_tail, first.diagnostics.attempts) == ("START\nEND\n", 1)
    assert (first.diagnostics.status_code, first.diagnostics.cache_hit) == (200, False)
    assert (hit.diagnostics.log_tail, hit.diagnostics.attempts, hit.diagnostics.cache_hit) == (
        None,
        0,
        True,
    )
    assert adapter.get_health_status()["total_requests"] == 1


async def test_bad_requests_make_no_call(scripted: ScriptedLambdaServer) -> None:
    """Non-JSON metadata, bad types and oversized events fail fast with no network call."""
    async with adapter_for(scripted) as adapter:
        not_json = await adapter.execute_async(request(blob=object()))
        wrong = await adapter.execute_async(
            ExecuteRequest("!x", "2d6", "u", "e", "c", "s", "p")  # type: ignore[arg-type]
        )
        huge = await adapter.execute_async(request(event_data="x" * (6 * 1024 * 1024)))
        not_a_request = await adapter.execute_async("!roll 2d6")  # type: ignore[arg-type]
    async with adapter_for(scripted, invocation_type="Event") as event_adapter:
        event_huge = await event_adapter.execute_async(request(event_data="x" * (1024 * 1024)))
    assert not_json.error_code == "invalid_request"
    assert wrong.error_code == "invalid_request" and "args" in (wrong.error or "")
    assert huge.error_code == "payload_too_large"
    assert event_huge.error_code == "payload_too_large"
    assert not_a_request.error_code == "invalid_request"
    assert scripted.count() == 0
    assert adapter.get_health_status()["total_requests"] == 0


async def test_health_counts_path_failures_only(scripted: ScriptedLambdaServer) -> None:
    """Function errors count as failures; success:false business answers do not."""
    boom = Reply.function_error({"errorMessage": "x", "errorType": "ValueError"})
    business = Reply.ok({"success": False, "error": "unknown city"})
    scripted.script("dice", boom, boom, business, boom, boom, boom)
    async with adapter_for(scripted) as adapter:
        for _ in range(3):
            await adapter.execute_async(request())
        assert adapter.is_healthy()
        assert adapter.health.consecutive_failures == 0
        for _ in range(3):
            await adapter.execute_async(request())
        assert not adapter.is_healthy()
        status = adapter.get_health_status()
    assert status["total_requests"] == 6
    assert status["total_failures"] == 5
    assert status["last_failure"] is not None and "+00:00" in status["last_failure"]


async def test_cancellation_cancels_the_call(scripted: ScriptedLambdaServer) -> None:
    """Cancelling execute_async propagates CancelledError and frees the connection."""
    scripted.script("dice", Reply.slow(30.0, SUCCESS), SUCCESS)
    async with adapter_for(scripted) as adapter:
        task = asyncio.create_task(adapter.execute_async(request()))
        async with asyncio.timeout(30):
            await scripted.received()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await adapter.execute_async(request())).success
    assert adapter.get_health_status()["total_requests"] == 1


async def test_clients_are_shared_and_released(scripted: ScriptedLambdaServer) -> None:
    """Adapters with equal settings share one client; the last aclose() closes it."""
    from module_sdk.aws_lambda.clients import ClientPool

    pool = ClientPool()
    adapters = [
        LambdaAdapter(f"fn-{i}", "us-east-1", "m", endpoint_url=scripted.url, pool=pool)
        for i in range(20)
    ]
    other = LambdaAdapter("fn", "us-west-2", "m", endpoint_url=scripted.url, pool=pool)
    results = await asyncio.gather(*(a.execute_async(request()) for a in [*adapters, other]))
    assert all(r.success for r in results)
    assert pool.open_clients() == 2
    for adapter in adapters[:-1]:
        await adapter.aclose()
    assert pool.open_clients() == 2
    await adapters[-1].aclose()
    await other.aclose()
    assert pool.open_clients() == 0


async def test_explicit_credentials_are_used(scripted: ScriptedLambdaServer) -> None:
    """Parameters win over the environment's credentials."""
    async with adapter_for(
        scripted, aws_access_key_id="AKIDPARAMETER0000000", aws_secret_access_key="s3cr3t"
    ) as adapter:
        await adapter.execute_async(request())
    assert "Credential=AKIDPARAMETER0000000/" in scripted.invocations[0]["authorization"]


async def test_missing_credentials_fail_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere, an endpoint that is not loopback: error_code credentials,
    no retry, nothing sent (192.0.2.1 is a documentation address nobody answers on)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clock = FakeClock()
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", endpoint_url="http://192.0.2.1:9", clock=clock
    ) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "credentials"
    assert clock.sleeps == []


async def test_injected_client_is_used_and_not_closed(scripted: ScriptedLambdaServer) -> None:
    """A caller's own aiobotocore client is used as-is and left open."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "lambda", region_name="us-east-1", endpoint_url=scripted.url
    ) as client:
        adapter = LambdaAdapter("dice", "us-east-1", "dice", client=client)
        assert (await adapter.execute_async(request())).success
        await adapter.aclose()
        again = await client.invoke(FunctionName="dice", Payload=b"{}")
        assert again["StatusCode"] == 200
    assert scripted.count() == 2


async def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port is a connection error after the retries."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        endpoint_url=f"http://127.0.0.1:{port}",
        max_retries=1,
        clock=FakeClock(),
    )
    async with adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "connection"
    assert response.data is None
    assert response.diagnostics is not None and response.diagnostics.attempts == 2


async def test_secret_never_logged(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The secret key is in no log line, even at DEBUG through botocore."""
    secret = "canary-secret-key-0123456789"
    scripted.script("dice", THROTTLE, SUCCESS)
    with caplog.at_level(logging.DEBUG):
        async with adapter_for(
            scripted, aws_access_key_id="AKIDLOGTEST000000000", aws_secret_access_key=secret
        ) as adapter:
            await adapter.execute_async(request())
    assert secret not in caplog.text
    assert "Retrying in" in caplog.text


class Customized(LambdaAdapter):
    """The seed's extension points."""

    def _build_lambda_payload(self, request: ExecuteRequest) -> dict[str, Any]:
        payload = super()._build_lambda_payload(request)
        payload["custom_field"] = "custom_value"
        return payload

    def _parse_lambda_response(self, response_data: Any) -> ExecuteResponse:
        response = super()._parse_lambda_response(response_data)
        response.message = (response.message or "").upper()
        return response


async def test_extension_points(scripted: ScriptedLambdaServer) -> None:
    """Overriding the payload builder and parser changes what is sent and returned."""
    scripted.script("dice", Reply.ok({"success": True, "message": "quiet"}))
    async with Customized("dice", "us-east-1", "dice", endpoint_url=scripted.url) as adapter:
        response = await adapter.execute_async(request())
    assert json.loads(scripted.invocations[0]["body"])["custom_field"] == "custom_value"
    assert response.message == "QUIET"


def test_sync_execute_outside_a_loop() -> None:
    """execute() works from synchronous code (its own loop, clients closed after)."""

    async def serve_and_call() -> tuple[ExecuteResponse, int]:
        async with ScriptedLambdaServer() as server:
            adapter = LambdaAdapter("dice", "us-east-1", "dice", endpoint_url=server.url)
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(None, adapter.execute, request())
            return response, server.count()

    response, count = asyncio.run(serve_and_call())
    assert response.success and count == 1


async def test_sync_execute_inside_a_loop_explains() -> None:
    """execute() inside a running loop raises a clear error pointing to execute_async."""
    adapter = LambdaAdapter("dice", "us-east-1", "dice")
    with pytest.raises(RuntimeError, match="execute_async"):
        adapter.execute(request())


async def test_client_context_header(scripted: ScriptedLambdaServer) -> None:
    """A ClientContext set by an observer reaches the endpoint on every attempt."""

    class Ctx:
        def on_start(self, invocation: Any) -> None:
            invocation.client_context = base64.b64encode(b'{"custom":{"k":"v"}}').decode()

        def on_attempt(self, invocation: Any) -> None:
            pass

        def on_retry(self, invocation: Any, error: Any, delay: float) -> None:
            pass

        def on_finish(self, invocation: Any, response: Any, duration: float) -> None:
            pass

    scripted.script("dice", THROTTLE, SUCCESS)
    async with adapter_for(scripted, observers=[Ctx()]) as adapter:
        await adapter.execute_async(request())
    contexts = [inv["client_context"] for inv in scripted.invocations]
    assert len(contexts) == 2
    assert all(base64.b64decode(c) == b'{"custom":{"k":"v"}}' for c in contexts)


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 6 * 1024 * 1024 - 1024], ids=["2MB", "6MB"])
async def test_large_events_are_sent_intact(scripted: ScriptedLambdaServer, size: int) -> None:
    """Events up to the 6 MB limit are streamed (no raw-bytes warning) and arrive whole."""
    scripted.script("dice", Reply.ok({"success": True}))
    big = request(event_data="x" * (size - 600))
    async with adapter_for(scripted) as adapter:
        response = await adapter.execute_async(big)
    assert response.success, response.error
    body = scripted.invocations[0]["body"]
    assert json.loads(body)["trigger"]["event_data"] == "x" * (size - 600)
