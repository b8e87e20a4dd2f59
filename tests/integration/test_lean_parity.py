"""Parity: the lean Invoke path and the aiobotocore path give the same answers and send the
same requests.

One table of scenarios (every reply the scripted endpoint can play: successes, function
errors, throttles, 4xx, 5xx, malformed and oversized replies, dropped connections and slow
replies) runs through an adapter on each path. Both must produce the same ``ExecuteResponse``
(with its classification) and the endpoint must receive the same requests: path, query, body
and every header except the date, signature, user agent and per-call invocation id. moto's
server and the local runtime are compared the same way.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from module_sdk import ExecuteRequest, ExecuteResponse, LambdaAdapter
from module_sdk.local import LocalLambdaRuntime
from module_sdk.testing import FakeClock, Reply, ScriptedLambdaServer
from support.local import write_functions
from support.moto_lambda import MotoLambda

PATHS = ("aiobotocore", "lean")
# Headers that legitimately differ per call or per client: the signing time and signature,
# the user agent (each names its own stack) and the per-call invocation id.
VOLATILE = frozenset({"authorization", "x-amz-date", "user-agent", "amz-sdk-invocation-id"})
DURABLE_ARN = "arn:aws:lambda:us-east-1:123456789012:function:dice:3/durable-execution/parity-1/x"
SUCCESS = Reply.ok({"success": True, "message": "You rolled 7", "targets": ["twitch"]})


def request(session: str = "parity-1", **metadata: Any) -> ExecuteRequest:
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


@dataclass
class Scenario:
    """Replies to script, adapter settings and the request to send."""

    replies: list[Reply]
    adapter: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    function: str = "dice"


def _error(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, body, headers or {})


SCENARIOS: dict[str, Scenario] = {
    "success": Scenario([SUCCESS]),
    "success-log-tail": Scenario(
        [Reply.ok({"success": True}, log_tail="START\nhello\nEND")], {"log_type": "Tail"}
    ),
    "module-error": Scenario([Reply.ok({"success": False, "error": "no such city"})]),
    "not-json": Scenario([Reply.ok(raw=b"<html>oops</html>")]),
    "empty-body": Scenario([Reply.ok(raw=b"")]),
    "not-utf8": Scenario([Reply.ok(raw=b"\xff\xfe\x00")]),
    "oversized-reply": Scenario([Reply.ok(raw=b'{"a":"' + b"x" * (6 * 1024 * 1024 + 10) + b'"}')]),
    "function-error": Scenario(
        [Reply.function_error({"errorType": "ValueError", "errorMessage": "dice missing"})]
    ),
    "function-timeout": Scenario(
        [
            Reply.function_error(
                {"errorMessage": "2026-01-01 Task timed out after 3.00 seconds"}, kind="Unhandled"
            )
        ]
    ),
    "function-error-not-json": Scenario([Reply.function_error(None, raw=b"crashed")]),
    "throttle-then-success": Scenario(
        [
            Reply.aws_error(
                429, "TooManyRequestsException", "Rate exceeded", retry_after=1, reason="X"
            ),
            SUCCESS,
        ]
    ),
    "throttled-out": Scenario(
        [Reply.aws_error(429, "TooManyRequestsException", "Rate exceeded", retry_after=2)] * 2,
        {"max_retries": 1},
    ),
    "throttle-no-code": Scenario([_error(429, b"")], {"max_retries": 0}),
    "service-exception": Scenario(
        [Reply.aws_error(500, "ServiceException", "internal")], {"max_retries": 0}
    ),
    "kms-502": Scenario(
        [Reply.aws_error(502, "KMSAccessDeniedException", "kms says no")], {"max_retries": 0}
    ),
    "gateway-503-html": Scenario(
        [_error(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})],
        {"max_retries": 0},
    ),
    "500-not-json": Scenario([_error(500, b"boom")], {"max_retries": 0}),
    "not-found": Scenario(
        [Reply.aws_error(404, "ResourceNotFoundException", "Function not found")]
    ),
    "access-denied": Scenario([Reply.aws_error(403, "AccessDeniedException", "nope")]),
    "bad-signature": Scenario(
        [Reply.aws_error(403, "InvalidSignatureException", "Signature=abc123 mismatch")]
    ),
    "too-large": Scenario([Reply.aws_error(413, "RequestTooLargeException", "too big")]),
    "invalid-content": Scenario(
        [Reply.aws_error(400, "InvalidRequestContentException", "bad json")]
    ),
    "capital-message": Scenario(
        [
            _error(
                400,
                b'{"Message": "capital M", "Type": "User"}',
                {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/"},
            )
        ]
    ),
    "type-in-body": Scenario(
        [_error(400, b'{"__type": "com.amazon#InvalidParameterValueException", "message": "m"}')]
    ),
    "unknown-4xx": Scenario([Reply.aws_error(409, "ResourceConflictException", "busy")]),
    "drop-then-success": Scenario([Reply.drop_connection(), SUCCESS]),
    "dropped-out": Scenario([Reply.drop_connection()], {"max_retries": 0}),
    "slow-then-success": Scenario([Reply.slow(1.0, SUCCESS), SUCCESS], {"read_timeout": 0.2}),
    "slow-out": Scenario(
        [Reply.slow(1.0, SUCCESS)], {"read_timeout": 0.2, "retry_on_timeout": False}
    ),
    "event": Scenario([Reply(202)], {"invocation_type": "Event"}),
    "dry-run": Scenario([Reply(204)], {"invocation_type": "DryRun"}),
    "qualifier-latest": Scenario([SUCCESS], {"qualifier": "$LATEST"}),
    "alias-in-name": Scenario([SUCCESS], function="dice:live"),
    "partial-arn": Scenario([SUCCESS], function="123456789012:function:dice"),
    "full-arn": Scenario(
        [SUCCESS],
        {"qualifier": "7"},
        function="arn:aws:lambda:us-east-1:123456789012:function:dice",
    ),
    "large-request-streamed": Scenario([SUCCESS], metadata={"blob": "y" * 700_000}),
    "unicode-request": Scenario([SUCCESS], metadata={"text": "pingü 🐧 \u2028"}),
    "tenant": Scenario([SUCCESS], {"tenant_id": "community-c-1"}),
    "tenant-per-request": Scenario(
        [SUCCESS], {"tenant_id": lambda r: f"community-{r.community_id}"}
    ),
    "durable-started": Scenario(
        [
            Reply(
                200,
                b'{"success": true}',
                {"X-Amz-Durable-Execution-Arn": DURABLE_ARN, "X-Amz-Executed-Version": "3"},
            )
        ],
        {"durable_execution": True, "qualifier": "3"},
    ),
    "durable-duplicate": Scenario(
        [Reply.aws_error(409, "DurableExecutionAlreadyStartedException", "already started")],
        {"durable_execution": True},
    ),
}


def _comparable(sent: dict[str, Any]) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in sent["headers"].items() if k.lower() not in VOLATILE}
    return {"path": sent["path"], "body": sent["body"], "headers": headers}


async def _run(
    server: ScriptedLambdaServer, path: str, scenario: Scenario
) -> tuple[ExecuteResponse, list[dict[str, Any]]]:
    server.invocations.clear()
    server.script("dice", *scenario.replies)
    params: dict[str, Any] = {
        "endpoint_url": server.url,
        "clock": FakeClock(),
        "rng": random.Random(0),
        "read_timeout": 5.0,
        "http_client": path,
        "aws_session_token": "parity-session-token",
        "aws_access_key_id": "AKIDPARITY0000000000",
        "aws_secret_access_key": "parity-secret",
        **scenario.adapter,
    }
    async with LambdaAdapter(scenario.function, "us-east-1", "dice", **params) as adapter:
        response = await adapter.execute_async(request(**scenario.metadata))
    return response, [_comparable(sent) for sent in server.invocations]


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scripted_scenario_is_the_same_on_both_paths(
    scripted: ScriptedLambdaServer, name: str
) -> None:
    """The same replies give the same ExecuteResponse and the same requests on both paths."""
    scenario = SCENARIOS[name]
    botocore_response, botocore_sent = await _run(scripted, "aiobotocore", scenario)
    lean_response, lean_sent = await _run(scripted, "lean", scenario)
    assert lean_response.to_dict() == botocore_response.to_dict()
    assert lean_response.diagnostics == botocore_response.diagnostics
    assert len(lean_sent) == len(botocore_sent) == len(scenario.replies)
    assert lean_sent == botocore_sent


async def test_the_lean_path_really_is_lean(scripted: ScriptedLambdaServer) -> None:
    """The lean path announces itself in the user agent; the aiobotocore path does not."""
    _, _ = await _run(scripted, "lean", SCENARIOS["success"])
    lean_agent = scripted.invocations[0]["headers"]["User-Agent"]
    await _run(scripted, "aiobotocore", SCENARIOS["success"])
    botocore_agent = scripted.invocations[0]["headers"]["User-Agent"]
    assert lean_agent.startswith("waddlebot-module-sdk/") and "lean-invoke" in lean_agent
    assert "Botocore" in botocore_agent and "lean-invoke" not in botocore_agent


async def _both(url: str, function: str, region: str, **kwargs: Any) -> list[dict[str, Any]]:
    answers = []
    for path in PATHS:
        async with LambdaAdapter(
            function,
            region,
            "parity",
            endpoint_url=url,
            max_retries=0,
            http_client=path,
            clock=FakeClock(),
            **kwargs,
        ) as adapter:
            answers.append((await adapter.execute_async(request())).to_dict())
    return answers


async def test_moto_server_parity(moto_lambda: MotoLambda) -> None:
    """moto's echo and queued results answer the same on both paths."""
    region = "eu-north-1"  # moto's queue of results is per region: one of this test's own
    moto_lambda.create_function("lean-parity", region=region)
    echo = await _both(moto_lambda.url, "lean-parity", region)
    assert echo[0] == echo[1] and echo[0]["success"] is True
    queued = {"success": True, "message": "queued", "targets": ["discord"]}
    moto_lambda.queue_results(json.dumps(queued), json.dumps(queued), region=region)
    results = await _both(moto_lambda.url, "lean-parity", region)
    assert results[0] == results[1] and results[0]["message"] == "queued"


def _stable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without the per-run request id the local runtime puts in function errors."""
    data = dict(answer.get("data") or {})
    data.pop("request_id", None)
    return {**answer, "data": data}


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("aio", None),
        ("boom", "function_error"),
        ("unmarshal", "function_error"),
        ("nope", "not_found"),
    ],
    ids=["success", "function-error", "marshal-error", "unknown-function"],
)
async def test_local_runtime_parity(tmp_path: Path, function: str, expected: str | None) -> None:
    """The local runtime's success, errors and 404 answer the same on both paths."""
    functions = write_functions(tmp_path / "fns", ["aio", "boom", "unmarshal"])
    async with LocalLambdaRuntime(functions) as runtime:
        answers = await _both(runtime.url, function, "us-east-1")
    assert _stable(answers[0]) == _stable(answers[1])
    assert answers[0]["error_code"] == expected
