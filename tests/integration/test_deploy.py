"""The container files: the Dockerfile's entrypoint and health check run in this virtual
environment, and the compose example and its modules.toml agree with them."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from module_sdk.server import load_config
from module_sdk.testing import ScriptedLambdaServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def instructions() -> dict[str, str]:
    """The Dockerfile's instructions of the final stage (continuation lines joined)."""
    found: dict[str, str] = {}
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found[word] = rest.strip()
    return found


def exec_form(value: str) -> list[str]:
    """A JSON-array instruction (``["a", "b"]``)."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(v, str) for v in parsed)
    return parsed


def compose() -> Any:
    """deploy/compose.yaml, parsed."""
    yaml = importlib.import_module("yaml")
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    """USER is a numeric non-root id; HEALTHCHECK probes /health; the base is slim Python."""
    found = instructions()
    assert found["USER"].isdigit() and int(found["USER"]) >= 1000
    assert "/health" in found["HEALTHCHECK"]
    assert found["FROM"].startswith("python:") and "slim" in found["FROM"]


def test_compose_sets_the_key_on_both_sides_and_mounts_the_config() -> None:
    """SERVICE_API_KEY on the router and the server; the mount is where CMD reads."""
    services = compose()["services"]
    router, server = services["router"], services["lambda-modules"]
    assert "SERVICE_API_KEY" in router["environment"]
    assert router["environment"]["SERVICE_API_KEY"] == server["environment"]["SERVICE_API_KEY"]
    config_path = exec_form(instructions()["CMD"])[1]
    assert any(v.split(":")[1] == config_path for v in server["volumes"])
    assert server["environment"]["REDIS_URL"].startswith("redis://redis:")
    grace = load_config(ROOT / "deploy" / "modules.toml", env={}).shutdown_grace
    assert int(server["stop_grace_period"].rstrip("s")) > grace


def test_the_example_modules_toml_is_valid() -> None:
    """deploy/modules.toml loads; the router timeout matches the compose file's."""
    config = load_config(ROOT / "deploy" / "modules.toml", env={"SERVICE_API_KEY": "k"})
    assert [m.name for m in config.modules] == ["dice", "raffle"]
    timeout = compose()["services"]["router"]["environment"]["ROUTER_REQUEST_TIMEOUT"]
    assert config.router_timeout == float(timeout)


async def test_the_entrypoint_serves_and_the_health_check_passes(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD (the mounted path swapped for a local file) serve; HEALTHCHECK's
    command exits 0 against it; SIGTERM ends it with status 0."""
    found = instructions()
    entrypoint, cmd = exec_form(found["ENTRYPOINT"]), exec_form(found["CMD"])
    async with ScriptedLambdaServer() as scripted:
        config = tmp_path / "modules.toml"
        text = (ROOT / "deploy" / "modules.toml").read_text(encoding="utf-8")
        config.write_text(
            text.replace("[aws]\n", f'[aws]\nendpoint_url = "{scripted.url}"\n'),
            encoding="utf-8",
        )
        argv = [str(BIN / entrypoint[0]), *entrypoint[1:], cmd[0], str(config)]
        argv += ["--host", "127.0.0.1", "--port", "0"]  # this machine's port 8000 may be taken
        env = {
            **os.environ,
            "SERVICE_API_KEY": "compose-test-key-0123456789abcdef",
            "PYTHONUNBUFFERED": "1",
        }
        process = await asyncio.create_subprocess_exec(
            *argv, stderr=asyncio.subprocess.PIPE, env=env
        )
        try:
            assert process.stderr is not None
            while True:
                line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
                assert line, "the server exited before its banner"
                if "waddlebot-lambda: serving" in line:
                    break
            port = line.split("http://127.0.0.1:", 1)[1].split()[0]
            check = exec_form(found["HEALTHCHECK"].split("CMD", 1)[1].strip())
            probe = await asyncio.create_subprocess_exec(
                str(BIN / check[0]), *[a.replace(":8000/", f":{port}/") for a in check[1:]]
            )
            assert await asyncio.wait_for(probe.wait(), 30) == 0
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
