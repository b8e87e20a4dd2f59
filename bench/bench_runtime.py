"""Benchmark: the local Lambda runtime against moto's server, no-op function, same machine.

Each server runs in its own process (the runtime via ``LocalLambdaRuntime``, moto via
``moto_server`` with ``use_docker: false``, where invoke echoes the payload without running
code). This process is the client: ``concurrency`` asyncio tasks POSTing the Invoke API back
to back over keep-alive aiohttp connections (a lighter client than botocore, so the servers
are what is measured). The runtime runs a real no-op handler in warm worker processes,
pre-started so no cold start is timed; moto runs nothing at all.

    .venv/bin/python bench/bench_runtime.py [--duration 3] [--concurrency 1 50 200]
        [--write-docs]    # replace the "Local runtime" section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Local runtime"

RUNTIME_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from module_sdk.local import LocalLambdaRuntime

    async def main():
        async with LocalLambdaRuntime(sys.argv[1], port=0, prewarm=int(sys.argv[2])) as rt:
            print(rt.url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)
NOOP = "def handler(event, context):\n    return {'success': True}\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
        reply.read()


def start_runtime(directory: Path, prewarm: int) -> tuple[subprocess.Popen[str], str]:
    """The local runtime in its own process; returns it and its URL."""
    (directory / "noop.py").write_text(NOOP)
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNTIME_SCRIPT, str(directory), str(prewarm)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_moto() -> tuple[subprocess.Popen[str], str]:
    """moto's server in its own process with a ``noop`` function; returns it and its URL."""
    import boto3

    port = _free_port()
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            _post(url + "/moto-api/config", {"lambda": {"use_docker": False}})
            break
        except OSError:
            time.sleep(0.1)
    kwargs: dict[str, Any] = {
        "region_name": "us-east-1",
        "endpoint_url": url,
        "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench",
    }
    role = boto3.client("iam", **kwargs).create_role(
        RoleName="bench", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("noop.py", NOOP)
    boto3.client("lambda", **kwargs).create_function(
        FunctionName="noop",
        Runtime="python3.12",
        Role=role,
        Handler="noop.handler",
        Code={"ZipFile": code.getvalue()},
    )
    return proc, url


BODY = b'{"request_id": "bench"}'


def _target(url: str) -> str:
    return f"{url}/2015-03-31/functions/noop/invocations"


def _percentiles(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "rate": len(latencies) / elapsed,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "errors": errors,
        "calls": len(latencies),
    }


async def open_loop(url: str, rate: float, cap: int, duration: float) -> dict[str, float]:
    """Open-loop load: ``rate`` calls per second whatever the replies, at most ``cap`` in
    flight. Latency counts from each call's scheduled time (queueing included)."""
    latencies: list[float] = []
    errors = 0
    gate = asyncio.Semaphore(cap)
    connector = aiohttp.TCPConnector(limit=cap)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            async with gate:
                try:
                    async with session.post(_target(url), data=BODY, headers=HEADERS) as reply:
                        await reply.read()
                        errors += reply.status != 200
                except aiohttp.ClientError:
                    errors += 1
            latencies.append(time.perf_counter() - scheduled)

        begun = time.perf_counter()
        tasks = []
        count = int(rate * duration)
        for i in range(count):
            scheduled = begun + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begun
    return _percentiles(latencies, elapsed, errors)


HEADERS = {
    "Content-Type": "application/json",
    "X-Amz-Invocation-Type": "RequestResponse",
    # The credential scope names the region (moto needs it); neither server checks it.
    "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/lambda/"
    "aws4_request, SignedHeaders=host, Signature=0",
}


async def load(url: str, concurrency: int, duration: float, warmup: float) -> dict[str, float]:
    """Closed-loop load: invocations per second and latency percentiles (ms)."""
    target = _target(url)
    body = BODY
    headers = HEADERS
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        measuring = False
        stop_at = time.perf_counter() + warmup + duration

        async def worker() -> None:
            nonlocal errors
            while True:
                started = time.perf_counter()
                if started >= stop_at:
                    return
                try:
                    async with session.post(target, data=body, headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 200
                except aiohttp.ClientError:
                    ok = False
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    errors += not ok

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        begun = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begun
    return _percentiles(latencies, elapsed, errors)


def table(results: dict[tuple[str, int], dict[str, float]], levels: list[int]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| concurrency | server | invocations/s | p50 ms | p99 ms | errors | vs moto |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        moto = results[("moto", level)]
        for name in ("local runtime", "moto"):
            row = results[(name, level)]
            ratio = f"{row['rate'] / moto['rate']:.1f}x" if name != "moto" else ""
            lines.append(
                f"| {level} | {name} | {row['rate']:,.0f} | {row['p50']:.1f} | "
                f"{row['p99']:.1f} | {row['errors']:.0f} | {ratio} |"
            )
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """Replace (or add) the "Local runtime" section of docs/benchmarks.md, nothing else."""
    DOCS.parent.mkdir(exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    section = f"{HEADING}\n\n{text.strip()}\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    DOCS.write_text(updated.rstrip("\n") + "\n")


async def run(levels: list[int], duration: float, warmup: float, rate: float) -> str:
    """Benchmark both servers at every concurrency level; return the report."""
    results: dict[tuple[str, int], dict[str, float]] = {}
    steady: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runtime, runtime_url = start_runtime(Path(tmp), max(levels))
        moto, moto_url = start_moto()
        try:
            for level in levels:
                for name, url in (("local runtime", runtime_url), ("moto", moto_url)):
                    results[(name, level)] = await load(url, level, duration, warmup)
                    row = results[(name, level)]
                    print(
                        f"  {name:<13} c={level:<4} {row['rate']:8,.0f}/s  "
                        f"p99 {row['p99']:6.1f} ms",
                        file=sys.stderr,
                    )
            if rate:
                for name, url in (("local runtime", runtime_url), ("moto", moto_url)):
                    steady[name] = await open_loop(url, rate, 50, duration)
        finally:
            for proc in (runtime, moto):
                proc.terminate()
                proc.wait(10)
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    header = (
        f"No-op handler, `bench/bench_runtime.py --duration {duration:g}` on "
        f"{os.cpu_count()} cores ({platform.python_implementation()} "
        f"{platform.python_version()}, load average {load_avg} at the end, machine shared). "
        "Both servers in their own process; the client is this process (aiohttp, closed "
        "loop: each of `concurrency` tasks sends its next call when the last one returns). "
        "The runtime really runs the handler in warm workers (one per concurrent call, "
        "started before timing); moto with `use_docker: false` runs nothing and echoes."
    )
    report = f"{header}\n\n{table(results, levels)}\n"
    if steady:
        report += (
            f"\nOpen loop: {rate:g} calls/s offered at a steady pace (at most 50 in flight), "
            "latency counted from each call's scheduled time:\n\n"
            "| server | achieved calls/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|\n"
        )
        for name, row in steady.items():
            report += (
                f"| {name} | {row['rate']:,.0f} | {row['p50']:.1f} | {row['p99']:.1f} | "
                f"{row['errors']:.0f} |\n"
            )
    report += "\n" + reading(results, levels, steady, rate)
    return report


def reading(
    results: dict[tuple[str, int], dict[str, float]],
    levels: list[int],
    steady: dict[str, dict[str, float]],
    rate: float,
) -> str:
    """What the figures say about the targets (2x moto's throughput; p99 < 10 ms at 50)."""
    ratios = [results[("local runtime", n)]["rate"] / results[("moto", n)]["rate"] for n in levels]
    low, high = f"{min(ratios):.1f}x", f"{max(ratios):.1f}x"
    span = low if low == high else f"{low} to {high}"
    lines = [
        "What the figures say:",
        "",
        f"- Throughput: {span} moto's at every concurrency "
        "(target: at least 2x), although the runtime really runs a handler in a separate "
        "process for every call and moto runs none.",
    ]
    if 50 in levels:
        row = results[("local runtime", 50)]
        lines.append(
            f"- p99 at concurrency 50 (closed loop): {row['p99']:.0f} ms, not the 10 ms "
            "target. With 50 callers that never pause, latency is concurrency / throughput "
            f"(Little's law: 50 / {row['rate']:,.0f} per s = {50 / row['rate'] * 1000:.0f} ms "
            "on average) whatever the server does; p99 under 10 ms there needs over 5,000 "
            "calls/s, more than two shared cores give a Python client plus server."
        )
    if steady:
        local, moto = steady["local runtime"], steady["moto"]
        lines.append(
            f"- Below saturation ({rate:g} calls/s offered, up to 50 in flight) the runtime "
            f"answers in {local['p50']:.1f} ms at p50 and {local['p99']:.1f} ms at p99, moto "
            f"in {moto['p50']:.1f} ms and {moto['p99']:.1f} ms."
        )
    lines.append(
        "- The machine is shared (see the load average): rerun on a quiet machine for "
        "absolute figures; the ratios are steadier than the absolute numbers."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run, print the table (and update the docs if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument(
        "--rate", type=float, default=100.0, help="open-loop calls/s (0: skip that table)"
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    report = asyncio.run(run(args.concurrency, args.duration, args.warmup, args.rate))
    print(report)
    if args.write_docs:
        write_docs(report)
        print(f"updated {DOCS.relative_to(ROOT)} ({HEADING})", file=sys.stderr)


if __name__ == "__main__":
    main()
