"""The built wheel: what an installed package needs is in it (the demo's example functions)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel, the way ``pip wheel .`` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{build.stderr[-2000:]}")
    (built,) = out.glob("waddlebot_module_sdk-*.whl")
    return built


def test_wheel_ships_the_example_functions_and_license(wheel: Path) -> None:
    """The example functions (package data) and the license travel with the wheel."""
    examples = sorted(p.name for p in (ROOT / "examples" / "functions").iterdir() if p.is_file())
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert {f"module_sdk/_examples/{name}" for name in examples} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in text
    assert "Project-URL: " in text


def test_demo_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """``waddlebot-lambda demo`` from the wheel, outside the source tree, finds its examples."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    code = (
        "import sys, module_sdk; from module_sdk.cli import main; "
        "print(module_sdk.__file__, file=sys.stderr); sys.exit(main(['demo']))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # no ./examples here
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(site) in result.stderr  # the wheel's copy ran, not the source tree's
    assert "dice" in result.stdout
