"""AWS's own Node.js runtime interface client (npm ``aws-lambda-ric``) against our Runtime API.

``aws-lambda-ric`` compiles native code when it installs (autotools, CMake, a C++ compiler;
minutes), so the suite does not install it: ``make node-ric`` does, into ``.node-ric/``, and
this test runs whenever it is there (or ``AWS_LAMBDA_RIC_DIR`` names an installed copy).
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from module_sdk.local import LocalLambdaRuntime
from support.local import aio_client, invoke_both

ROOT = Path(__file__).resolve().parents[2]
RIC = Path(
    os.environ.get("AWS_LAMBDA_RIC_DIR", ROOT / ".node-ric" / "node_modules" / "aws-lambda-ric")
)
ENTRY = RIC / "bin" / "index.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not ENTRY.is_file(),
    reason="npm aws-lambda-ric is not installed (make node-ric builds it; it compiles native code)",
)

HANDLERS = """
    export const handler = async (event, context) => {
      console.log("ric-node got", JSON.stringify(event));
      if (event.fail) throw new TypeError("dice are missing");
      return { requestId: context.awsRequestId, functionName: context.functionName };
    };
    export const streamer = awslambda.streamifyResponse(async (event, stream) => {
      stream.setContentType("text/plain");
      stream.write("a ");
      stream.write("b");
      if (event.fail) throw new Error("mid-stream");
      stream.end();
    });
"""

TOML = """
    [functions.ricnode]
    runtime = "provided.al2023"
    code = "fn"
    handler = "index.handler"

    [functions.ricstream]
    runtime = "provided.al2023"
    code = "fn"
    handler = "index.streamer"
"""


def _runtime(tmp_path: Path) -> LocalLambdaRuntime:
    directory = tmp_path / "fns"
    (directory / "fn").mkdir(parents=True)
    (directory / "fn" / "index.mjs").write_text(textwrap.dedent(HANDLERS))
    bootstrap = directory / "fn" / "bootstrap"
    bootstrap.write_text(f'#!/bin/sh\nexec node "{ENTRY}" "$_HANDLER"\n')
    os.chmod(bootstrap, 0o700)
    (directory / "functions.toml").write_text(textwrap.dedent(TOML))
    return LocalLambdaRuntime(directory)


async def test_aws_lambda_ric_answers_and_reports_errors(tmp_path: Path) -> None:
    """aws-lambda-ric's replies and error objects reach boto3 and aiobotocore unchanged."""
    async with _runtime(tmp_path) as rt:
        ok = await invoke_both(rt.url, FunctionName="ricnode", Payload=b'{"a": 1}')
        failed = await invoke_both(rt.url, FunctionName="ricnode", Payload=b'{"fail": true}')
        assert rt.stats.cold_starts["ricnode"] == 1
    for result in ok:
        reply = json.loads(result["Payload"])
        assert reply == {"requestId": result["RequestId"], "functionName": "ricnode"}
    for result in failed:
        assert result["FunctionError"] == "Unhandled"
        error = json.loads(result["Payload"])
        assert error["errorType"] == "TypeError" and error["errorMessage"] == "dice are missing"


async def test_aws_lambda_ric_streams(tmp_path: Path) -> None:
    """streamifyResponse under aws-lambda-ric: chunks, then InvokeComplete (error in trailers)."""
    async with _runtime(tmp_path) as rt, aio_client(rt.url) as client:
        results = []
        for payload in (b"{}", b'{"fail": true}'):
            response = await client.invoke_with_response_stream(
                FunctionName="ricstream", Payload=payload
            )
            results.append([event async for event in response["EventStream"]])
    ok, failed = results
    assert b"".join(e["PayloadChunk"]["Payload"] for e in ok[:-1]) == b"a b"
    assert ok[-1] == {"InvokeComplete": {}}
    assert failed[-1]["InvokeComplete"]["ErrorCode"] == "Error"
    assert failed[-1]["InvokeComplete"]["ErrorDetails"] == "mid-stream"
