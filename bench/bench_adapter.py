"""LambdaAdapter vs raw aiobotocore vs the original design (boto3 in the default executor).

All three call the same local Lambda-API endpoint (a separate process answering after a fixed
delay, 100 ms by default), so the client-side numbers are comparable:

- req/s and p50/p99 latency at concurrency 1, 50 and 500;
- client CPU seconds per 1,000 calls (this process only; the endpoint runs elsewhere);
- 1,000 adapters for 1,000 functions: construction time and extra memory.

Run: .venv/bin/python bench/bench_adapter.py [--delay 0.1] [--quick]
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.clients import ClientPool

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


async def bench_adapter(url: str, concurrency: int, total: int) -> dict[str, float]:
    """This SDK's LambdaAdapter."""
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", endpoint_url=url, max_connections=max(concurrency, 10), **CREDS
    ) as adapter:

        async def call() -> None:
            response = await adapter.execute_async(REQUEST)
            assert response.success, response.error

        await run_load(call, min(concurrency, 10), 20)  # warm up the client and connections
        return await run_load(call, concurrency, total)


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


async def bench_many_adapters(url: str, count: int = 1000) -> dict[str, float]:
    """``count`` adapters for ``count`` functions: construction time and memory."""
    gc.collect()
    before = rss_mb()
    pool = ClientPool()
    start = time.perf_counter()
    adapters = [
        LambdaAdapter(f"fn-{i}", "us-east-1", f"module-{i}", endpoint_url=url, pool=pool, **CREDS)
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


def main() -> None:
    """Start the endpoint, run every benchmark, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.1, help="function delay in seconds")
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
        rows: list[tuple[str, int, dict[str, float]]] = []
        for concurrency in (1, 50, 500):
            total = {1: 20, 50: 500, 500: 2000}[concurrency]
            if args.quick:
                total = max(10, total // 10)
            for name, bench in (
                ("LambdaAdapter", bench_adapter),
                ("raw aiobotocore", bench_raw),
                ("original (boto3 + executor)", bench_original),
            ):
                calls = (
                    total if name.startswith(("Lambda", "raw")) or concurrency < 500 else total // 2
                )
                result = asyncio.run(bench(url, concurrency, calls))
                rows.append((name, concurrency, result))
                print(f"  done: {name} @ {concurrency}", file=sys.stderr)
        many = asyncio.run(bench_many_adapters(url))
    finally:
        stub.kill()
        stub.wait()

    print(f"\nFunction delay {args.delay * 1000:.0f} ms; endpoint in a separate process.\n")
    print("| client | concurrency | req/s | p50 ms | p99 ms | client CPU s / 1,000 calls |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, concurrency, r in rows:
        print(
            f"| {name} | {concurrency} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['cpu_per_1000']:.3f} |"
        )
    print("\n| ratio | concurrency | value |")
    print("|---|---:|---:|")
    by = {(n, c): r for n, c, r in rows}
    for concurrency in (1, 50, 500):
        adapter = by[("LambdaAdapter", concurrency)]
        raw = by[("raw aiobotocore", concurrency)]
        original = by[("original (boto3 + executor)", concurrency)]
        print(
            f"| CPU per call, adapter / raw aiobotocore (target <= 1.2) | {concurrency} "
            f"| {adapter['cpu_per_1000'] / raw['cpu_per_1000']:.2f} |"
        )
        print(
            f"| throughput, adapter / original design (target >= 20 at 500) | {concurrency} "
            f"| {adapter['rps'] / original['rps']:.1f} |"
        )
    print("\n| 1,000 adapters for 1,000 functions | value |")
    print("|---|---:|")
    print(f"| construction time (target < 1 s) | {many['construct_s']:.3f} s |")
    print(f"| extra memory after one call each (target < 50 MB) | {many['extra_mb']:.1f} MB |")
    print(f"| shared AWS clients | {many['clients']:.0f} |")
    print(f"| successful calls | {many['ok']:.0f} |")


if __name__ == "__main__":
    main()
