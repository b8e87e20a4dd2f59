"""Node.js functions through the Runtime API and the shipped bootstrap, invoked with boto3."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from module_sdk.local import LocalLambdaRuntime
from support.local import invoke_both
from support.runtime_api import EXAMPLES, needs_node

pytestmark = needs_node

SOURCES = {
    "index.js": """
        exports.handler = async (event, context) => {
          console.log("got", JSON.stringify(event));
          if (event.action === "error") throw new TypeError("dice are missing");
          if (event.action === "hang") await new Promise(() => setTimeout(() => {}, 60000));
          if (event.action === "exit") process.exit(3);
          if (event.action === "uncaught") {
            setTimeout(() => { throw new RangeError("late failure"); }, 0);
            await new Promise(() => setTimeout(() => {}, 60000));
          }
          if (event.action === "undefined") return undefined;
          if (event.action === "cycle") { const a = {}; a.a = a; return a; }
          return {
            pid: process.pid,
            awsRequestId: context.awsRequestId,
            functionName: context.functionName,
            memoryLimitInMB: context.memoryLimitInMB,
            invokedFunctionArn: context.invokedFunctionArn,
            remaining: context.getRemainingTimeInMillis(),
            clientContext: context.clientContext,
            tenantId: context.tenantId,
            event,
          };
        };
        exports.callback = (event, context, callback) => {
          setTimeout(() => callback(null, { style: "callback", event }), 1);
        };
        exports.notAFunction = 42;
    """,
    "esm.mjs": """
        export const handler = async (event) => ({ style: "esm", event });
    """,
    "broken.js": """
        exports.handler = async (event) => {
    """,
}

TOML = """
    [functions.node]
    runtime = "nodejs20.x"
    code = "node"
    handler = "index.handler"
    timeout = 2
    memory_size = 256

    [functions.callback]
    runtime = "nodejs18.x"
    code = "node"
    handler = "index.callback"

    [functions.esm]
    runtime = "nodejs22.x"
    code = "node"
    handler = "esm.handler"

    [functions.missing-export]
    runtime = "nodejs20.x"
    code = "node"
    handler = "index.nothere"

    [functions.not-function]
    runtime = "nodejs20.x"
    code = "node"
    handler = "index.notAFunction"

    [functions.broken]
    runtime = "nodejs20.x"
    code = "node"
    handler = "broken.handler"

    [functions.node-tenant]
    runtime = "nodejs20.x"
    code = "node"
    handler = "index.handler"
    tenant_isolation = "PER_TENANT"

    [functions.hello-node]
    runtime = "nodejs20.x"
    code = "hello-node"
    handler = "index.handler"
"""


def _runtime(tmp_path: Path, **kw: Any) -> LocalLambdaRuntime:
    directory = tmp_path / "fns"
    (directory / "node").mkdir(parents=True)
    for name, text in SOURCES.items():
        (directory / "node" / name).write_text(textwrap.dedent(text))
    shutil.copytree(EXAMPLES / "hello-node", directory / "hello-node")
    (directory / "functions.toml").write_text(textwrap.dedent(TOML))
    return LocalLambdaRuntime(directory, **kw)


def _payload(result: dict[str, Any]) -> Any:
    return json.loads(result["Payload"])


def _log(result: dict[str, Any]) -> str:
    return base64.b64decode(result["LogResult"]).decode()


async def test_hello_node_example_answers_and_logs_like_lambda(tmp_path: Path) -> None:
    """The example answers boto3 and aiobotocore; console.log lines carry time, id and level."""
    async with _runtime(tmp_path) as rt:
        results = await invoke_both(
            rt.url, FunctionName="hello-node", Payload=b'{"args": ["hi"]}', LogType="Tail"
        )
        assert rt.stats.cold_starts["hello-node"] == 1  # the second client reused it
    for result in results:
        assert result["StatusCode"] == 200 and "FunctionError" not in result
        reply = _payload(result)
        assert reply["success"] is True
        assert reply["message"].startswith("hello from Node.js v") and reply["message"].endswith(
            ": hi"
        )
        assert reply["request_id"] == result["RequestId"]
        log = _log(result)
        assert re.search(
            r"\n\d{4}-\d\d-\d\dT[\d:.]+Z\t"
            + result["RequestId"]
            + r'\tINFO\thello-node got \{"args":\["hi"\]\}\n',
            log,
        )
        assert re.search(r"REPORT RequestId: .*\tMax Memory Used: [1-9]\d* MB", log)


async def test_context_and_client_context(tmp_path: Path) -> None:
    """The context has the request id, name, memory, ARN, remaining time and client context."""
    custom = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    async with _runtime(tmp_path) as rt:
        results = await invoke_both(
            rt.url, FunctionName="node", Payload=b'{"a": 1}', ClientContext=custom
        )
    for result in results:
        reply = _payload(result)
        assert reply["awsRequestId"] == result["RequestId"]
        assert reply["functionName"] == "node" and reply["memoryLimitInMB"] == "256"
        assert reply["invokedFunctionArn"].endswith(":function:node")
        assert 0 < reply["remaining"] <= 2000
        assert reply["clientContext"] == {"custom": {"k": "v"}}
        assert reply["event"] == {"a": 1}


@pytest.mark.parametrize(("name", "style"), [("callback", "callback"), ("esm", "esm")])
async def test_callback_and_esm_handlers(tmp_path: Path, name: str, style: str) -> None:
    """A callback-style handler and an ES module handler both answer."""
    async with _runtime(tmp_path) as rt:
        result = (await invoke_both(rt.url, FunctionName=name, Payload=b'{"x": 1}'))[0]
    assert _payload(result) == {"style": style, "event": {"x": 1}}


async def test_thrown_error_is_a_function_error(tmp_path: Path) -> None:
    """A rejected handler answers Unhandled with errorType, errorMessage and trace."""
    async with _runtime(tmp_path) as rt:
        results = await invoke_both(
            rt.url, FunctionName="node", Payload=b'{"action": "error"}', LogType="Tail"
        )
        undefined = (
            await invoke_both(rt.url, FunctionName="node", Payload=b'{"action": "undefined"}')
        )[0]
        cycle = (await invoke_both(rt.url, FunctionName="node", Payload=b'{"action": "cycle"}'))[0]
        assert rt.stats.cold_starts["node"] == 1
    for result in results:
        assert result["FunctionError"] == "Unhandled"
        error = _payload(result)
        assert error["errorType"] == "TypeError"
        assert error["errorMessage"] == "dice are missing"
        assert error["trace"][0] == "TypeError: dice are missing"
        assert "\tERROR\tInvoke Error" in _log(result)
    assert undefined["Payload"] == b"null"
    assert cycle["FunctionError"] == "Unhandled"
    assert _payload(cycle)["errorType"] == "Runtime.MarshalError"


async def test_timeout_exit_and_uncaught_exception(tmp_path: Path) -> None:
    """Timeout: Sandbox.Timedout; process.exit: Runtime.ExitError; uncaught: its error."""
    async with _runtime(tmp_path) as rt:
        before = _payload((await invoke_both(rt.url, FunctionName="node", Payload=b"{}"))[0])
        hang = (await invoke_both(rt.url, FunctionName="node", Payload=b'{"action": "hang"}'))[0]
        exited = (await invoke_both(rt.url, FunctionName="node", Payload=b'{"action": "exit"}'))[0]
        uncaught = (
            await invoke_both(rt.url, FunctionName="node", Payload=b'{"action": "uncaught"}')
        )[0]
        after = _payload((await invoke_both(rt.url, FunctionName="node", Payload=b"{}"))[0])
    assert _payload(hang)["errorType"] == "Sandbox.Timedout"
    assert _payload(exited)["errorType"] == "Runtime.ExitError"
    assert _payload(exited)["errorMessage"].endswith("exit status 3")
    assert uncaught["FunctionError"] == "Unhandled"
    assert _payload(uncaught)["errorType"] == "RangeError"
    assert _payload(uncaught)["errorMessage"] == "late failure"
    assert after["pid"] != before["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(before["pid"], 0)  # the timed-out environment was killed


@pytest.mark.parametrize(
    ("name", "error_type", "message"),
    [
        ("missing-export", "Runtime.HandlerNotFound", "index.nothere is undefined or not exported"),
        (
            "not-function",
            "Runtime.HandlerNotFound",
            "index.notAFunction is undefined or not exported",
        ),
        ("broken", "Runtime.UserCodeSyntaxError", "SyntaxError: Unexpected end of input"),
    ],
)
async def test_init_errors(tmp_path: Path, name: str, error_type: str, message: str) -> None:
    """A handler that cannot load answers the init error Lambda's Node runtime gives."""
    async with _runtime(tmp_path) as rt:
        result = (await invoke_both(rt.url, FunctionName=name, Payload=b"{}"))[0]
        assert rt.stats.outcomes["init_error"] == 2
    assert result["FunctionError"] == "Unhandled"
    error = _payload(result)
    assert error["errorType"] == error_type
    assert error["errorMessage"] == message


async def test_tenant_id_reaches_context_tenant_id(tmp_path: Path) -> None:
    """X-Amz-Tenant-Id is context.tenantId; each tenant has its own Node environment."""
    async with _runtime(tmp_path) as rt:
        a = await invoke_both(rt.url, FunctionName="node-tenant", Payload=b"{}", TenantId="a")
        b = await invoke_both(rt.url, FunctionName="node-tenant", Payload=b"{}", TenantId="b")
        assert rt.stats.cold_starts["node-tenant"] == 2
    assert [_payload(r)["tenantId"] for r in (*a, *b)] == ["a", "a", "b", "b"]
    assert _payload(a[0])["pid"] == _payload(a[1])["pid"] != _payload(b[0])["pid"]
