"""``waddlebot-lambda dlq``: inspect, replay and purge the dead-letter queue."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["ENV_SQLITE", "ENV_SQS_QUEUE_URL", "register"]

ENV_SQLITE = "WADDLEBOT_DLQ_SQLITE"
ENV_SQS_QUEUE_URL = "WADDLEBOT_DLQ_SQS_QUEUE_URL"


def register(subparsers: Any) -> None:
    """Add the ``dlq`` subcommand and its actions."""
    from module_sdk.resilience.deadletter import DEFAULT_SQLITE_PATH

    common = argparse.ArgumentParser(add_help=False)
    sink = common.add_argument_group("dead-letter sink (SQLite unless an SQS queue is given)")
    sink.add_argument(
        "--sqlite",
        metavar="PATH",
        default=None,
        help=f"the SQLite file (default: ${ENV_SQLITE} or ./{DEFAULT_SQLITE_PATH})",
    )
    sink.add_argument(
        "--sqs-queue-url",
        metavar="URL",
        default=None,
        help=f"an Amazon SQS queue instead (default: ${ENV_SQS_QUEUE_URL})",
    )
    sink.add_argument("--sqs-region", metavar="REGION", help="the queue's region")
    sink.add_argument(
        "--sqs-endpoint-url", metavar="URL", help="another SQS endpoint (LocalStack, moto)"
    )
    sink.add_argument(
        "--sqs-wait-seconds",
        type=int,
        default=1,
        metavar="S",
        help="long-polling wait of the last, empty receive of a scan (0-20, default 1)",
    )

    parser = subparsers.add_parser(
        "dlq",
        help="list, show, replay or purge dead-lettered requests",
        description=(
            "Requests that finally failed (retries exhausted, circuit open, rate limited, "
            "deadline exceeded; always for Event calls) are kept in a dead-letter sink. "
            "Replay re-sends each stored event unchanged and removes it only once delivered. "
            "See docs/dead-letter.md."
        ),
    )
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[common], help="list entries, oldest first")
    listing.add_argument(
        "--limit", type=int, default=50, help="show at most N entries (default 50)"
    )
    listing.add_argument("--function", metavar="NAME", help="only entries for this function")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)

    show = actions.add_parser("show", parents=[common], help="show one entry with its payload")
    show.add_argument("entry_id", metavar="ID")
    show.set_defaults(func=_show)

    replay = actions.add_parser(
        "replay",
        parents=[common],
        help="re-invoke stored events; remove each once delivered",
        description=(
            "Re-send stored events, oldest first, to the function each was meant for "
            "(same payload and request_id, so the function can recognise a repeat). A "
            "delivered entry is removed; a failed one is kept with its replay count raised. "
            "Exit status 1 when any replay failed."
        ),
    )
    replay.add_argument("--limit", type=int, default=None, help="replay at most N entries")
    replay.add_argument("--function", metavar="NAME", help="only entries for this function")
    replay.add_argument(
        "--id", dest="ids", action="append", metavar="ID", help="only this entry (repeatable)"
    )
    replay.add_argument(
        "--endpoint-url", metavar="URL", help="another Lambda API endpoint (local runtime)"
    )
    replay.add_argument("--region", metavar="REGION", help="override every entry's stored region")
    replay.add_argument("--profile", metavar="NAME", help="the AWS profile to invoke with")
    replay.add_argument("--max-retries", type=int, default=3, help="retries per entry (default 3)")
    replay.add_argument(
        "--read-timeout", type=float, default=30.0, help="seconds per attempt (default 30)"
    )
    replay.set_defaults(func=_replay)

    delete = actions.add_parser("delete", parents=[common], help="remove one entry")
    delete.add_argument("entry_id", metavar="ID")
    delete.set_defaults(func=_delete)

    purge = actions.add_parser("purge", parents=[common], help="remove every entry")
    purge.add_argument(
        "--yes", action="store_true", help="really remove them (required: there is no undo)"
    )
    purge.set_defaults(func=_purge)


# -- helpers ----------------------------------------------------------------------------------


def _open_sink(args: argparse.Namespace) -> Any:
    from module_sdk.cli import CommandError
    from module_sdk.resilience.deadletter import (
        DEFAULT_SQLITE_PATH,
        SQLiteDeadLetterSink,
        SQSDeadLetterSink,
    )

    queue_url = args.sqs_queue_url
    if queue_url and args.sqlite:
        raise CommandError("give either --sqlite or --sqs-queue-url, not both")
    if not queue_url and not args.sqlite:
        queue_url = os.environ.get(ENV_SQS_QUEUE_URL) or None
    if queue_url:
        return SQSDeadLetterSink(
            queue_url,
            region=args.sqs_region,
            endpoint_url=args.sqs_endpoint_url,
            receive_wait_seconds=args.sqs_wait_seconds,
        )
    path = Path(args.sqlite or os.environ.get(ENV_SQLITE) or DEFAULT_SQLITE_PATH)
    if not path.exists():
        raise CommandError(
            f"no dead-letter database at {str(path)!r}: nothing was dead-lettered there yet, "
            f"or pass --sqlite PATH (or set {ENV_SQLITE})"
        )
    return SQLiteDeadLetterSink(path)


def _with_sink(args: argparse.Namespace, body: Callable[[Any], Awaitable[int]]) -> int:
    sink = _open_sink(args)

    async def run() -> int:
        try:
            return await body(sink)
        finally:
            await sink.aclose()

    return asyncio.run(run())


def _one_line(text: str | None, width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


# -- actions ----------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from module_sdk.cli import CommandError

    if args.limit < 0:
        raise CommandError(f"--limit {args.limit} is invalid: use a number >= 0")

    async def body(sink: Any) -> int:
        entries = await sink.list(limit=args.limit, function_name=args.function)
        if args.json:
            for entry in entries:
                print(entry.to_json())
            return 0
        if not entries:
            print(f"no dead-letter entries in {sink!r}")
            return 0
        rows = [["ID", "FUNCTION", "TYPE", "ERROR", "ATTEMPTS", "REPLAYS", "FAILED AT", "REQUEST"]]
        for entry in entries:
            rows.append(
                [
                    entry.id,
                    entry.target,
                    entry.invocation_type,
                    entry.last_replay_error_code or entry.error_code,
                    str(entry.attempts),
                    str(entry.replay_attempts),
                    entry.first_failure_at.strftime("%Y-%m-%d %H:%M:%S"),
                    _one_line(entry.request_id, 40),
                ]
            )
        _print_table(rows, sys.stdout)
        print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} shown")
        return 0

    return _with_sink(args, body)


def _show(args: argparse.Namespace) -> int:
    from module_sdk.cli import CommandError

    async def body(sink: Any) -> int:
        entry = await sink.get(args.entry_id)
        if entry is None:
            raise CommandError(f"no dead-letter entry with id {args.entry_id!r}", status=1)
        print(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False))
        return 0

    return _with_sink(args, body)


def _replay(args: argparse.Namespace) -> int:
    from module_sdk.adapters.replay import ReplayAdapters
    from module_sdk.cli import CommandError
    from module_sdk.resilience.deadletter import replay_entries

    if args.limit is not None and args.limit < 0:
        raise CommandError(f"--limit {args.limit} is invalid: use a number >= 0")
    if not 0 <= args.max_retries <= 100:
        raise CommandError(f"--max-retries {args.max_retries} is invalid: use 0 to 100")

    async def body(sink: Any) -> int:
        adapters = ReplayAdapters(
            region=args.region,
            endpoint_url=args.endpoint_url,
            profile_name=args.profile,
            max_retries=args.max_retries,
            read_timeout=args.read_timeout,
        )
        try:
            results = await replay_entries(
                sink,
                adapters,
                limit=args.limit,
                function_name=args.function,
                ids=args.ids,
            )
        finally:
            await adapters.aclose()
        failed = 0
        for result in results:
            if result.delivered:
                print(f"delivered  {result.entry_id}  {result.target}  (removed)")
            else:
                failed += 1
                print(
                    f"FAILED     {result.entry_id}  {result.target}  {result.error_code}: "
                    f"{_one_line(result.error)}  (kept; failed replays: {result.replay_attempts})"
                )
        print(f"{len(results) - failed} delivered, {failed} failed, {len(results)} replayed")
        return 1 if failed else 0

    return _with_sink(args, body)


def _delete(args: argparse.Namespace) -> int:
    from module_sdk.cli import CommandError

    async def body(sink: Any) -> int:
        if not await sink.delete(args.entry_id):
            raise CommandError(f"no dead-letter entry with id {args.entry_id!r}", status=1)
        print(f"removed {args.entry_id}")
        return 0

    return _with_sink(args, body)


def _purge(args: argparse.Namespace) -> int:
    from module_sdk.cli import CommandError

    if not args.yes:
        raise CommandError("purge removes every dead-letter entry for good: add --yes to do it")

    async def body(sink: Any) -> int:
        removed = await sink.purge()
        print(f"purged {removed} entr{'y' if removed == 1 else 'ies'}")
        return 0

    return _with_sink(args, body)
