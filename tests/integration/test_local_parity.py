"""Parity: the same handler output served by moto's server and by the local runtime gives the
same ExecuteResponse through LambdaAdapter."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from module_sdk import ExecuteRequest, ExecuteResponse, LambdaAdapter
from module_sdk.local import FunctionSpec, LocalLambdaRuntime
from support.moto_lambda import MotoLambda

REPLIES: list[Any] = [
    {"success": True, "message": "rolled 7", "rolls": [3, 4], "targets": ["twitch"]},
    {"success": True, "message": "hi", "targets": "discord", "response_type": "text"},
    {"success": False, "error": "no such city"},
    {"message": "no success key", "overlay_data": {"x": 1}, "targets": None},
    {"statusCode": 200, "body": json.dumps({"success": True, "message": "via API Gateway"})},
    {"statusCode": 404, "body": json.dumps({"success": False, "error": "not found"})},
    {"statusCode": 500, "body": "plain text failure"},
    ["not", "an", "object"],
    "just a string",
]
IDS = [
    "plain",
    "string-target",
    "module-error",
    "no-success",
    "apigw-200",
    "apigw-404",
    "apigw-text",
    "list",
    "string",
]

HANDLER = """
import json, os

REPLY = json.loads(os.environ["REPLY"])

def handler(event, context):
    return REPLY
"""


def _request() -> ExecuteRequest:
    return ExecuteRequest(
        command="!roll",
        args=["2d6"],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id="parity-1",
        platform="twitch",
    )


# A region of its own: moto's queue of results is per region and shared by the session.
REGION = "ca-central-1"


async def _execute(url: str, function: str) -> ExecuteResponse:
    adapter = LambdaAdapter(function, REGION, "parity", max_retries=0, endpoint_url=url)
    try:
        return await adapter.execute_async(_request())
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("reply", REPLIES, ids=IDS)
async def test_moto_and_local_runtime_give_the_same_response(
    tmp_path: Path, moto_lambda: MotoLambda, reply: Any
) -> None:
    """moto's queued result and the local runtime's handler normalize identically."""
    moto_lambda.create_function("parity", region=REGION)
    # Always queue the JSON text, as Lambda sends it (a bare string would go out unquoted).
    moto_lambda.queue_results(json.dumps(reply), region=REGION)
    from_moto = await _execute(moto_lambda.url, "parity")

    (tmp_path / "parity.py").write_text(textwrap.dedent(HANDLER))
    spec = FunctionSpec(
        name="parity",
        handler="parity.handler",
        code_dir=tmp_path,
        environment={"REPLY": json.dumps(reply)},
    )
    async with LocalLambdaRuntime(functions=[spec]) as runtime:
        from_local = await _execute(runtime.url, "parity")

    assert from_local.to_dict() == from_moto.to_dict()
