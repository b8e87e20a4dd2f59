"""``waddlebot-lambda new``: scaffold a module (function, settings, server entry, tests)."""

from __future__ import annotations

import argparse
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = ["RUNTIMES", "register", "scaffold"]

RUNTIMES = ("python3.12", "nodejs20.x")
"""The runtimes ``new`` scaffolds for (the first is the default)."""
_TEMPLATE_FOLDERS = {"python3.12": "python", "nodejs20.x": "nodejs"}

# A module name (letters, digits, '_', '-'), starting with a letter so that the Python file
# and the chat command read well; 64 characters at most, Lambda's function-name limit.
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def register(subparsers: Any) -> None:
    """Add the ``new`` subcommand."""
    parser = subparsers.add_parser(
        "new",
        help="scaffold a module: its function, functions.toml, modules.toml entry and tests",
        description=(
            "Create a folder holding a WaddleBot module run as a Lambda function: the "
            "function (answering !NAME), its functions.toml entry for the local runtime, a "
            "modules.toml entry for the module server, and tests that pass at once with "
            "`pytest` in the folder (the fixtures come with this SDK)."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="the module name (letters, digits, _ or -)")
    parser.add_argument(
        "--dir", metavar="DIR", help="the folder to create (default: ./NAME); must be empty"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=RUNTIMES[0],
        help=f"the function's Lambda runtime (default: {RUNTIMES[0]})",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    target = Path(args.dir) if args.dir else Path(args.name)
    created = scaffold(args.name, target, runtime=args.runtime)
    print(f"created the {args.name} module ({args.runtime}) in {target}/:")
    for path in created:
        print(f"  {path.relative_to(target)}")
    print(f"next: cd {target} && pytest")
    return 0


def scaffold(name: str, target: Path, *, runtime: str = RUNTIMES[0]) -> list[Path]:
    """Write the module's files under ``target``; return their paths.

    Raises:
        CommandError: a bad name or runtime, or ``target`` exists and is not an empty folder.
    """
    from module_sdk.cli import CommandError

    if not _NAME_RE.fullmatch(name):
        raise CommandError(
            f"module name {name!r} is invalid: start with a letter, then use letters, digits, "
            "'_' or '-' (at most 64 characters), for example 'quote' or 'dad-jokes'"
        )
    if runtime not in RUNTIMES:
        raise CommandError(f"runtime {runtime!r} is not supported: use {' or '.join(RUNTIMES)}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CommandError(
            f"{target} already exists and is not an empty folder: choose another --dir "
            "(nothing was written)"
        )
    values = {
        "name": name,
        "module": name.replace("-", "_"),
        "command": f"!{name}",
        "runtime": runtime,
    }
    templates = resources.files("module_sdk.cli") / "templates" / _TEMPLATE_FOLDERS[runtime]
    files = dict(_templates(templates, Path()))
    created: list[Path] = []
    for relative, template in sorted(files.items()):
        path = target / _fill(str(relative).replace("__module__", "{{module}}"), values)
        path = path.with_name(path.name.replace("__name__", name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        created.append(path)
    return created


def _templates(folder: Traversable, prefix: Path) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            found.extend(_templates(entry, prefix / entry.name))
        elif entry.name.endswith(".tmpl"):
            found.append((prefix / entry.name.removesuffix(".tmpl"), entry))
    return found


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text
