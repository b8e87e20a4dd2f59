"""The Lambda API facts are one set: the adapter and the local runtime accept the same names."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from module_sdk.aws_lambda.api import EVENT_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT, payload_limit
from module_sdk.aws_lambda.naming import resolve_function
from module_sdk.local import LocalLambdaRuntime
from support.local import SIGNED, write_functions

NAMES = [
    "echo",
    "echo:$LATEST",
    "echo:$LATEST.PUBLISHED",
    "123456789012:function:echo",
    "arn:aws:lambda:us-east-1:123456789012:function:echo",
    "arn:aws:lambda:eusc-de-east-1:123456789012:function:echo",
    "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:echo:live",
]


@pytest.mark.parametrize("identifier", NAMES)
async def test_local_runtime_accepts_every_name_the_adapter_sends(
    tmp_path: Path, identifier: str
) -> None:
    """A FunctionName the adapter resolves is never refused by the local runtime's pattern
    (it may then not exist there: 404, never 400)."""
    target = resolve_function(identifier, prefix=None, qualifier=None)
    assert target.function_name
    async with (
        LocalLambdaRuntime(write_functions(tmp_path / "fns", ["echo"])) as runtime,
        aiohttp.ClientSession() as session,
        session.post(
            f"{runtime.url}/2015-03-31/functions/{identifier}/invocations",
            data=b"{}",
            headers=SIGNED,
        ) as reply,
    ):
        assert reply.status in (200, 404), await reply.text()


def test_payload_limits() -> None:
    """6 MB for synchronous calls, 1 MB for Event calls."""
    assert payload_limit("RequestResponse") == payload_limit("DryRun") == SYNC_PAYLOAD_LIMIT
    assert payload_limit("Event") == EVENT_PAYLOAD_LIMIT == 1024 * 1024
    assert SYNC_PAYLOAD_LIMIT == 6 * 1024 * 1024
