"""The local runtime against real boto3 and aiobotocore clients: every status and error path.

Each test invokes through both clients (``invoke_both``) and checks that both parse the reply
exactly as they parse AWS's: status, FunctionError, LogResult, error codes and fields.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from module_sdk.local import Faults, FunctionSpec, LocalLambdaRuntime
from support.local import SIGNED, aio_client, boto3_client, invoke_both, write_functions

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _runtime(tmp_path: Path, names: list[str], toml: str | None = None, **kw: Any) -> Any:
    return LocalLambdaRuntime(write_functions(tmp_path / "fns", names, toml), **kw)


def _payload(result: dict[str, Any]) -> Any:
    return json.loads(result["Payload"])


async def test_success_reply_with_log_tail(tmp_path: Path) -> None:
    """A 200 with the handler's JSON, $LATEST, a request id and the printed and logged lines."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(
            rt.url, FunctionName="echo", Payload=b'{"a": 1}', LogType="Tail"
        )
    for result in results:
        assert result["StatusCode"] == 200
        assert result["ExecutedVersion"] == "$LATEST"
        assert "FunctionError" not in result
        assert UUID_RE.match(result["RequestId"])
        reply = _payload(result)
        assert reply["event"] == {"a": 1}
        assert reply["success"] is True
        log = base64.b64decode(result["LogResult"]).decode()
        request_id = result["RequestId"]
        assert log.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
        assert "echo got {'a': 1}\n" in log
        assert "[INFO]\t" in log and f"\t{request_id}\trequest {request_id}\n" in log
        assert f"END RequestId: {request_id}\n" in log
        assert re.search(rf"REPORT RequestId: {request_id}\tDuration: [\d.]+ ms\t", log)


async def test_no_log_result_without_tail(tmp_path: Path) -> None:
    """LogType None (the default) sends no X-Amz-Log-Result."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="echo", Payload=b"{}")
    assert all("LogResult" not in r and r["StatusCode"] == 200 for r in results)


async def test_empty_payload_is_an_empty_object(tmp_path: Path) -> None:
    """An invoke without a payload delivers ``{}`` to the handler."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="echo")
    assert [_payload(r)["event"] for r in results] == [{}, {}]


async def test_unhandled_exception_is_a_function_error(tmp_path: Path) -> None:
    """An exception answers 200 + Unhandled with the AWS Python runtime's error object."""
    async with _runtime(tmp_path, ["boom"]) as rt:
        results = await invoke_both(rt.url, FunctionName="boom", Payload=b"{}", LogType="Tail")
    for result in results:
        assert result["StatusCode"] == 200
        assert result["FunctionError"] == "Unhandled"
        error = _payload(result)
        assert error["errorType"] == "ValueError"
        assert error["errorMessage"] == "dice are missing"
        assert error["requestId"] == result["RequestId"]
        assert any('boom.py", line 3, in handler' in line for line in error["stackTrace"])
        log = base64.b64decode(result["LogResult"]).decode()
        assert "[ERROR] ValueError: dice are missing" in log


async def test_timeout_kills_the_worker_and_answers_sandbox_timedout(tmp_path: Path) -> None:
    """A hanging handler is killed at its timeout; the runtime keeps serving."""
    toml = "[functions.hang]\ntimeout = 0.3\n"
    async with _runtime(tmp_path, ["hang", "echo"], toml) as rt:
        results = await invoke_both(rt.url, FunctionName="hang", Payload=b"{}", LogType="Tail")
        after = await invoke_both(rt.url, FunctionName="echo", Payload=b"{}")
        assert rt.stats.outcomes["timeout"] == 2
        assert rt.functions["hang"].timeout == 0.3
    for result in results:
        assert result["FunctionError"] == "Unhandled"
        error = _payload(result)
        assert error == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {result['RequestId']} Error: Task timed out after "
            "0.30 seconds",
        }
        log = base64.b64decode(result["LogResult"]).decode()
        assert "Task timed out after 0.30 seconds" in log
        assert "Status: timeout" in log
    assert [r["StatusCode"] for r in after] == [200, 200]


