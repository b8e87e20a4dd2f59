"""``waddlebot-lambda serve``: the module server for WaddleBot's router."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve Lambda-backed modules on WaddleBot's router protocol",
        description=(
            "Serve Lambda functions as WaddleBot modules: POST /api/v1/execute (module by "
            "command), POST /modules/NAME/api/v1/execute, GET /api/v1/modules, GET /health. "
            "SIGTERM drains in-flight requests, then exits 0. See docs/server.md."
        ),
    )
    parser.add_argument(
        "--config", required=True, metavar="PATH", help="the TOML configuration file"
    )
    parser.add_argument(
        "--host", default=None, help="interface to listen on (default: [server] host or 0.0.0.0)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="TCP port (default: [server] port or 8000; 0 picks a free port)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without checking X-Service-Key when no key is configured (trusted "
        "networks and local testing only)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N server processes sharing the port through SO_REUSEPORT (default 1); "
        "each drains on SIGTERM",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from module_sdk.cli import CommandError
    from module_sdk.server import ModuleServer, load_config, run_server
    from module_sdk.server._access import ACCESS_LOGGER
    from module_sdk.server._workers import run_workers

    if args.port is not None and not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is invalid: use 0 to 65535")
    if not 1 <= args.workers <= 256:
        raise CommandError(f"--workers {args.workers} is invalid: use 1 to 256")
    config = load_config(args.config)
    if config.access_log != "off":
        # The access log is INFO; show it whatever --log-level says ([server] access_log).
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)

    def ready(url: str) -> None:
        names = ", ".join(spec.name for spec in config.modules)
        auth = "X-Service-Key required" if config.service_api_key else "NO AUTHENTICATION"
        everywhere = "://0.0.0.0:" in url or "://[::]:" in url
        where = f"{url} (every interface)" if everywhere else url
        print(
            f"waddlebot-lambda: serving {len(config.modules)} module(s) ({names}) on {where} "
            f"({auth}); SIGTERM drains and exits",
            file=sys.stderr,
            flush=True,
        )

    if args.workers > 1:
        if not config.service_api_key and not args.insecure_no_auth:
            ModuleServer(config)  # raises the missing-key error here, before any worker

        def workers_ready(url: str, pids: list[int]) -> None:
            ready(url)
            print(
                f"waddlebot-lambda: {len(pids)} workers (pids {', '.join(map(str, pids))})",
                file=sys.stderr,
                flush=True,
            )

        return run_workers(
            args.config,
            args.workers,
            host=config.host if args.host is None else args.host,
            port=config.port if args.port is None else args.port,
            insecure_no_auth=args.insecure_no_auth,
            on_ready=workers_ready,
        )
    return run_server(
        config,
        host=args.host,
        port=args.port,
        insecure_no_auth=args.insecure_no_auth,
        on_ready=ready,
    )
