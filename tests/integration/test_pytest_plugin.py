"""The pytest plugin's fixtures: in-process calls, the local runtime, adapters, the server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from module_sdk.handler import Event, Reply, ReplyError, module_handler
from module_sdk.pytest_plugin import (
    AdapterFactory,
    HandlerCall,
    RouterClient,
    RuntimeHandle,
    _Background,
    _modules_table,
    command_request,
)

WEATHER = """
from module_sdk.handler import Event, Reply, ReplyError, module_handler

@module_handler
def handler(event: Event, context: object) -> Reply:
    if not event.args:
        raise ReplyError("usage: !weather CITY")
    city = " ".join(event.args)
    return Reply.text(
        f"Sunny in {city}", words=list(event.args), user=event.user.id, platform=event.platform
    )
"""

# An async def handler, run by the local runtime's worker as AWS's runtime would run it.
ASYNC_WEATHER = """
import asyncio

from module_sdk.handler import Event, Reply, module_handler

@module_handler
async def handler(event: Event, context: object) -> Reply:
    await asyncio.sleep(0)
    return Reply.text(f"async {event.text}")
"""

MODULES = """
[aws]
region = "eu-west-1"
function_prefix = "waddlebot-"   # production naming; the fixture serves local names

[[modules]]
name = "weather"
commands = ["!weather", "!w"]
"""


@pytest.fixture
def waddlebot_functions_dir(tmp_path: Path) -> Path:
    """A functions folder holding one handler written with module_sdk.handler."""
    folder = tmp_path / "functions"
    folder.mkdir()
    (folder / "weather.py").write_text(WEATHER, encoding="utf-8")
    (folder / "async_weather.py").write_text(ASYNC_WEATHER, encoding="utf-8")
    return folder


@pytest.fixture
def waddlebot_modules_file(tmp_path: Path) -> Path:
    """A modules.toml naming the function with a production prefix."""
    path = tmp_path / "modules.toml"
    path.write_text(MODULES, encoding="utf-8")
    return path


@module_handler
def weather(event: Event, context: object) -> Reply:
    if not event.args:
        raise ReplyError("usage: !weather CITY")
    return Reply.text(f"Sunny in {' '.join(event.args)}").to(event.platform)


@module_handler
async def slow_weather(event: Event, context: object) -> Reply:
    await asyncio.sleep(0)
    return Reply.text(f"{event.command}: {event.args[0]}")


def test_in_process_call(waddlebot_call: HandlerCall) -> None:
    """The handler gets the adapter's event, args split like the module server splits them."""
    reply = waddlebot_call(weather, "!weather", '"New York"')
    assert reply["message"] == "Sunny in New York" and reply["targets"] == ["twitch"]
    response = waddlebot_call.response(weather, "!weather")
    assert not response.success and response.error == "usage: !weather CITY"
    event = waddlebot_call.event("!weather", ["a b"], user_id="ann", platform="discord")
    assert event["trigger"]["context_text"] == '"a b"'
    assert event["user"] == {
        "id": "ann",
        "username": None,
        "platform": "discord",
        "platform_user_id": "ann",
    }
    assert event["request_id"].startswith("sess_") and len(event["request_id"]) == 37


async def test_in_process_call_of_an_async_handler(waddlebot_call: HandlerCall) -> None:
    """An async def handler is run to completion, even from inside an async test."""
    assert waddlebot_call(slow_weather, "!weather", "Oslo")["message"] == "!weather: Oslo"


def test_in_process_call_fails_on_a_reply_that_is_not_json(waddlebot_call: HandlerCall) -> None:
    """A plain handler returning something Lambda cannot send fails the call."""
    with pytest.raises(TypeError, match="not JSON serializable"):
        waddlebot_call(lambda event, context: {"success": True, "x": {1, 2}}, "!x")


def test_runtime_serves_the_functions_folder(waddlebot_runtime: RuntimeHandle) -> None:
    """The runtime answers the Lambda Invoke API on a free port with the real handler."""
    assert waddlebot_runtime.url.startswith("http://127.0.0.1:")
    event = HandlerCall().event("!weather", "Paris")
    reply = waddlebot_runtime.invoke("weather", event)
    assert reply["message"] == "Sunny in Paris" and reply["user"] == "viewer-1"
    assert waddlebot_runtime.runtime.stats.invocations["weather"] == 1
    assert waddlebot_runtime.invoke("async_weather", event)["message"] == "async Paris"


def test_adapter_against_the_runtime(waddlebot_adapter: AdapterFactory) -> None:
    """An adapter pointed at the runtime gets the normalized response."""
    weather_module = waddlebot_adapter("weather")
    response = weather_module.execute("!weather", '"Rio de Janeiro"', user_id="u9")
    assert response.success and response.message == "Sunny in Rio de Janeiro"
    assert response.data is not None and response.data["words"] == ["Rio de Janeiro"]
    failed = weather_module.execute("!weather")
    assert not failed.success and failed.error_code == "module_error"
    missing = waddlebot_adapter("nope").execute("!nope")
    assert not missing.success and missing.error_code == "not_found"


def test_server_in_front_answers_like_a_module(waddlebot_server: RouterClient) -> None:
    """The router's request reaches the function through the module server (real HTTP)."""
    answer = waddlebot_server.execute("!w", '"New York" tomorrow', user_id="viewer-7")
    assert answer["success"] and answer["message"] == "Sunny in New York tomorrow"
    # The router sends no platform (the server's default_platform applies); extra fields add it.
    assert answer["data"]["user"] == "viewer-7" and answer["data"]["platform"] == "unknown"
    on_discord = waddlebot_server.execute("!weather", "Oslo", platform="discord")
    assert on_discord["data"]["platform"] == "discord"
    assert answer["module"] == "weather" and answer["session_id"].startswith("sess_")
    assert answer["data"]["words"] == ["New York", "tomorrow"]
    status, body = waddlebot_server.post("/api/v1/execute", {"command": "!unknown"})
    assert status in (400, 404) and body["success"] is False
    no_key = urllib.request.Request(waddlebot_server.url + "/api/v1/modules")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(no_key, timeout=30)
    refused.value.close()
    assert refused.value.code == 401


def test_without_a_modules_file_each_function_is_a_module(
    tmp_path: Path, waddlebot_functions_dir: Path
) -> None:
    """With no modules.toml, every function file is a module answering !<name>."""
    (waddlebot_functions_dir / "_helpers.py").write_text("", encoding="utf-8")
    table = _modules_table(tmp_path / "absent.toml", waddlebot_functions_dir)
    assert table == {
        "modules": [
            {"name": "async_weather", "commands": ["!async_weather"]},
            {"name": "weather", "commands": ["!weather"]},
        ]
    }


def test_background_loop_is_stopped_and_closed() -> None:
    """The fixtures' loop thread ends and its loop closes at teardown."""
    background = _Background()
    assert background.run(asyncio.sleep(0, result=42)) == 42
    background.close()
    assert background.loop.is_closed()
    assert not any(t.name == "waddlebot-fixtures" for t in threading.enumerate())


def test_command_request_defaults() -> None:
    """Router-style defaults: a fresh sess_ id each time, args split like the server."""
    first, second = command_request("!a", "x 'y z'"), command_request("!a")
    assert first.args == ["x", "y z"] and second.args == []
    assert first.session_id != second.session_id


def test_loading_the_plugin_imports_no_aws_or_http_library() -> None:
    """pytest loads the plugin in every project: it imports aiobotocore/aiohttp only when used."""
    probe = (
        "import sys, module_sdk.pytest_plugin\n"
        "heavy = ('aiobotocore', 'botocore', 'aiohttp')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
