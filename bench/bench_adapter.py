"""LambdaAdapter (lean path and aiobotocore path) vs raw aiobotocore vs the original design
(boto3 in the default executor).

All four call the same local Lambda-API endpoint (a separate process answering after a fixed
delay, 100 ms by default), in the same run, so the client-side numbers are comparable:

- req/s and p50/p99 latency at concurrency 1, 50 and 500;
- client CPU seconds per 1,000 calls (this process only; the endpoint runs elsewhere);
- 1,000 adapters for 1,000 functions: construction time and extra memory.

Every cell is the median of ``--runs`` runs (3 by default): the reference machine is shared.

Run: .venv/bin/python bench/bench_adapter.py [--delay 0.1] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.clients import ClientPool
from module_sdk.aws_lambda.lean_client import LeanPool, default_lean_pool

HERE = Path(__file__).resolve().parent
CREDS = {"aws_access_key_id": "AKIDBENCH00000000000", "aws_secret_access_key": "bench-secret"}
REQUEST = ExecuteRequest("!roll", ["2d6"], "u-1", "e-1", "c-1", "sess-1", "twitch")


def rss_mb() -> float:
    """Resident memory of this process in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def run_load(
    call: Callable[[], Awaitable[Any]], concurrency: int, total: int
) -> dict[str, float]:
    """Run ``total`` calls with ``concurrency`` workers; measure wall, CPU and latencies."""
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    latencies.sort()
    return {
        "rps": total / wall,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "cpu_per_1000": cpu / total * 1000,
    }


async def bench_adapter(
    url: str, concurrency: int, total: int, http_client: str = "lean"
) -> dict[str, float]:
    """This SDK's LambdaAdapter on one of its HTTP paths."""
    async with LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        endpoint_url=url,
        max_connections=max(concurrency, 10),
        http_client=http_client,
        **CREDS,
    ) as adapter:

        async def call() -> None:
            response = await adapter.execute_async(REQUEST)
            assert response.success, response.error

        await run_load(call, min(concurrency, 10), 20)  # warm up the client and connections
        return await run_load(call, concurrency, total)


async def bench_adapter_aiobotocore(url: str, concurrency: int, total: int) -> dict[str, float]:
    """This SDK's LambdaAdapter on the aiobotocore path."""
    return await bench_adapter(url, concurrency, total, "aiobotocore")


async def bench_raw(url: str, concurrency: int, total: int) -> dict[str, float]:
    """The floor: raw aiobotocore invoke + read, with botocore retries off."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    payload = json.dumps({"request_id": "sess-1"}).encode()
    config = AioConfig(retries={"total_max_attempts": 1}, max_pool_connections=max(concurrency, 10))
    async with get_session().create_client(
        "lambda", region_name="us-east-1", endpoint_url=url, config=config, **CREDS
    ) as client:

        async def call() -> None:
            response = await client.invoke(FunctionName="dice", Payload=payload)
            async with response["Payload"] as stream:
                json.loads(await stream.read())

        await run_load(call, min(concurrency, 10), 20)
        return await run_load(call, concurrency, total)


async def bench_original(url: str, concurrency: int, total: int) -> dict[str, float]:
    """The original design: a boto3 client called in the loop's default thread pool."""
    import boto3

    client = boto3.client("lambda", region_name="us-east-1", endpoint_url=url, **CREDS)
    payload = json.dumps({"request_id": "sess-1"}).encode()
    loop = asyncio.get_running_loop()

    def invoke() -> None:
        response = client.invoke(FunctionName="dice", Payload=payload)
        json.loads(response["Payload"].read())

    async def call() -> None:
        await loop.run_in_executor(None, invoke)

    await run_load(call, min(concurrency, 10), 20)
    return await run_load(call, concurrency, total)


async def bench_many_adapters(
    url: str, count: int = 1000, http_client: str = "lean"
) -> dict[str, float]:
    """``count`` adapters for ``count`` functions: construction time and memory."""
    gc.collect()
    before = rss_mb()
    pool: ClientPool | LeanPool = (
        ClientPool() if http_client == "aiobotocore" else default_lean_pool
    )
    start = time.perf_counter()
    adapters = [
        LambdaAdapter(
            f"fn-{i}",
            "us-east-1",
            f"module-{i}",
            endpoint_url=url,
            http_client=http_client,
            **({"pool": pool} if isinstance(pool, ClientPool) else {}),
            **CREDS,
        )
        for i in range(count)
    ]
    construct = time.perf_counter() - start
    # One call each: clients are created lazily and shared (one for all here).
    sem = asyncio.Semaphore(100)

    async def one(adapter: LambdaAdapter) -> bool:
        async with sem:
            return (await adapter.execute_async(REQUEST)).success

    results = await asyncio.gather(*(one(a) for a in adapters))
    gc.collect()
    after = rss_mb()
    clients = pool.open_clients()
    for adapter in adapters:
        await adapter.aclose()
    return {
        "construct_s": construct,
        "extra_mb": after - before,
        "clients": clients,
        "ok": sum(results),
    }


