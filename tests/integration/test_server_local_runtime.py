"""The module server end to end against the local Lambda runtime running real handlers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from module_sdk.local import LocalLambdaRuntime
from module_sdk.server import ModuleServer, parse_config

KEY = "local-runtime-test-key-0123456789abcdef"

DICE = """
def handler(event, context):
    words = event["trigger"]["context_text"].split()
    return {"success": True, "message": f"rolled {len(words)} dice for {event['user']['id']}",
            "targets": ["twitch"]}
"""

# Held until the test creates the gate file named in the args: no timing assumptions.
SLOW = """
import os, time

def handler(event, context):
    gate = event["trigger"]["context_text"]
    while not os.path.exists(gate):
        time.sleep(0.005)
    return {"success": True, "message": "done"}
"""


def body(command: str, args: str, session: str) -> dict[str, Any]:
    """A router-style request."""
    return {
        "command": command,
        "args": args,
        "user_id": "viewer-7",
        "entity_id": "chan",
        "community_id": "1",
        "session_id": session,
        "message": f"{command} {args}",
        "platform": "twitch",
    }


async def test_router_requests_run_real_handlers(tmp_path: Path) -> None:
    """Commands reach the handlers; a function's reserved concurrency shows up as 429."""
    (tmp_path / "dice.py").write_text(DICE, encoding="utf-8")
    (tmp_path / "slow.py").write_text(SLOW, encoding="utf-8")
    (tmp_path / "functions.toml").write_text(
        "[functions.slow]\nreserved_concurrency = 1\n", encoding="utf-8"
    )
    async with LocalLambdaRuntime(tmp_path, port=0, prewarm=1) as runtime:
        config = parse_config(
            {
                "service_api_key": KEY,
                "aws": {"region": "us-east-1", "endpoint_url": runtime.url, "max_retries": 0},
                "modules": [
                    {"name": "dice", "commands": ["!roll"]},
                    {"name": "slow", "commands": ["!slow"]},
                ],
            },
            env={},
        )
        async with (
            ModuleServer(config, host="127.0.0.1", port=0) as server,
            aiohttp.ClientSession(headers={"X-Service-Key": KEY}) as session,
        ):

            async def call(command: str, args: str, session_id: str) -> tuple[int, Any, str]:
                async with session.post(
                    server.url + "/api/v1/execute", json=body(command, args, session_id)
                ) as reply:
                    return reply.status, await reply.json(), reply.headers.get("Retry-After", "")

            status, answer, _ = await call("!roll", '2d6 "with advantage"', "s1")
            gate = tmp_path / "gate"
            first = asyncio.ensure_future(call("!slow", str(gate), "s2"))
            async with asyncio.timeout(30):
                await runtime.wait_until(lambda: runtime.in_flight("slow") == 1)
            second = await call("!slow", str(gate), "s3")  # while the first still runs
            gate.touch()
            slow = [await first, second]
    assert status == 200
    assert answer["message"] == "rolled 3 dice for viewer-7"
    assert answer["targets"] == [{"type": "twitch"}]
    assert (answer["module"], answer["session_id"]) == ("dice", "s1")
    assert [s[0] for s in slow] == [200, 429]
    throttled = next(s for s in slow if s[0] == 429)
    assert throttled[1]["error_code"] == "throttled"
    assert throttled[2] == "1"
