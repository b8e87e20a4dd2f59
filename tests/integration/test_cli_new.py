"""`waddlebot-lambda new`: a scaffolded module whose tests pass at once with plain pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from module_sdk.cli import main
from module_sdk.local import load_functions
from module_sdk.server import load_config


def run_pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    """Plain `pytest` in the folder, as a module author would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_python_scaffold_passes_its_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`new quote-bot` writes the function, settings, server entry and tests; pytest passes."""
    target = tmp_path / "quote-bot"
    assert main(["new", "quote-bot", "--dir", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "functions/quote_bot.py" in printed and f"cd {target} && pytest" in printed
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "functions/functions.toml",
        "functions/quote_bot.py",
        "modules.toml",
        "pyproject.toml",
        "tests/test_quote_bot.py",
    ]
    spec = load_functions(target / "functions")["quote-bot"]
    assert spec.handler == "quote_bot.handler"
    config = load_config(target / "modules.toml", env={"SERVICE_API_KEY": "k"})
    assert config.modules[0].name == "quote-bot"
    assert config.modules[0].commands == ("!quote-bot",)
    result = run_pytest(target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def node_unsupported() -> str | None:
    """Why the local runtime cannot run Node.js functions on this machine, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    try:
        from module_sdk.local._api_environment import NODE_BOOTSTRAP
    except ImportError:
        return "this version's local runtime has no Runtime API environments"
    if not NODE_BOOTSTRAP.is_file():
        return "this version's local runtime has no Node.js bootstrap yet"
    return None


def test_nodejs_scaffold_passes_its_tests(tmp_path: Path) -> None:
    """The nodejs20.x scaffold: the function, its runtime entry, and tests that pass."""
    target = tmp_path / "jokes"
    assert main(["new", "jokes", "--dir", str(target), "--runtime", "nodejs20.x"]) == 0
    assert (target / "functions" / "jokes.mjs").is_file()
    spec = load_functions(target / "functions")["jokes"]
    assert (spec.runtime, spec.handler) == ("nodejs20.x", "jokes.handler")
    reason = node_unsupported()
    if reason:
        pytest.skip(reason)
    result = run_pytest(target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new", "9lives"], "module name '9lives' is invalid: start with a letter"),
        (["new", "a b"], "module name 'a b' is invalid"),
        (["new", "x" * 65], "at most 64 characters"),
    ],
    ids=["digit-first", "space", "too-long"],
)
def test_bad_names_are_refused(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name that cannot be a module is refused with the rule and an example."""
    assert main([*argv, "--dir", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_existing_folder_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A non-empty folder is never written into; an empty one is used."""
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    assert main(["new", "quote", "--dir", str(tmp_path)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["new", "quote", "--dir", str(empty)]) == 0
    assert (empty / "functions" / "quote.py").is_file()


def test_unknown_runtime_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the scaffolded runtimes are accepted (argparse names the choices)."""
    with pytest.raises(SystemExit) as exited:
        main(["new", "quote", "--runtime", "ruby3.3"])
    assert exited.value.code == 2
    assert "python3.12" in capsys.readouterr().err