async def test_crash_answers_runtime_exit_error_and_a_new_worker_follows(tmp_path: Path) -> None:
    """A worker that exits answers Runtime.ExitError; the next call gets a fresh worker."""
    async with _runtime(tmp_path, ["crash"]) as rt:
        before = await invoke_both(rt.url, FunctionName="crash", Payload=b"{}")
        crashed = await invoke_both(rt.url, FunctionName="crash", Payload=b'{"crash": true}')
        after = await invoke_both(rt.url, FunctionName="crash", Payload=b"{}")
        assert rt.stats.outcomes["crash"] == 2
    for result in crashed:
        assert result["FunctionError"] == "Unhandled"
        assert _payload(result) == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {result['RequestId']} Error: Runtime exited with "
            "error: exit status 3",
        }
    assert _payload(before[1])["pid"] != _payload(after[1])["pid"]


async def test_warm_worker_is_reused(tmp_path: Path) -> None:
    """Sequential calls reuse one warm worker: one cold start, one process."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="echo", Payload=b"{}")
        assert rt.stats.cold_starts["echo"] == 1
    assert _payload(results[0])["pid"] == _payload(results[1])["pid"]


async def test_async_def_handler(tmp_path: Path) -> None:
    """``async def handler`` is awaited in the worker."""
    async with _runtime(tmp_path, ["aio"]) as rt:
        results = await invoke_both(rt.url, FunctionName="aio", Payload=b"{}")
    assert [_payload(r)["message"] for r in results] == ["async", "async"]


async def test_context_object_and_client_context(tmp_path: Path) -> None:
    """The context has the AWS runtime's attributes; ClientContext is decoded for the handler."""
    client_context = base64.b64encode(
        json.dumps({"custom": {"trace": "abc"}, "env": {"locale": "en"}}).encode()
    ).decode()
    async with _runtime(tmp_path, ["context"]) as rt:
        results = await invoke_both(
            rt.url, FunctionName="context", Payload=b"{}", ClientContext=client_context
        )
    for result in results:
        context = _payload(result)
        assert context["aws_request_id"] == result["RequestId"]
        assert context["function_name"] == "context"
        assert context["function_version"] == "$LATEST"
        assert context["invoked_function_arn"] == (
            "arn:aws:lambda:us-east-1:123456789012:function:context"
        )
        assert context["memory_limit_in_mb"] == "128"
        assert 0 < context["remaining"] <= 3000
        assert context["log_group_name"] == "/aws/lambda/context"
        assert context["client_context"] == {"custom": {"trace": "abc"}, "env": {"locale": "en"}}


@pytest.mark.parametrize(
    ("function_name", "arn"),
    [
        (
            "arn:aws:lambda:eu-west-1:111122223333:function:context",
            "arn:aws:lambda:eu-west-1:111122223333:function:context",
        ),
        (
            "111122223333:function:context",
            "arn:aws:lambda:us-east-1:111122223333:function:context",
        ),
        ("context:live", "arn:aws:lambda:us-east-1:123456789012:function:context:live"),
    ],
    ids=["full-arn", "partial-arn", "name-with-alias"],
)
async def test_function_name_forms(tmp_path: Path, function_name: str, arn: str) -> None:
    """Full and partial ARNs and name:alias reach the function with the right invoked ARN."""
    toml = '[functions.context]\naliases = ["live"]\n'
    async with _runtime(tmp_path, ["context"], toml) as rt:
        results = await invoke_both(rt.url, FunctionName=function_name, Payload=b"{}")
    assert [_payload(r)["invoked_function_arn"] for r in results] == [arn, arn]


