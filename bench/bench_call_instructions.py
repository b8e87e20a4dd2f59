"""User-space instructions per call at concurrency 1, counted by valgrind's callgrind.

CPU time per call at concurrency 1 moves with the machine's load; instruction counts do not.
This runs ``--small`` and ``--large`` sequential calls (after 20 warm-up calls) under
``valgrind --tool=callgrind`` against ``bench/lambda_stub.py`` (no delay, its own process) and
prints the difference divided by the extra calls: start-up and warm-up cancel out. Kernel work
(system calls, the network stack) is not counted.

Modes: ``adapter`` (``LambdaAdapter.execute_async`` on the lean path), ``invoker`` (the lean
invoker alone) and ``aiohttp`` (a bare unsigned aiohttp POST, the floor).

Run: .venv/bin/python bench/bench_call_instructions.py [adapter|invoker|aiohttp]
(needs valgrind; a few minutes per mode)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CREDS = {"aws_access_key_id": "AKIDBENCH00000000000", "aws_secret_access_key": "bench-secret"}


async def calls(url: str, count: int, mode: str) -> None:
    """``count`` sequential calls after 20 warm-up calls."""
    from module_sdk import ExecuteRequest, LambdaAdapter
    from module_sdk.aws_lambda.clients import ClientSettings
    from module_sdk.aws_lambda.invoker import InvokeCall
    from module_sdk.aws_lambda.lean_invoker import LeanInvoker

    if mode == "adapter":
        request = ExecuteRequest("!roll", ["2d6"], "u-1", "e-1", "c-1", "sess-1", "twitch")
        async with LambdaAdapter("dice", "us-east-1", "dice", endpoint_url=url, **CREDS) as a:
            for _ in range(20 + count):
                assert (await a.execute_async(request)).success
    elif mode == "invoker":
        invoker = LeanInvoker(ClientSettings(region="us-east-1", endpoint_url=url, **CREDS))
        call = InvokeCall(function_name="dice", payload=b'{"request_id":"sess-1"}')
        for _ in range(20 + count):
            json.loads((await invoker.invoke(call)).payload)
        await invoker.aclose()
    else:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            for _ in range(20 + count):
                target = url + "/2015-03-31/functions/dice/invocations"
                async with session.post(target, data=b'{"request_id":"sess-1"}') as reply:
                    json.loads(await reply.read())


def counted(url: str, count: int, mode: str) -> int:
    """Instructions callgrind collected for a whole run of ``count`` calls."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                __file__,
                "--child",
                url,
                str(count),
                mode,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found, done.stderr[-500:]
    return int(found.group(1))


def main() -> None:
    """Start the endpoint, count two run lengths, print instructions per call."""
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        asyncio.run(calls(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="adapter", choices=("adapter", "invoker", "aiohttp")
    )
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=250)
    args = parser.parse_args()
    stub = subprocess.Popen(
        [sys.executable, str(HERE / "lambda_stub.py"), "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().strip()
        small = counted(url, args.small, args.mode)
        large = counted(url, args.large, args.mode)
    finally:
        stub.kill()
        stub.wait()
    per_call = (large - small) / (args.large - args.small)
    print(f"{args.mode}: {per_call:,.0f} instructions per call")


if __name__ == "__main__":
    main()
