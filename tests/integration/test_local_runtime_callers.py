"""The local runtime against a browser: unsigned or foreign-Host calls run nothing; functions
see only their own environment; hostile client contexts are a 400."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest

from module_sdk.cli import _local
from module_sdk.local import LocalLambdaRuntime
from module_sdk.local._caller import is_loopback
from support.local import SIGNED, aio_client

ENV_HANDLER = """
import os

def handler(event, context):
    return dict(os.environ)
"""


def functions(tmp_path: Path) -> Path:
    directory = tmp_path / "fns"
    directory.mkdir()
    (directory / "env.py").write_text(ENV_HANDLER)
    (directory / "functions.toml").write_text(
        '[functions.env]\nenvironment = { GREETING = "hello" }\n'
    )
    return directory


async def raw_post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/2015-03-31/functions/env/invocations", data=b"{}", headers=headers
        ) as reply,
    ):
        return reply.status, dict(reply.headers), await reply.read()


async def test_a_browser_style_post_runs_nothing(tmp_path: Path) -> None:
    async with LocalLambdaRuntime(functions(tmp_path)) as rt:
        status, headers, _ = await raw_post(
            rt.url, {"Content-Type": "text/plain", "Origin": "http://evil.example"}
        )
        assert status == 403
        assert headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
        assert rt.stats.invocations["env"] == 0
        assert "Access-Control-Allow-Origin" not in headers


async def test_a_foreign_host_runs_nothing(tmp_path: Path) -> None:
    async with LocalLambdaRuntime(functions(tmp_path)) as rt:
        status, headers, _ = await raw_post(rt.url, {**SIGNED, "Host": "evil.example"})
        assert status == 403
        assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
        status, _, _ = await raw_post(rt.url, {**SIGNED, "Host": "localhost:3001"})
        assert status == 200  # a loopback name with any port is fine
        assert rt.stats.invocations["env"] == 1


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:3001", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("app.localhost:80", True),
        ("[::1]:3001", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.0.0.5:3001", False),
        ("evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_loopback_names(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_functions_do_not_inherit_the_runtime_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_API_KEY", "runtime-secret-service-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "runtime-secret-access-key")
    monkeypatch.setenv("SOMETHING_ELSE", "of the shell")
    async with (
        LocalLambdaRuntime(functions(tmp_path), environment={"SHARED": "given"}) as rt,
        aio_client(rt.url) as client,
    ):
        response = await client.invoke(FunctionName="env", Payload=b"{}")
        async with response["Payload"] as stream:
            env = json.loads(await stream.read())
    assert "SERVICE_API_KEY" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "SOMETHING_ELSE" not in env
    assert env["GREETING"] == "hello"  # functions.toml
    assert env["SHARED"] == "given"  # environment=
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env"
    assert env["AWS_REGION"] == "us-east-1"
    assert "PATH" in env


async def test_a_deeply_nested_client_context_is_400(tmp_path: Path) -> None:
    nested = "[" * 1300 + "]" * 1300
    context = base64.b64encode(nested.encode()).decode()
    async with LocalLambdaRuntime(functions(tmp_path)) as rt:
        status, headers, body = await raw_post(rt.url, {**SIGNED, "X-Amz-Client-Context": context})
        assert status == 400
        assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
        assert b"RecursionError" not in body
        assert rt.stats.invocations["env"] == 0


def test_the_command_line_defaults_to_a_small_concurrency_limit() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    _local.register(parser.add_subparsers())
    args = parser.parse_args(["local", "--functions", "x"])
    assert args.concurrency_limit == _local.CLI_CONCURRENCY_LIMIT <= 16
    assert args.env == []


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("NOT_SET_IN_THIS_SHELL_0451", "this shell has no NOT_SET_IN_THIS_SHELL_0451"),
        ("=x", "use NAME"),
    ],
)
def test_env_options_name_their_problem(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
    problem: str,
) -> None:
    from module_sdk.cli import main

    monkeypatch.delenv("NOT_SET_IN_THIS_SHELL_0451", raising=False)
    status = main(["local", "--functions", str(functions(tmp_path)), "--env", option])
    assert status == 2
    assert problem in capsys.readouterr().err
