"""Every Python block in README.md and docs/*.md runs as written (Sybil), in document order.

The blocks of one document share a namespace, as a reader's session would. They run in a
temporary folder holding ``examples`` (the repository's) and the ``modules.toml`` that
docs/server.md shows (``SERVICE_API_KEY`` in the environment, as it advises), with
``AWS_ENDPOINT_URL_LAMBDA`` pointing at a local runtime serving the example functions (also as
``waddlebot-dice``, the README's prefixed name): the blocks written for AWS run unchanged
against it. docs/write-a-module.md has its own test
(tests/integration/test_docs_tutorial.py), which also runs its shell steps.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

from module_sdk.local import FunctionSpec
from support.local import RuntimeThread

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    path
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if path.name != "write-a-module.md" and "```python" in path.read_text(encoding="utf-8")
]
TOML_RE = re.compile(r"```toml\n(.*?)```", re.S)


@pytest.fixture(scope="module")
def runtime() -> Iterator[RuntimeThread]:
    """The example functions, plus ``waddlebot-dice`` for the README's prefixed name."""
    examples = ROOT / "examples" / "functions"
    prefixed = FunctionSpec("waddlebot-dice", "dice.handler", examples)
    with RuntimeThread(examples, functions=[prefixed]) as thread:
        yield thread


@pytest.mark.parametrize("document", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_python_blocks_run_as_written(
    document: Path,
    runtime: RuntimeThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", runtime.url)
    # docs/server.md's modules.toml leaves the key to the environment, as it advises
    monkeypatch.setenv("SERVICE_API_KEY", secrets.token_urlsafe(32))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    server_doc = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    (tmp_path / "modules.toml").write_text(TOML_RE.findall(server_doc)[0], encoding="utf-8")
    parsed = Sybil(parsers=[PythonCodeBlockParser()], path=str(ROOT)).parse(document)
    examples = list(parsed)
    assert examples, f"no Python block found in {document.name}"
    for example in examples:
        try:
            example.evaluate()
        except Exception as exc:
            raise AssertionError(
                f"{document.name}, line {example.line}: the block fails as written: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    capsys.readouterr()
