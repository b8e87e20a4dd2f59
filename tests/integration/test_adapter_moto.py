"""LambdaAdapter against moto's Lambda server (real aiobotocore client over HTTP)."""

from __future__ import annotations

import json
from typing import Any

from module_sdk import ExecuteRequest, LambdaAdapter
from support.moto_lambda import MotoLambda


def request(session: str = "moto-1") -> ExecuteRequest:
    """A chat command with metadata."""
    return ExecuteRequest(
        command="!8ball",
        args=["will", "it", "rain?"],
        user_id="u-9",
        entity_id="e-9",
        community_id="c-9",
        session_id=session,
        platform="discord",
        metadata={"user": {"username": "pingu"}},
    )


def adapter(moto_lambda: MotoLambda, function: str, **kwargs: Any) -> LambdaAdapter:
    """An adapter pointed at moto."""
    return LambdaAdapter(function, "us-east-1", "eightball", endpoint_url=moto_lambda.url, **kwargs)


async def test_queued_result_is_parsed(moto_lambda: MotoLambda) -> None:
    """A handler's reply served by moto is normalized like the seed says."""
    moto_lambda.create_function("waddlebot-eightball")
    moto_lambda.queue_results(
        {"success": True, "message": "Outlook good", "targets": "discord", "response_type": "text"}
    )
    async with adapter(moto_lambda, "eightball", function_prefix="waddlebot-") as a:
        response = await a.execute_async(request())
    assert response.success is True
    assert response.message == "Outlook good"
    assert response.targets == [{"type": "discord"}]
    assert response.data == {"targets": "discord", "response_type": "text"}


async def test_api_gateway_result(moto_lambda: MotoLambda) -> None:
    """An API-Gateway-style reply from moto is unwrapped."""
    moto_lambda.create_function("apigw")
    moto_lambda.queue_results(
        {"statusCode": 200, "body": json.dumps({"success": True, "message": "wrapped"})}
    )
    async with adapter(moto_lambda, "apigw") as a:
        response = await a.execute_async(request())
    assert (response.success, response.message) == (True, "wrapped")


async def test_echo_carries_the_event(moto_lambda: MotoLambda) -> None:
    """Without a queued result moto echoes the event: it arrived intact."""
    moto_lambda.create_function("echo")
    async with adapter(moto_lambda, "echo") as a:
        response = await a.execute_async(request("moto-echo"))
    assert response.success is True
    assert response.data is not None
    assert response.data["request_id"] == "moto-echo"
    assert response.data["user"] == {
        "id": "u-9",
        "username": "pingu",
        "platform": "discord",
        "platform_user_id": "u-9",
    }
    assert response.data["trigger"]["context_text"] == "will it rain?"


async def test_event_invocation(moto_lambda: MotoLambda) -> None:
    """Event invocations are accepted (202) and answer 'queued'."""
    moto_lambda.create_function("fire")
    async with adapter(moto_lambda, "fire", invocation_type="Event") as a:
        response = await a.execute_async(request())
    assert (response.success, response.message) == (True, "Lambda function queued")
    assert response.data is None
    assert response.diagnostics is not None and response.diagnostics.status_code == 202


async def test_arn_region_routes_the_call(moto_lambda: MotoLambda) -> None:
    """A us-west-2 ARN is invoked in us-west-2 even when region= says us-east-1."""
    moto_lambda.create_function("regional", region="us-west-2")
    moto_lambda.queue_results({"success": True, "message": "from us-west-2"}, region="us-west-2")
    arn = "arn:aws:lambda:us-west-2:123456789012:function:regional"
    async with adapter(moto_lambda, arn) as a:
        response = await a.execute_async(request())
    assert response.message == "from us-west-2"


async def test_business_failure_from_moto(moto_lambda: MotoLambda) -> None:
    """success:false from the function is a module_error, not an outage."""
    moto_lambda.create_function("weather")
    moto_lambda.queue_results({"success": False, "error": "unknown city"})
    async with adapter(moto_lambda, "weather") as a:
        response = await a.execute_async(request())
        assert (response.success, response.error_code) == (False, "module_error")
        assert a.is_healthy() and a.health.total_failures == 0