BENCHES: tuple[
    tuple[str, Callable[[str, int, int], Coroutine[Any, Any, dict[str, float]]]], ...
] = (
    ("LambdaAdapter, lean path", bench_adapter),
    ("LambdaAdapter, aiobotocore path", bench_adapter_aiobotocore),
    ("raw aiobotocore", bench_raw),
    ("original (boto3 + executor)", bench_original),
)


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    """Start the endpoint, run every benchmark ``--runs`` times, print the median tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.1, help="function delay in seconds")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()

    stub = subprocess.Popen(
        [sys.executable, str(HERE / "lambda_stub.py"), str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().strip()
        samples: dict[tuple[str, int], list[dict[str, float]]] = {}
        many: dict[str, list[dict[str, float]]] = {}
        for run in range(args.runs):
            for concurrency in (1, 50, 500):
                total = {1: 20, 50: 500, 500: 2000}[concurrency]
                if args.quick:
                    total = max(10, total // 10)
                for name, bench in BENCHES:
                    calls = (
                        total
                        if not name.startswith("original") or concurrency < 500
                        else total // 2
                    )
                    result = asyncio.run(bench(url, concurrency, calls))
                    samples.setdefault((name, concurrency), []).append(result)
                    print(f"  run {run + 1}: {name} @ {concurrency}", file=sys.stderr)
            for http_client in ("lean", "aiobotocore"):
                many.setdefault(http_client, []).append(
                    asyncio.run(bench_many_adapters(url, http_client=http_client))
                )
    finally:
        stub.kill()
        stub.wait()

    by = {key: _median(results) for key, results in samples.items()}
    print(
        f"\nFunction delay {args.delay * 1000:.0f} ms; endpoint in a separate process; "
        f"medians of {args.runs} runs.\n"
    )
    print("| client | concurrency | req/s | p50 ms | p99 ms | client CPU ms / call |")
    print("|---|---:|---:|---:|---:|---:|")
    for (name, concurrency), r in by.items():
        print(
            f"| {name} | {concurrency} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['cpu_per_1000']:.3f} |"
        )
    print("\n| ratio | concurrency | value |")
    print("|---|---:|---:|")
    for concurrency in (1, 50, 500):
        lean = by[("LambdaAdapter, lean path", concurrency)]
        on_botocore = by[("LambdaAdapter, aiobotocore path", concurrency)]
        raw = by[("raw aiobotocore", concurrency)]
        original = by[("original (boto3 + executor)", concurrency)]
        print(
            f"| CPU per call, lean adapter / raw aiobotocore (target <= 0.4) | {concurrency} "
            f"| {lean['cpu_per_1000'] / raw['cpu_per_1000']:.2f} |"
        )
        print(
            f"| CPU per call, aiobotocore adapter / raw aiobotocore | {concurrency} "
            f"| {on_botocore['cpu_per_1000'] / raw['cpu_per_1000']:.2f} |"
        )
        print(
            f"| throughput, lean adapter / original design (target >= 20 at 500) | {concurrency} "
            f"| {lean['rps'] / original['rps']:.1f} |"
        )
    print("\n| 1,000 adapters for 1,000 functions | lean path | aiobotocore path |")
    print("|---|---:|---:|")
    m = {k: _median(v) for k, v in many.items()}
    print(
        f"| construction time (target < 1 s) | {m['lean']['construct_s']:.3f} s "
        f"| {m['aiobotocore']['construct_s']:.3f} s |"
    )
    print(
        f"| extra memory after one call each (target < 50 MB) | {m['lean']['extra_mb']:.1f} MB "
        f"| {m['aiobotocore']['extra_mb']:.1f} MB |"
    )
    print(f"| shared clients | {m['lean']['clients']:.0f} | {m['aiobotocore']['clients']:.0f} |")
    print(f"| successful calls | {m['lean']['ok']:.0f} | {m['aiobotocore']['ok']:.0f} |")


if __name__ == "__main__":
    main()