async def test_unknown_function_is_404(tmp_path: Path) -> None:
    """ResourceNotFoundException (404) with AWS's message, parsed as a modeled error."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="nope", Payload=b"{}")
    for result in results:
        error = result["error"]
        assert error["Code"] == "ResourceNotFoundException"
        assert error["HTTPStatusCode"] == 404
        assert error["Message"] == (
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"
        )
        assert error["Body"]["Type"] == "User"


async def test_qualifiers(tmp_path: Path) -> None:
    """$LATEST and declared aliases run; other qualifiers are 404; a mismatch is 400."""
    toml = '[functions.echo]\naliases = ["live"]\n'
    async with _runtime(tmp_path, ["echo"], toml) as rt:
        latest = await invoke_both(rt.url, FunctionName="echo", Qualifier="$LATEST")
        alias = await invoke_both(rt.url, FunctionName="echo", Qualifier="live")
        missing = await invoke_both(rt.url, FunctionName="echo", Qualifier="7")
        mismatch = await invoke_both(rt.url, FunctionName="echo:live", Qualifier="prod")
    assert [r["StatusCode"] for r in (*latest, *alias)] == [200] * 4
    assert all(r["ExecutedVersion"] == "$LATEST" for r in alias)
    for result in missing:
        assert result["error"]["Code"] == "ResourceNotFoundException"
        assert result["error"]["Message"].endswith("function:echo:7")
    for result in mismatch:
        assert result["error"]["Code"] == "InvalidParameterValueException"
        assert result["error"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("invocation_type", "size", "limit"),
    [("RequestResponse", 6 * 1024 * 1024, 6291456), ("Event", 1024 * 1024, 1048576)],
    ids=["sync-6MB", "event-1MB"],
)
async def test_payload_over_the_limit_is_413(
    tmp_path: Path, invocation_type: str, size: int, limit: int
) -> None:
    """RequestTooLargeException (413) over 6 MB synchronous or 1 MB Event."""
    payload = json.dumps({"blob": "x" * size}).encode()
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(
            rt.url, FunctionName="echo", Payload=payload, InvocationType=invocation_type
        )
        assert rt.stats.invocations["echo"] == 0
    for result in results:
        assert result["error"]["Code"] == "RequestTooLargeException"
        assert result["error"]["HTTPStatusCode"] == 413
        assert str(limit) in result["error"]["Message"]


async def test_body_that_is_not_json_is_400(tmp_path: Path) -> None:
    """InvalidRequestContentException (400) for a body that is not JSON."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="echo", Payload=b"{not json")
    for result in results:
        assert result["error"]["Code"] == "InvalidRequestContentException"
        assert result["error"]["HTTPStatusCode"] == 400
        assert result["error"]["Message"].startswith("Could not parse request body into json")


async def test_bad_client_context_is_400(tmp_path: Path) -> None:
    """A ClientContext that is not base64 JSON is refused."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="echo", ClientContext="%%%")
    assert [r["error"]["Code"] for r in results] == ["InvalidRequestContentException"] * 2


async def _hold(rt: LocalLambdaRuntime, function: str, gate: Path) -> asyncio.Task[Any]:
    """Start a call that keeps ``function`` busy until ``gate`` exists; return once it runs."""

    async def call() -> Any:
        async with aio_client(rt.url) as client:
            response = await client.invoke(
                FunctionName=function, Payload=json.dumps({"gate": str(gate)}).encode()
            )
            async with response["Payload"] as stream:
                return await stream.read()

    task = asyncio.create_task(call())
    async with asyncio.timeout(30):
        await rt.wait_until(lambda: rt.in_flight(function) > 0)
    return task


async def test_reserved_concurrency_throttles_with_429(tmp_path: Path) -> None:
    """A call beyond reserved concurrency gets 429 with Reason and Retry-After, not a queue."""
    toml = "[functions.slow]\nreserved_concurrency = 1\ntimeout = 60\n"
    gate = tmp_path / "gate"
    async with _runtime(tmp_path, ["slow"], toml, throttle_retry_after=2) as rt:
        busy = await _hold(rt, "slow", gate)
        results = await invoke_both(rt.url, FunctionName="slow", Payload=b"{}")
        gate.touch()
        assert json.loads(await busy) == {"success": True}
        assert rt.stats.throttles["slow"] == 2
        assert rt.stats.invocations["slow"] == 1
    for result in results:
        error = result["error"]
        assert error["Code"] == "TooManyRequestsException"
        assert error["HTTPStatusCode"] == 429
        assert error["Message"] == "Rate Exceeded."
        assert error["Body"]["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert error["Body"]["retryAfterSeconds"] == "2"
        assert error["Headers"]["retry-after"] == "2"


async def test_reserved_concurrency_zero_always_throttles(tmp_path: Path) -> None:
    """reserved_concurrency = 0 throttles every call, as Lambda does."""
    toml = "[functions.echo]\nreserved_concurrency = 0\n"
    async with _runtime(tmp_path, ["echo"], toml) as rt:
        results = await invoke_both(rt.url, FunctionName="echo")
    assert [r["error"]["HTTPStatusCode"] for r in results] == [429, 429]


async def test_overall_concurrency_limit(tmp_path: Path) -> None:
    """Beyond the runtime's concurrency_limit: 429 ConcurrentInvocationLimitExceeded."""
    toml = "[functions.slow]\ntimeout = 60\n"
    gate = tmp_path / "gate"
    async with _runtime(tmp_path, ["slow", "echo"], toml, concurrency_limit=1) as rt:
        busy = await _hold(rt, "slow", gate)
        results = await invoke_both(rt.url, FunctionName="echo", Payload=b"{}")
        gate.touch()
        await busy
    for result in results:
        assert result["error"]["Body"]["Reason"] == "ConcurrentInvocationLimitExceeded"


async def test_event_is_accepted_with_202_and_runs_in_the_background(tmp_path: Path) -> None:
    """Event answers 202 with no body at once; the handler runs afterwards."""
    event = json.dumps({"request_id": "sess-9"}).encode()
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(
            rt.url, FunctionName="echo", Payload=event, InvocationType="Event"
        )
        await rt.wait_for_events(timeout=10)
        assert rt.stats.invocations["echo"] == 2
        assert rt.stats.request_ids["sess-9"] == 2
        assert rt.stats.outcomes["event_success"] == 2
        assert [r.invocation_type for r in rt.history] == ["Event", "Event"]
    for result in results:
        assert result["StatusCode"] == 202
        assert result["Payload"] == b""
        assert "FunctionError" not in result


async def test_dry_run_is_204_and_runs_nothing(tmp_path: Path) -> None:
    """DryRun answers 204 and never runs the handler."""
    async with _runtime(tmp_path, ["echo"]) as rt:
        results = await invoke_both(rt.url, FunctionName="echo", InvocationType="DryRun")
        assert rt.stats.invocations["echo"] == 0
    assert [r["StatusCode"] for r in results] == [204, 204]


async def test_environment_from_functions_toml(tmp_path: Path) -> None:
    """``environment`` reaches the handler's os.environ."""
    toml = '[functions.echo]\nenvironment = { GREETING = "hi" }\n'
    async with _runtime(tmp_path, ["echo"], toml) as rt:
        results = await invoke_both(rt.url, FunctionName="echo")
    assert [_payload(r)["greeting"] for r in results] == ["hi", "hi"]


async def test_import_error_is_runtime_import_module_error(tmp_path: Path) -> None:
    """A module that cannot be imported answers Runtime.ImportModuleError."""
    async with _runtime(tmp_path, ["badimport"]) as rt:
        results = await invoke_both(rt.url, FunctionName="badimport", LogType="Tail")
    for result in results:
        assert result["FunctionError"] == "Unhandled"
        error = _payload(result)
        assert error["errorType"] == "Runtime.ImportModuleError"
        assert "Unable to import module 'badimport'" in error["errorMessage"]


async def test_unserializable_result_is_a_marshal_error(tmp_path: Path) -> None:
    """A reply that is not JSON-serializable answers Runtime.MarshalError."""
    async with _runtime(tmp_path, ["unmarshal"]) as rt:
        results = await invoke_both(rt.url, FunctionName="unmarshal")
    assert [_payload(r)["errorType"] for r in results] == ["Runtime.MarshalError"] * 2


async def test_log_tail_is_the_last_4_kb(tmp_path: Path) -> None:
    """LogResult holds the last 4 KB of the log, ending with the REPORT line."""
    async with _runtime(tmp_path, ["chatty"]) as rt:
        results = await invoke_both(rt.url, FunctionName="chatty", LogType="Tail")
    for result in results:
        raw = base64.b64decode(result["LogResult"])
        assert len(raw) == 4096
        log = raw.decode()
        assert "line 0499" in log and "line 0000" not in log
        assert log.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")


async def test_injected_throttle(tmp_path: Path) -> None:
    """A throttle fault is a 429 FunctionInvocationRateLimitExceeded with Retry-After."""
    faults = Faults(throttle_rate=1.0, retry_after=3)
    async with _runtime(tmp_path, ["echo"], faults=faults, seed=1) as rt:
        results = await invoke_both(rt.url, FunctionName="echo")
        assert rt.stats.faults["throttle"] == 2
        assert rt.stats.faults_by_function[("echo", "throttle")] == 2
        assert rt.stats.invocations["echo"] == 0
    for result in results:
        assert result["error"]["Code"] == "TooManyRequestsException"
        assert result["error"]["Body"]["Reason"] == "FunctionInvocationRateLimitExceeded"
        assert result["error"]["Headers"]["retry-after"] == "3"


async def test_injected_service_error(tmp_path: Path) -> None:
    """An error fault is a 500 ServiceException."""
    async with _runtime(tmp_path, ["echo"], faults={"echo": Faults(error_rate=1.0)}) as rt:
        results = await invoke_both(rt.url, FunctionName="echo")
        assert rt.stats.faults["error"] == 2
    for result in results:
        assert result["error"]["Code"] == "ServiceException"
        assert result["error"]["HTTPStatusCode"] == 500
        assert result["error"]["Body"]["Type"] == "Service"


async def test_injected_latency_is_counted(tmp_path: Path) -> None:
    """A latency fault delays the call and is counted."""
    async with _runtime(tmp_path, ["echo"], faults=Faults(latency=0.01)) as rt:
        results = await invoke_both(rt.url, FunctionName="echo")
        assert rt.stats.faults["latency"] == 2
    assert [r["StatusCode"] for r in results] == [200, 200]


async def test_dropped_connection(tmp_path: Path) -> None:
    """A drop fault closes the connection: the clients see a connection error, no run."""
    async with _runtime(tmp_path, ["echo"], faults=Faults(drop_rate=1.0)) as rt:
        client = await asyncio.to_thread(boto3_client, rt.url)
        with pytest.raises(ConnectionClosedError):
            await asyncio.to_thread(client.invoke, FunctionName="echo")
        client.close()
        async with aio_client(rt.url) as aio:
            with pytest.raises(ConnectionClosedError):
                await aio.invoke(FunctionName="echo")
        assert rt.stats.faults["drop"] == 2
        assert rt.stats.invocations["echo"] == 0


async def test_slow_reply_exceeds_the_read_timeout_after_the_run(tmp_path: Path) -> None:
    """A slow reply makes the client time out although the function ran."""
    faults = Faults(slow_rate=1.0, slow_seconds=3.0)
    event = json.dumps({"request_id": "sess-slow"}).encode()
    async with _runtime(tmp_path, ["echo"], faults=faults, prewarm=1) as rt:
        async with aio_client(rt.url, read_timeout=0.5) as client:
            with pytest.raises(ReadTimeoutError):
                await client.invoke(FunctionName="echo", Payload=event)
        async with asyncio.timeout(10):  # the run is over, the reply still held
            await rt.wait_until(lambda: rt.stats.faults["slow"] > 0)
        assert rt.stats.invocations["echo"] == 1
        assert rt.stats.request_ids["sess-slow"] == 1
        assert rt.stats.faults["slow"] == 1


async def test_drop_after_run_retries_show_as_duplicates(tmp_path: Path) -> None:
    """Retries after a reply is lost run the function again: stats count each run per id."""
    from module_sdk import ExecuteRequest, LambdaAdapter
    from module_sdk.testing import FakeClock

    faults = Faults(drop_rate=1.0, drop_after_run=True)
    async with _runtime(tmp_path, ["echo"], faults=faults) as rt:
        adapter = LambdaAdapter(
            "echo", "us-east-1", "echo", max_retries=2, endpoint_url=rt.url, clock=FakeClock()
        )
        request = ExecuteRequest("!echo", [], "u", "e", "c", "sess-dup", "twitch")
        response = await adapter.execute_async(request)
        await adapter.aclose()
        assert response.error_code == "connection"
        assert rt.stats.runs[("echo", "sess-dup")] == 3
        assert rt.stats.duplicates() == {"sess-dup": 3}


async def test_a_hang_does_not_block_other_calls(tmp_path: Path) -> None:
    """While one worker hangs, other calls to the same function run in other workers."""
    toml = "[functions.slow]\ntimeout = 60\n"
    gate = tmp_path / "gate"
    async with _runtime(tmp_path, ["slow"], toml) as rt:
        busy = await _hold(rt, "slow", gate)
        results = await invoke_both(rt.url, FunctionName="slow", Payload=b'{"sleep": 0}')
        assert rt.stats.cold_starts["slow"] == 2
        assert rt.in_flight("slow") == 1
        gate.touch()
        await busy
    assert [r["StatusCode"] for r in results] == [200, 200]


async def test_aclose_kills_every_worker(tmp_path: Path) -> None:
    """Stopping the runtime leaves no worker process behind."""
    async with _runtime(tmp_path, ["crash"]) as rt:
        results = await invoke_both(rt.url, FunctionName="crash")
    pid = _payload(results[0])["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_programmatic_registration(tmp_path: Path) -> None:
    """Functions can be added as FunctionSpec objects, without a functions directory."""
    code = write_functions(tmp_path / "code", ["echo"])
    spec = FunctionSpec(name="my-echo", handler="echo.handler", code_dir=code, timeout=2)
    async with LocalLambdaRuntime(functions=[spec]) as rt:
        rt.add_function(FunctionSpec(name="other", handler="echo.handler", code_dir=code))
        results = await invoke_both(rt.url, FunctionName="my-echo")
        other = await invoke_both(rt.url, FunctionName="other")
    assert [r["StatusCode"] for r in (*results, *other)] == [200] * 4


async def test_runtime_errors_without_a_client_error_class_still_parse(tmp_path: Path) -> None:
    """Errors carry x-amzn-ErrorType, so botocore raises the modeled exception class."""
    async with _runtime(tmp_path, ["echo"]) as rt, aio_client(rt.url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            await client.invoke(FunctionName="missing")
    assert isinstance(info.value, ClientError)


async def test_aclose_stops_a_running_event_and_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the runtime cancels a running Event call and kills the worker it occupies."""
    started, _ = _spy_on_workers(monkeypatch)
    directory = tmp_path / "fns"
    directory.mkdir()
    (directory / "sleeper.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(30)\n"
    )
    async with LocalLambdaRuntime(directory) as rt, aio_client(rt.url) as client:
        reply = await client.invoke(FunctionName="sleeper", InvocationType="Event")
        assert reply["StatusCode"] == 202
        async with asyncio.timeout(30):
            await rt.wait_until(lambda: rt.stats.invocations["sleeper"] == 1)
        assert rt.in_flight("sleeper") == 1
    assert len(started) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(started[0].pid, 0)
    _assert_reaped(started)


async def test_event_waits_for_capacity_instead_of_being_throttled(tmp_path: Path) -> None:
    """An Event beyond reserved concurrency is accepted (202) and runs once a slot frees."""
    toml = "[functions.slow]\nreserved_concurrency = 1\ntimeout = 60\n"
    event = json.dumps({"sleep": 0, "request_id": "queued-1"}).encode()
    gate = tmp_path / "gate"
    async with _runtime(tmp_path, ["slow"], toml) as rt:
        busy = await _hold(rt, "slow", gate)
        async with aio_client(rt.url) as client:
            reply = await client.invoke(FunctionName="slow", InvocationType="Event", Payload=event)
        assert reply["StatusCode"] == 202
        assert rt.stats.request_ids["queued-1"] == 0
        gate.touch()
        await busy
        await rt.wait_for_events(timeout=10)
        assert rt.stats.request_ids["queued-1"] == 1
        assert rt.stats.throttles["slow"] == 0


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Amz-Invocation-Type": "Later"}, "at 'invocationType'"),
        ({"X-Amz-Log-Type": "All"}, "at 'logType'"),
    ],
    ids=["invocation-type", "log-type"],
)
async def test_invalid_headers_are_400(
    tmp_path: Path, headers: dict[str, str], message: str
) -> None:
    """Header values outside the API's enums answer InvalidParameterValueException."""
    import aiohttp

    async with _runtime(tmp_path, ["echo"]) as rt, aiohttp.ClientSession() as session:
        url = f"{rt.url}/2015-03-31/functions/echo/invocations"
        async with session.post(url, data=b"{}", headers={**headers, **SIGNED}) as reply:
            body = await reply.json()
            assert reply.status == 400
            assert reply.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert message in body["message"]


async def test_endless_output_is_capped(tmp_path: Path) -> None:
    """A handler printing megabytes keeps only the newest output in its log."""
    directory = tmp_path / "fns"
    directory.mkdir()
    (directory / "flood.py").write_text(
        "def handler(event, context):\n"
        "    for i in range(20000):\n"
        "        print(f'{i:06d}', 'y' * 100)\n"
        "    return {'success': True}\n"
    )
    async with LocalLambdaRuntime(directory) as rt, aio_client(rt.url) as client:
        reply = await client.invoke(FunctionName="flood", LogType="Tail")
        assert "FunctionError" not in reply
        log = rt.history[-1].log
    assert len(log) < 300 * 1024
    assert "[... earlier output dropped ...]" in log
    assert "019999 " in base64.b64decode(reply["LogResult"]).decode()


async def test_a_worker_that_cannot_start_is_a_service_exception(tmp_path: Path) -> None:
    """If a worker cannot even be started, the call gets an AWS-shaped 500, not a crash."""
    spec = FunctionSpec(name="gone", handler="gone.handler", code_dir=tmp_path / "missing")
    async with LocalLambdaRuntime(functions=[spec]) as rt:
        results = await invoke_both(rt.url, FunctionName="gone")
        assert rt.stats.outcomes["runtime_error"] == 2
    for result in results:
        assert result["error"]["Code"] == "ServiceException"
        assert result["error"]["HTTPStatusCode"] == 500
        assert "FileNotFoundError" in result["error"]["Message"]


async def test_idle_workers_are_stopped_after_idle_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker unused for idle_timeout seconds is stopped; the next call starts a new one."""

    async def pid_of_call(client: Any) -> int:
        reply = await client.invoke(FunctionName="crash")
        async with reply["Payload"] as stream:
            return int(json.loads(await stream.read())["pid"])

    async with (
        _runtime(tmp_path, ["crash"], idle_timeout=0.2) as rt,
        aio_client(rt.url) as client,
    ):
        started, _ = _spy_on_workers(monkeypatch)
        pid = await pid_of_call(client)
        assert [proc.pid for proc in started] == [pid]
        async with asyncio.timeout(10):
            await started[0].wait()  # stopped by the idle reaper
        assert await pid_of_call(client) != pid
        assert rt.stats.cold_starts["crash"] == 2


async def test_scripted_throttle_is_retried_by_the_adapter(tmp_path: Path) -> None:
    """A scripted 429 then a clean call: LambdaAdapter retries once and succeeds."""
    from module_sdk import ExecuteRequest, LambdaAdapter
    from module_sdk.local import FaultDecision
    from module_sdk.testing import FakeClock

    async with _runtime(tmp_path, ["echo"]) as rt:
        rt.script_faults("echo", FaultDecision(throttle=True, retry_after=0.25))
        clock = FakeClock()
        adapter = LambdaAdapter("echo", "us-east-1", "echo", endpoint_url=rt.url, clock=clock)
        request = ExecuteRequest("!echo", [], "u", "e", "c", "sess-429", "twitch")
        response = await adapter.execute_async(request)
        await adapter.aclose()
        assert rt.stats.faults["throttle"] == 1
        assert rt.stats.runs[("echo", "sess-429")] == 1
    assert response.success
    assert clock.sleeps and clock.sleeps[0] >= 0.25  # Retry-After is the floor


def _spy_on_workers(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], asyncio.Event]:
    """Record every worker process the runtime starts; the event is set at each start."""
    started: list[Any] = []
    spawned = asyncio.Event()
    real = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> Any:
        proc = await real(*args, **kwargs)
        started.append(proc)
        spawned.set()
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    return started, spawned


def _assert_reaped(processes: list[Any]) -> None:
    """Each worker has exited and its subprocess transport is closed (nothing left to leak)."""
    assert processes
    for proc in processes:
        assert proc.returncode is not None
        # asyncio warns "unclosed transport" when an open one is collected.
        assert proc._transport.is_closing()


async def test_worker_failing_init_is_reaped_before_close_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed after a failed init is waited for: its transport does not outlive stop."""
    from module_sdk.local._environments import FunctionPool, InitFailed, base_environment

    started, _ = _spy_on_workers(monkeypatch)
    (tmp_path / "broken.py").write_text("raise RuntimeError('no init')\n")
    pool = FunctionPool(FunctionSpec("broken", "broken.handler", tmp_path), base_environment())
    with pytest.raises(InitFailed):
        await pool.acquire()
    await pool.aclose()
    _assert_reaped(started)


async def test_worker_cancelled_in_init_is_reaped_before_close_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call cancelled while its worker starts: the worker is killed and reaped on stop."""
    from module_sdk.local._environments import FunctionPool, base_environment

    started, spawned = _spy_on_workers(monkeypatch)
    (tmp_path / "stuck.py").write_text(
        "import time\ntime.sleep(60)\n\ndef handler(event, context):\n    return 1\n"
    )
    pool = FunctionPool(FunctionSpec("stuck", "stuck.handler", tmp_path), base_environment())
    call = asyncio.ensure_future(pool.acquire())
    await spawned.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await pool.aclose()
    _assert_reaped(started)


async def test_a_file_without_handler_is_named_at_start_and_in_the_404(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A .py without handler is not a function: a warning at start-up says so, and calling
    it answers 404 with that reason (a helper module a handler names is not warned about)."""
    from module_sdk import ExecuteRequest, LambdaAdapter

    (tmp_path / "dice.py").write_text(
        "from shared import roll\n\ndef handler(event, context):\n    return roll()\n"
    )
    (tmp_path / "shared.py").write_text("def roll():\n    return {'success': True}\n")
    (tmp_path / "functions.toml").write_text('[functions.dice2]\nhandler = "shared.roll"\n')
    (tmp_path / "greet.py").write_text("def handle(event, context):\n    return {}\n")
    caplog.set_level(logging.WARNING, logger="module_sdk.local")
    runtime = LocalLambdaRuntime(tmp_path)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "greet.py was skipped: it defines no top-level handler" in warned[0]
    async with runtime as rt:
        request = ExecuteRequest("!hi", [], "u", "e", "c", "s", "twitch")
        async with LambdaAdapter("greet", "us-east-1", "greet", endpoint_url=rt.url) as adapter:
            response = await adapter.execute_async(request)
    assert response.error_code == "not_found"
    assert response.error is not None and "greet.py was skipped" in response.error
    assert "def handler(event, context):" in response.error
