"""docs/write-a-module.md, run as written: every file it shows and every command it runs.

Ports are the only change: the documented 3001 and 8000 become free ports (``--port 0``; the
URLs the servers print replace the documented ones in later commands).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "write-a-module.md"
STEP_RE = re.compile(r"<!-- tutorial: (shell|file (\S+)) -->\n```\w*\n(.*?)```", re.S)
SERVING_RE = re.compile(r" on (http://127\.0\.0\.1:\d+)")
TIMEOUT = 300


def tutorial_steps() -> list[tuple[str, str, str]]:
    """(kind, path, body) of each marked block, in order."""
    return [
        ("file" if path else "shell", path, body)
        for _, path, body in STEP_RE.findall(DOC.read_text(encoding="utf-8"))
    ]


class Background:
    """A documented `... &` command: started, its URL read from its stderr, stopped at the end."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.url = ""
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            found = SERVING_RE.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait_url(self) -> str:
        self._ready.wait(TIMEOUT)
        assert self.url, "".join(self.lines)
        return self.url

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        finally:
            self._reader.join(TIMEOUT)
            if self.process.stderr is not None:
                self.process.stderr.close()


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    """new, the function, its tests, the local runtime and serve answering the router."""
    steps = tutorial_steps()
    assert [kind for kind, _, _ in steps] == ["shell", "file", "file", "shell", "shell", "shell"]
    bin_dir = str(Path(sys.executable).parent)  # this environment's waddlebot-lambda, pytest
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AWS_", "SERVICE_"))}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    cwd = tmp_path
    urls: dict[str, str] = {}
    background: list[Background] = []
    outputs: list[tuple[str, str]] = []

    def real(text: str) -> str:
        for documented, actual in urls.items():
            text = text.replace(documented, actual)
        return text

    try:
        for kind, path, body in steps:
            if kind == "file":
                (cwd / path).write_text(body, encoding="utf-8")
                continue
            for line in body.splitlines():
                if line.startswith("cd "):
                    cwd = cwd / line.removeprefix("cd ")
                elif line.startswith("export "):
                    for pair in shlex.split(line.removeprefix("export ")):
                        name, _, value = pair.partition("=")
                        env[name] = real(value)
                elif line.endswith(" &"):
                    argv = shlex.split(line.removesuffix(" &"))
                    port = argv[argv.index("--port") + 1]
                    argv[argv.index("--port") + 1] = "0"
                    server = Background(argv, cwd, env)
                    background.append(server)
                    urls[f"http://127.0.0.1:{port}"] = server.wait_url()
                else:
                    result = subprocess.run(  # noqa: S602 (the documented command, as a user types it)
                        real(line),
                        shell=True,
                        cwd=cwd,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=TIMEOUT,
                    )
                    assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
                    outputs.append((line.split()[0], result.stdout))
    finally:
        for server in background:
            server.stop()

    commands = [command for command, _ in outputs]
    assert commands == ["waddlebot-lambda", "pytest", "pytest", "waddlebot-lambda", "curl"]
    assert "3 passed" in outputs[1][1]  # the scaffold's own tests
    assert "3 passed" in outputs[2][1]  # the tutorial's tests
    assert "Tokyo: 18 C" in outputs[3][1]
    answer = json.loads(outputs[4][1])
    assert answer["success"] is True and answer["message"] == "New York: 8 C"
    assert answer["module"] == "weather" and answer["data"]["celsius"] == 8


@pytest.mark.parametrize("name", ["functions/weather.py", "tests/test_weather.py"])
def test_the_tutorial_files_compile(name: str) -> None:
    """The files the tutorial shows compile (a typo there fails here first)."""
    body = next(body for kind, path, body in tutorial_steps() if path == name)
    compile(body, name, "exec")
