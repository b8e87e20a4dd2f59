"""Python functions run through AWS's own runtime interface client (awslambdaric) and our
Runtime API, invoked with boto3 and aiobotocore."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from module_sdk.local import LocalLambdaRuntime
from support.local import invoke_both
from support.runtime_api import EXAMPLES

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None,
    reason="awslambdaric is not installed (pip install 'waddlebot-module-sdk[ric]')",
)

HANDLERS = """
    import os, time

    def handler(event, context):
        print("ric handler got", event)
        action = event.get("action")
        if action == "error":
            raise ValueError("dice are missing")
        if action == "hang":
            time.sleep(60)
        if action == "exit":
            os._exit(3)
        return {"pid": os.getpid(), "request_id": context.aws_request_id,
                "tenant_id": getattr(context, "tenant_id", None),
                "function_name": context.function_name,
                "remaining": context.get_remaining_time_in_millis()}
"""

TOML = """
    [functions.ric]
    runtime = "python3.12"
    code = "ric"
    handler = "app.handler"
    runtime_interface_client = "awslambdaric"

    [functions.errors]
    runtime = "python3.11"
    code = "errors"
    handler = "handlers.handler"
    runtime_interface_client = "awslambdaric"
    timeout = 1

    [functions.tenanted]
    runtime = "python3.11"
    code = "errors"
    handler = "handlers.handler"
    runtime_interface_client = "awslambdaric"
    tenant_isolation = "PER_TENANT"

    [functions.noimport]
    runtime = "python3.11"
    code = "errors"
    handler = "broken.handler"
    runtime_interface_client = "awslambdaric"
"""


def _runtime(tmp_path: Path) -> LocalLambdaRuntime:
    directory = tmp_path / "fns"
    shutil.copytree(EXAMPLES / "ric", directory / "ric")
    (directory / "errors").mkdir()
    (directory / "errors" / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    (directory / "errors" / "broken.py").write_text("import module_that_does_not_exist\n")
    (directory / "functions.toml").write_text(textwrap.dedent(TOML))
    return LocalLambdaRuntime(directory)


def _payload(result: dict[str, Any]) -> Any:
    return json.loads(result["Payload"])


async def test_ric_example_answers_and_stays_warm(tmp_path: Path) -> None:
    """The example runs through awslambdaric; both clients get its reply from one environment."""
    async with _runtime(tmp_path) as rt:
        results = await invoke_both(rt.url, FunctionName="ric", Payload=b'{"a": 1}', LogType="Tail")
        assert rt.stats.cold_starts["ric"] == 1
    for result in results:
        assert result["StatusCode"] == 200 and "FunctionError" not in result
        assert _payload(result) == {
            "success": True,
            "message": "hello from awslambdaric",
            "request_id": result["RequestId"],
        }
        log = base64.b64decode(result["LogResult"]).decode()
        assert "ric got {'a': 1}" in log and f"END RequestId: {result['RequestId']}" in log


async def test_ric_error_timeout_and_exit(tmp_path: Path) -> None:
    """awslambdaric's error object, Sandbox.Timedout and Runtime.ExitError reach the caller."""
    async with _runtime(tmp_path) as rt:
        ok = _payload((await invoke_both(rt.url, FunctionName="errors", Payload=b"{}"))[0])
        error = (await invoke_both(rt.url, FunctionName="errors", Payload=b'{"action": "error"}'))[
            0
        ]
        hang = (await invoke_both(rt.url, FunctionName="errors", Payload=b'{"action": "hang"}'))[0]
        exited = (await invoke_both(rt.url, FunctionName="errors", Payload=b'{"action": "exit"}'))[
            0
        ]
    assert ok["function_name"] == "errors" and 0 < ok["remaining"] <= 1000
    assert error["FunctionError"] == "Unhandled"
    assert _payload(error)["errorType"] == "ValueError"
    assert _payload(error)["errorMessage"] == "dice are missing"
    assert isinstance(_payload(error)["stackTrace"], list)
    assert _payload(hang)["errorType"] == "Sandbox.Timedout"
    assert _payload(exited)["errorType"] == "Runtime.ExitError"
    assert _payload(exited)["errorMessage"].endswith("exit status 3")


async def test_ric_import_error_is_the_init_error(tmp_path: Path) -> None:
    """A module that cannot be imported answers awslambdaric's Runtime.ImportModuleError."""
    async with _runtime(tmp_path) as rt:
        result = (await invoke_both(rt.url, FunctionName="noimport", Payload=b"{}"))[0]
    assert result["FunctionError"] == "Unhandled"
    error = _payload(result)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "module_that_does_not_exist" in error["errorMessage"]


async def test_ric_sees_the_tenant_id(tmp_path: Path) -> None:
    """awslambdaric reads Lambda-Runtime-Aws-Tenant-Id into context.tenant_id."""
    async with _runtime(tmp_path) as rt:
        result = (
            await invoke_both(rt.url, FunctionName="tenanted", Payload=b"{}", TenantId="t-1")
        )[0]
    assert _payload(result)["tenant_id"] == "t-1"
