"""Hot reload: edits, new and removed files and functions.toml changes reach the running
runtime; a version that fails to load is reported and the old one keeps serving."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from module_sdk.local import LocalLambdaRuntime, ReloadReport
from support.local import aio_client
from support.runtime_api import needs_node

needs_watchfiles = pytest.mark.skipif(
    importlib.util.find_spec("watchfiles") is None,
    reason="hot reload needs watchfiles (pip install 'waddlebot-module-sdk[reload]')",
)


def _version(number: int, *, broken: bool = False) -> str:
    body = f"    return {{'version': {number}, 'pid': os.getpid()}}\n"
    if broken:
        body = "    return {'version': (\n"  # a syntax error
    return f"import os\n\ndef handler(event, context):\n{body}"


def _folder(tmp_path: Path) -> Path:
    directory = tmp_path / "fns"
    directory.mkdir()
    (directory / "echo.py").write_text(_version(1))
    (directory / "other.py").write_text("def handler(event, context):\n    return 'other'\n")
    return directory


async def _call(url: str, name: str) -> Any:
    async with aio_client(url) as client:
        response = await client.invoke(FunctionName=name, Payload=b"{}")
        async with response["Payload"] as stream:
            return json.loads(await stream.read())


async def test_edit_restarts_the_function_warm(tmp_path: Path) -> None:
    """After an edit the next call runs the new code in an environment started ahead of it."""
    directory = _folder(tmp_path)
    async with LocalLambdaRuntime(directory) as rt:
        before = await _call(rt.url, "echo")
        (directory / "echo.py").write_text(_version(2))
        report = await rt.reload({directory / "echo.py"})
        after = await _call(rt.url, "echo")
        assert rt.history[-1].cold_start is False  # warmed by the reload, not by the call
    assert before["version"] == 1 and after["version"] == 2
    assert before["pid"] != after["pid"]
    assert set(report.restarted) == {"echo", "other"}  # same folder: either may import it
    assert report.failed == {} and report.added == () and report.removed == ()


async def test_a_broken_edit_keeps_the_old_version_serving(tmp_path: Path) -> None:
    """A version that fails to load is reported; calls keep getting the old one."""
    directory = _folder(tmp_path)
    async with LocalLambdaRuntime(directory) as rt:
        await _call(rt.url, "echo")
        (directory / "echo.py").write_text(_version(2, broken=True))
        report = await rt.reload({directory / "echo.py"})
        still = await _call(rt.url, "echo")
    assert still["version"] == 1
    assert "echo" in report.failed
    assert report.failed["echo"].startswith("Runtime.UserCodeSyntaxError")


async def test_new_and_removed_files(tmp_path: Path) -> None:
    """A new handler file is a new function; a deleted one is gone (404)."""
    directory = _folder(tmp_path)
    async with LocalLambdaRuntime(directory) as rt:
        (directory / "fresh.py").write_text("def handler(event, context):\n    return 'fresh'\n")
        (directory / "other.py").unlink()
        report = await rt.reload({directory / "fresh.py", directory / "other.py"})
        fresh = await _call(rt.url, "fresh")
        async with aio_client(rt.url) as client:
            with pytest.raises(client.exceptions.ResourceNotFoundException):
                await client.invoke(FunctionName="other", Payload=b"{}")
    assert report.added == ("fresh",) and report.removed == ("other",)
    assert fresh == "fresh"


async def test_functions_toml_edits_and_errors(tmp_path: Path) -> None:
    """A settings change restarts the function; an invalid file changes nothing and says why."""
    directory = _folder(tmp_path)
    async with LocalLambdaRuntime(directory) as rt:
        (directory / "functions.toml").write_text("[functions.echo]\ntimeout = 7\n")
        report = await rt.reload({directory / "functions.toml"})
        assert rt.functions["echo"].timeout == 7
        (directory / "functions.toml").write_text("[functions.echo]\ntimeout = -1\n")
        bad = await rt.reload({directory / "functions.toml"})
        assert rt.functions["echo"].timeout == 7
        assert (await _call(rt.url, "echo"))["version"] == 1
    assert "echo" in report.restarted
    assert bad.error is not None and "timeout = -1 is invalid" in bad.error
    assert bad.restarted == () and bad.removed == ()


@needs_node
async def test_only_the_edited_code_folder_restarts(tmp_path: Path) -> None:
    """A file in a function's own code folder restarts that function only."""
    directory = _folder(tmp_path)
    (directory / "node").mkdir()
    (directory / "node" / "index.js").write_text("exports.handler = async () => 1;\n")
    (directory / "functions.toml").write_text(
        textwrap.dedent(
            """
            [functions.js]
            runtime = "nodejs20.x"
            code = "node"
            handler = "index.handler"
            """
        )
    )
    async with LocalLambdaRuntime(directory) as rt:
        assert await _call(rt.url, "js") == 1
        (directory / "node" / "index.js").write_text("exports.handler = async () => 2;\n")
        report = await rt.reload({directory / "node" / "index.js"})
        assert await _call(rt.url, "js") == 2
    assert report.restarted == ("js",)


@needs_watchfiles
async def test_watcher_applies_a_saved_edit(tmp_path: Path) -> None:
    """With reload=True a saved file is picked up by the watcher without any call from us."""
    directory = _folder(tmp_path)
    reports: list[ReloadReport] = []
    changed = asyncio.Event()

    def on_reload(report: ReloadReport) -> None:
        reports.append(report)
        if "echo" in report.restarted:
            changed.set()

    async with LocalLambdaRuntime(directory, reload=True, on_reload=on_reload) as rt:
        assert (await _call(rt.url, "echo"))["version"] == 1
        (directory / "echo.py").write_text(_version(3))
        async with asyncio.timeout(30):
            await changed.wait()
        assert (await _call(rt.url, "echo"))["version"] == 3
