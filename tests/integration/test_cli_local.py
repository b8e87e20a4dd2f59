"""The ``invoke``, ``local`` and ``demo`` subcommands, in-process and as the installed script."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLES
from module_sdk.cli import main
from module_sdk.local import FaultDecision
from support.local import RuntimeThread, boto3_client

FUNCTIONS = EXAMPLES / "functions"


@pytest.fixture(scope="module")
def runtime() -> Iterator[RuntimeThread]:
    """The example functions on a runtime in a background thread (the CLI runs its own loop)."""
    with RuntimeThread(FUNCTIONS) as thread:
        yield thread


def test_invoke_prints_a_readable_response(
    runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chat command goes through LambdaAdapter and prints the normalized response."""
    status = main(
        [
            "invoke",
            "dice",
            "--command",
            "!roll",
            "2d6",
            "--username",
            "bob",
            "--endpoint-url",
            runtime.url,
            "--session-id",
            "cli-test-1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("dice: OK after 1 attempt(s)\n")
    assert re.search(r"message: bob rolled 2d6: \d \+ \d = \d+", out)


def test_invoke_json_output(runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the ExecuteResponse fields plus attempts and duration."""
    status = main(
        [
            "invoke",
            "weather",
            "--command",
            "!weather",
            "Tokyo",
            "--json",
            "--endpoint-url",
            runtime.url,
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["success"] is True
    assert document["message"] == "Tokyo: 18 C, clear sky"
    assert document["diagnostics"]["status_code"] == 200
    assert document["attempts"] == 1
    assert document["error_code"] is None


def test_invoke_function_error_exits_1(
    runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed call exits 1 and shows the error."""
    status = main(["invoke", "points", "--command", "!points", "--endpoint-url", runtime.url])
    out = capsys.readouterr().out
    assert status == 1
    assert "points: FAILED (function_error)" in out
    assert "ConnectionError: points database" in out


def test_invoke_an_event(runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]) -> None:
    """--event-type and --event-data build an event trigger."""
    status = main(
        [
            "invoke",
            "greet",
            "--command",
            "subscription",
            "--event-type",
            "subscription",
            "--event-data",
            '{"months": 3}',
            "--username",
            "kim",
            "--endpoint-url",
            runtime.url,
        ]
    )
    assert status == 0
    assert "kim just subscribed for 3 month(s)" in capsys.readouterr().out


def test_invoke_event_invocation_type(
    runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """--invocation-type Event queues the call (202)."""
    status = main(
        [
            "invoke",
            "greet",
            "--command",
            "!hello",
            "--invocation-type",
            "Event",
            "--endpoint-url",
            runtime.url,
        ]
    )
    assert status == 0
    assert "message: Lambda function queued" in capsys.readouterr().out


def test_invoke_unknown_function_exits_1(
    runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing function is a clean failure (not_found), not a traceback."""
    status = main(["invoke", "ghost", "--command", "!boo", "--endpoint-url", runtime.url])
    captured = capsys.readouterr()
    assert status == 1
    assert "FAILED (not_found)" in captured.out
    assert "Traceback" not in captured.err
    # Said once (the printed response), not again as the adapter's ERROR log line.
    assert "Lambda invocation error" not in captured.err


def test_invoke_log_tail(runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]) -> None:
    """--log-tail prints the function's log after the response."""
    status = main(
        ["invoke", "greet", "--command", "!hello", "--log-tail", "--endpoint-url", runtime.url]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "log tail:" in out
    assert re.search(r"\| \[INFO\]\t\S+\t\S+\tgreeted cli-user", out)
    assert "| REPORT RequestId:" in out


def test_invoke_verbose_shows_attempts_retries_and_the_log_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--verbose prints each attempt, the retry delay and reason, and the log tail."""
    with RuntimeThread(FUNCTIONS) as rt:
        rt.runtime.script_faults("dice", FaultDecision(throttle=True, retry_after=0))
        status = main(
            ["invoke", "dice", "--command", "!roll", "d20", "--verbose", "--endpoint-url", rt.url]
        )
        assert rt.runtime.stats.faults["throttle"] == 1
    captured = capsys.readouterr()
    assert status == 0
    assert "dice: OK after 2 attempt(s)" in captured.out
    assert "   attempt 1\n" in captured.err and "   attempt 2\n" in captured.err
    assert re.search(
        r"attempt 1 failed: TooManyRequestsException \(throttled\).*retrying in \d\.\d\ds",
        captured.err,
    )
    assert "log tail:" in captured.err and "START RequestId:" in captured.err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["invoke", "dice", "--command", "!roll", "--metadata", "{bad"], "--metadata is not"),
        (["invoke", "dice", "--command", "!roll", "--metadata", "[1]"], "must be a JSON object"),
        (["invoke", "dice", "--command", "!roll", "--max-retries", "-1"], "--max-retries -1"),
        (["local", "--functions", "/nonexistent/functions"], "does not exist"),
        (["local", "--functions", ".", "--port", "70000"], "--port 70000 is invalid"),
        (["demo", "--functions", "/nonexistent/functions"], "no such directory"),
    ],
    ids=["bad-json", "json-list", "negative-retries", "missing-dir", "bad-port", "demo-dir"],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input exits 2 with one line on stderr and no traceback."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("waddlebot-lambda: error: ")
    assert expected in err
    assert err.count("\n") == 1


def test_local_refuses_a_directory_without_functions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty functions directory is an error that says what to add."""
    status = main(["local", "--functions", str(tmp_path)])
    assert status == 2
    assert "no functions in" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["invoke", "local", "demo"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every subcommand has --help."""
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: waddlebot-lambda {command}" in capsys.readouterr().out


def test_demo_runs_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo drives every scenario as expected and exits 0."""
    status = main(["demo"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "All 13 scenarios behaved as expected" in out
    assert "raffle #2 (throttled)" in out and "Sandbox.Timedout" in out
    assert "Adapter health" in out


def test_installed_script_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`waddlebot-lambda local` serves the Invoke API and exits 0 on SIGTERM, workers gone."""
    script = Path(sys.executable).with_name("waddlebot-lambda")
    (tmp_path / "pid.py").write_text(
        "import os\n\ndef handler(event, context):\n    return {'pid': os.getpid()}\n"
    )
    proc = subprocess.Popen(
        [str(script), "local", "--functions", str(tmp_path), "--port", "0", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        match = re.match(r"waddlebot-lambda: serving on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        client = boto3_client(match.group(1))
        reply = client.invoke(FunctionName="pid", Payload=b"{}")
        pid = json.loads(reply["Payload"].read())["pid"]
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_invoke_uses_the_standard_aws_configuration(
    runtime: RuntimeThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --endpoint-url or --region, botocore's environment settings apply."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", runtime.url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    status = main(["invoke", "eightball", "--command", "!8ball", "ready?", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["message"].startswith("8-ball: ")


@pytest.mark.parametrize("how", ["--endpoint-url", "AWS_ENDPOINT_URL_LAMBDA"])
def test_invoke_a_local_endpoint_without_aws_credentials(
    how: str,
    runtime: RuntimeThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No credentials, no region: a loopback endpoint still answers (stand-in credentials)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    argv = ["invoke", "dice", "--command", "!roll", "d6"]
    if how == "--endpoint-url":
        argv += ["--endpoint-url", runtime.url]
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", runtime.url)
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.startswith("dice: OK after 1 attempt(s)\n")


def test_invoke_names_an_endpoint_without_its_scheme(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--endpoint-url 127.0.0.1:3001`` names the missing scheme (not the region)."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    status = main(["invoke", "dice", "--command", "!roll", "--endpoint-url", "127.0.0.1:3001"])
    err = capsys.readouterr().err
    assert status == 2
    assert "needs its scheme" in err and "--endpoint-url http://127.0.0.1:3001" in err
    assert "region" not in err


def test_local_reload_applies_a_saved_edit(tmp_path: Path) -> None:
    """`waddlebot-lambda local --reload` prints what it reloaded; the next call runs the edit."""
    pytest.importorskip("watchfiles", reason="--reload needs watchfiles")
    script = Path(sys.executable).with_name("waddlebot-lambda")
    handler = tmp_path / "version.py"
    handler.write_text("def handler(event, context):\n    return {'version': 1}\n")
    proc = subprocess.Popen(
        [str(script), "local", "--functions", str(tmp_path), "--port", "0", "--quiet", "--reload"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        match = re.match(r"waddlebot-lambda: serving on (\S+)", proc.stderr.readline())
        assert match
        client = boto3_client(match.group(1))
        assert json.loads(client.invoke(FunctionName="version")["Payload"].read()) == {"version": 1}
        lines: queue.Queue[str] = queue.Queue()
        stderr = proc.stderr

        def read() -> None:
            try:
                for text in iter(stderr.readline, ""):
                    lines.put(text)
            except (ValueError, OSError):  # closed by the test's cleanup
                return

        threading.Thread(target=read, daemon=True).start()
        handler.write_text("def handler(event, context):\n    return {'version': 2}\n")
        line = ""
        while not line.startswith("reload: "):
            line = lines.get(timeout=30)  # the watcher reports within a second
        assert line == "reload: restarted version\n"
        assert json.loads(client.invoke(FunctionName="version")["Payload"].read()) == {"version": 2}
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_invoke_shows_targets_once(
    runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """The human output lists targets on one line, not again among the function's keys."""
    status = main(["invoke", "greet", "--command", "!hello", "--endpoint-url", runtime.url])
    out = capsys.readouterr().out
    assert status == 0
    assert out.count("targets:") == 1, out


def test_failure_log_names_the_attempts_made(
    runtime: RuntimeThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure never retried is logged "after 1 attempt(s)", not "attempt 1/4"."""
    from module_sdk import ExecuteRequest, LambdaAdapter

    adapter = LambdaAdapter("ghost", "us-east-1", "ghost", endpoint_url=runtime.url)
    response = adapter.execute(ExecuteRequest("!boo", [], "u", "e", "c", "s", "twitch"))
    assert response.error_code == "not_found"
    (line,) = [
        r.getMessage() for r in caplog.records if "Lambda invocation error" in r.getMessage()
    ]
    assert "after 1 attempt(s)" in line and "/4" not in line


def test_port_in_use_names_the_address_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A taken port: which address, and how to choose another (not a bare [Errno 98])."""
    (tmp_path / "echo.py").write_text("def handler(event, context):\n    return event\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["local", "--functions", str(tmp_path), "--port", str(port)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in err
    assert "--port 0 picks a free one" in err and "Errno" not in err


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    """`waddlebot-lambda demo | head -1`: no "Broken pipe" error and no traceback."""
    script = Path(sys.executable).with_name("waddlebot-lambda")
    proc = subprocess.Popen(
        [str(script), "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its first line
    err = proc.stderr.read()
    proc.stderr.close()
    status = proc.wait(timeout=120)
    assert first.startswith("Local Lambda runtime on ")
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert status in (0, 1)


def test_the_documented_console_example_prints_what_the_docs_show(
    runtime: RuntimeThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/local-runtime.md's console example: the same lines, dice aside."""
    doc = (EXAMPLES.parent / "docs" / "local-runtime.md").read_text(encoding="utf-8")
    block = doc.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    shown = block[block.index(next(x for x in block if "invoke dice" in x)) + 1 :]
    shown = shown[: next(i for i, x in enumerate(shown) if x.startswith("$ "))]
    status = main(["invoke", "dice", "--command", "!roll", "2d6", "--endpoint-url", runtime.url])
    printed = capsys.readouterr().out.splitlines()
    assert status == 0

    def shape(line: str) -> str:
        return re.sub(r"\d+", "N", line)

    assert [shape(x) for x in printed] == [shape(x) for x in shown]
