"""The ``waddlebot-lambda`` command line.

Each subcommand lives in its own module with ``register(subparsers)``; the parser's handler is
``args.func(args) -> int``. Errors are printed on one line without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from module_sdk import __version__
from module_sdk.errors import ModuleSDKError

__all__ = ["CommandError", "build_parser", "main"]

# Subcommand modules, in the order `--help` lists them.
_SUBCOMMANDS: tuple[str, ...] = ("serve", "dlq", "invoke", "local", "demo", "new")


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2 (or ``status``)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    """The full ``waddlebot-lambda`` parser."""
    parser = argparse.ArgumentParser(
        prog="waddlebot-lambda",
        description="Run, test and serve WaddleBot modules backed by AWS Lambda.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level for the SDK's own logs on stderr (default: WARNING)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"module_sdk.cli._{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``waddlebot-lambda``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        status: int = args.func(args)
    except CommandError as exc:
        print(f"waddlebot-lambda: error: {exc}", file=sys.stderr)
        return exc.status
    except (ModuleSDKError, ValueError, OSError) as exc:
        print(f"waddlebot-lambda: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status
