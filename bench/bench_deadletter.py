"""Dead-letter sink write cost: SQLite with synchronous=FULL vs NORMAL, one writer and many.

Prints a table of per-``put`` latency (p50 / p99, ms) and throughput. A put is what a failed
request adds to ``execute_async`` when a dead-letter sink is configured; successful calls pay
nothing. Run: ``.venv/bin/python bench/bench_deadletter.py [--puts N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from module_sdk.resilience.deadletter import DeadLetterEntry, SQLiteDeadLetterSink, new_entry_id

PAYLOAD = {
    "community": {"id": "c-1", "name": "Penguins", "is_subscribed": True, "seat_count": 5},
    "trigger": {"type": "command", "command": "!roll", "context_text": "2d6"},
    "user": {"id": "u-1", "username": "pingu", "platform": "twitch"},
    "entity": {"id": "e-1", "platform": "twitch"},
    "request_id": "sess",
    "timestamp": "2026-03-01T12:00:00.000Z",
}


def entry() -> DeadLetterEntry:
    """A typical entry (about 500 bytes of event)."""
    now = datetime.now(UTC)
    return DeadLetterEntry(
        id=new_entry_id(now),
        payload=PAYLOAD,
        function_name="dice",
        qualifier=None,
        region="us-east-1",
        invocation_type="Event",
        module_name="dice",
        error="Lambda returned TooManyRequestsException (HTTP 429): Rate exceeded",
        error_code="throttled",
        attempts=4,
        first_failure_at=now,
        last_failure_at=now,
    )


async def run(synchronous: str, concurrency: int, puts: int, directory: Path) -> list[str]:
    """Time ``puts`` puts with ``concurrency`` concurrent writers; one table row."""
    path = directory / f"bench-{synchronous}-{concurrency}.sqlite3"
    latencies: list[float] = []
    async with SQLiteDeadLetterSink(path, synchronous=synchronous) as sink:
        await sink.put(entry())  # open the file and create the schema outside the timing

        async def writer(count: int) -> None:
            for _ in range(count):
                start = time.perf_counter()
                await sink.put(entry())
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(writer(puts // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return [
        synchronous,
        str(concurrency),
        str(len(latencies)),
        f"{statistics.median(latencies) * 1000:.2f}",
        f"{p99 * 1000:.2f}",
        f"{len(latencies) / elapsed:,.0f}",
    ]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--puts", type=int, default=400, help="puts per row (default 400)")
    args = parser.parse_args()
    rows = [["synchronous", "writers", "puts", "p50 ms", "p99 ms", "puts/s"]]
    with tempfile.TemporaryDirectory() as tmp:
        for synchronous in ("FULL", "NORMAL"):
            for concurrency in (1, 16):
                rows.append(asyncio.run(run(synchronous, concurrency, args.puts, Path(tmp))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
