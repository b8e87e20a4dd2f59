"""A Lambda-API endpoint for benchmarks, in its own process so it does not share our CPU.

Run: python bench/lambda_stub.py DELAY_SECONDS  -> prints its URL on stdout, serves until killed.
Every call answers a small successful reply after DELAY_SECONDS. Benchmarks start it with
:func:`running`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from module_sdk.testing import Reply, ScriptedLambdaServer

REPLY = Reply.ok({"success": True, "message": "You rolled 7", "targets": ["twitch"]})


@contextmanager
def running(delay: float = 0.0) -> Iterator[str]:
    """Start this stub in its own process; yield its URL; stop it on exit."""
    stub = subprocess.Popen(
        [sys.executable, __file__, str(delay)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stub.stdout is not None
        yield stub.stdout.readline().strip()
    finally:
        stub.kill()
        stub.wait()


async def main(delay: float) -> None:
    """Serve until the process is killed."""

    def answer(event: Any) -> Reply:
        return Reply.slow(delay, REPLY) if delay else REPLY

    async with ScriptedLambdaServer(default=answer) as server:
        server.invocations = _Discard()
        print(server.url, flush=True)
        await asyncio.Event().wait()


class _Discard(list[dict[str, Any]]):
    """Keeps no invocation records (a benchmark makes hundreds of thousands)."""

    def append(self, item: dict[str, Any]) -> None:
        """Drop the record."""


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.1))
