"""The ``waddlebot-lambda`` command line.

Each subcommand lives in its own module with ``register(subparsers)``; the parser's handler is
``args.func(args) -> int``. Errors are printed on one line without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import re
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _os_error_text(exc: OSError, args: argparse.Namespace) -> str:
    """An OSError in words, naming the address and the fix for the common ones."""
    if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and (
        "bind" in str(exc) or getattr(args, "port", None) is not None
    ):
        found = re.search(r"\('([^']*)', (\d+)\)", str(exc))
        if found:
            address = f"{found.group(1)}:{found.group(2)}"
        else:
            address = f"{getattr(args, 'host', None) or '?'}:{getattr(args, 'port', None) or '?'}"
        if exc.errno == errno.EADDRINUSE:
            return (
                f"cannot listen on {address}: the address is already in use (another server "
                "is running there): stop it, or choose another port with --port N "
                "(--port 0 picks a free one)"
            )
        if exc.errno == errno.EACCES:
            return (
                f"cannot listen on {address}: permission denied (ports below 1024 need "
                "root): choose a port of 1024 or more with --port N"
            )
        return (
            f"cannot listen on {address}: this machine has no such address: "
            "choose another with --host (127.0.0.1, or 0.0.0.0 for every interface)"
        )
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``waddlebot-lambda``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        status: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        _silence_stdout()
        return 1
    except CommandError as exc:
        print(f"waddlebot-lambda: error: {exc}", file=sys.stderr)
        return exc.status
    except OSError as exc:
        print(f"waddlebot-lambda: error: {_os_error_text(exc, args)}", file=sys.stderr)
        return 2
    except (ModuleSDKError, ValueError) as exc:
        print(f"waddlebot-lambda: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status
