"""``waddlebot-lambda local``: serve a directory of handlers on the Lambda Invoke API."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

__all__ = ["CLI_CONCURRENCY_LIMIT", "register"]

CLI_CONCURRENCY_LIMIT = 10
"""The command line's default concurrency limit: a developer's machine, not an AWS account."""


def register(subparsers: Any) -> None:
    """Add the ``local`` subcommand."""
    parser = subparsers.add_parser(
        "local",
        help="run Lambda functions locally behind the real Invoke API (no AWS, no Docker)",
        description=(
            "Serve every DIR/*.py defining handler(event, context) (and DIR/functions.toml) "
            "on POST /2015-03-31/functions/NAME/invocations, as AWS Lambda does. Point "
            "LambdaAdapter(endpoint_url=...), boto3 or aiobotocore at it. Handlers run in warm "
            "worker processes. Ctrl-C or SIGTERM stops it and its workers. "
            "See docs/local-runtime.md."
        ),
    )
    parser.add_argument(
        "--functions", required=True, metavar="DIR", help="directory of handler files"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=3001, help="TCP port (default: 3001; 0 picks a free port)"
    )
    parser.add_argument(
        "--concurrency-limit",
        type=int,
        default=CLI_CONCURRENCY_LIMIT,
        metavar="N",
        help=f"most simultaneous runs over all functions (default: {CLI_CONCURRENCY_LIMIT}; "
        "each may start a worker process of about 15 MB; Lambda's quota is 1000)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="give every function NAME (this shell's value, or VALUE); functions inherit "
        "nothing else of this shell's environment (repeatable)",
    )
    parser.add_argument(
        "--prewarm",
        type=int,
        default=0,
        metavar="N",
        help="start N warm workers per function before serving (default: 0)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="stop a worker unused for S seconds (default: 600; 0 keeps them)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not print a line and the log of each run"
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="watch DIR and apply every edit while serving: changed functions restart warm in "
        "the background, new and removed files and functions.toml edits are picked up, a "
        "version that fails to load is reported and the old one keeps serving (needs "
        "watchfiles: pip install 'waddlebot-module-sdk[reload]')",
    )
    faults = parser.add_argument_group("fault injection (rates are 0.0-1.0 per call)")
    faults.add_argument("--latency", type=float, default=0.0, metavar="S", help="extra seconds")
    faults.add_argument("--throttle-rate", type=float, default=0.0, metavar="R", help="429s")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="R", help="500s")
    faults.add_argument(
        "--drop-rate", type=float, default=0.0, metavar="R", help="dropped connections"
    )
    faults.add_argument(
        "--slow-rate", type=float, default=0.0, metavar="R", help="replies held --slow-seconds"
    )
    faults.add_argument("--slow-seconds", type=float, default=5.0, metavar="S")
    faults.add_argument("--seed", default=None, help="make the injected faults repeatable")
    parser.set_defaults(func=_run)


def _print_run(record: Any) -> None:
    print(
        f"{record.function}  {record.invocation_type}  {record.outcome}  "
        f"{record.duration * 1000:.1f} ms{'  (cold start)' if record.cold_start else ''}",
        flush=True,
    )
    for line in record.log.rstrip("\n").splitlines():
        print(f"  | {line}", flush=True)


def _print_reload(report: Any) -> None:
    parts = []
    for label, names in (
        ("added", report.added),
        ("removed", report.removed),
        ("restarted", report.restarted),
    ):
        if names:
            parts.append(f"{label} {', '.join(names)}")
    if parts:
        print(f"reload: {'; '.join(parts)}", file=sys.stderr, flush=True)
    for name, error in report.failed.items():
        print(f"reload: {name} keeps its previous version: {error}", file=sys.stderr, flush=True)
    if report.error:
        print(f"reload: nothing changed: {report.error}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from module_sdk.cli import CommandError
    from module_sdk.local import Faults, LocalLambdaRuntime

    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is invalid: use 0 to 65535")
    if args.prewarm < 0:
        raise CommandError(f"--prewarm {args.prewarm} is invalid: use 0 or more")
    faults = Faults(
        latency=args.latency,
        throttle_rate=args.throttle_rate,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
    )
    environment: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not name:
            raise CommandError(f"--env {item!r} is invalid: use NAME or NAME=VALUE")
        if not sep:
            if name not in os.environ:
                raise CommandError(f"--env {name}: this shell has no {name} to pass on")
            value = os.environ[name]
        environment[name] = value
    runtime = LocalLambdaRuntime(
        args.functions,
        environment=environment,
        host=args.host,
        port=args.port,
        faults=faults,
        seed=args.seed,
        concurrency_limit=args.concurrency_limit,
        prewarm=args.prewarm,
        idle_timeout=args.idle_timeout or None,
        on_log=None if args.quiet else _print_run,
        reload=args.reload,
        on_reload=_print_reload,
    )
    if not runtime.functions:
        raise CommandError(
            f"no functions in {args.functions}: add a NAME.py defining "
            "handler(event, context), or a functions.toml"
        )
    return asyncio.run(_serve(runtime))


async def _serve(runtime: Any) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with runtime:
            print(f"waddlebot-lambda: serving on {runtime.url}", file=sys.stderr, flush=True)
            for name, spec in sorted(runtime.functions.items()):
                limits = f"timeout {spec.timeout:g}s"
                if spec.reserved_concurrency is not None:
                    limits += f", reserved concurrency {spec.reserved_concurrency}"
                print(f"  {name:<20} {spec.handler:<28} {limits}", file=sys.stderr, flush=True)
            print(
                f"  try: waddlebot-lambda invoke NAME --command !help --endpoint-url "
                f"{runtime.url}   (Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
            print("waddlebot-lambda: stopping", file=sys.stderr, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
