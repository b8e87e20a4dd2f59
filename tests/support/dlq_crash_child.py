"""Child process of the dead-letter crash test (run as a script, not collected by pytest).

Makes one Event call that fails past all retries with a SQLite dead-letter sink, prints
``RETURNED <response JSON>`` as soon as ``execute_async`` returned, then blocks until the
parent kills it with SIGKILL. Usage: ``python dlq_crash_child.py ENDPOINT_URL DB_PATH``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.testing import FakeClock


async def main(endpoint_url: str, db_path: str) -> None:
    """Fail one Event call, report, and wait forever (without closing anything)."""
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        invocation_type="Event",
        max_retries=2,
        endpoint_url=endpoint_url,
        clock=FakeClock(),
        rng=random.Random(0),
        dead_letter=db_path,
    )
    response = await adapter.execute_async(
        ExecuteRequest(
            command="!roll",
            args=["2d6"],
            user_id="u-1",
            entity_id="e-1",
            community_id="c-1",
            session_id="crash-session",
            platform="twitch",
        )
    )
    print("RETURNED " + json.dumps(response.to_dict()), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
