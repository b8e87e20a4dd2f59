"""Benchmark: the module server under router-style load, against a 50 ms Lambda function.

Three processes on loopback, like production: a Lambda API endpoint whose function takes
50 ms (:class:`module_sdk.testing.ScriptedLambdaServer` with ``Reply.slow``; ``--local-runtime``
uses the local runtime with a real handler instead, which needs one worker per concurrent call),
``waddlebot-lambda serve`` in front of it, and this process as the router: ``concurrency``
asyncio tasks each POSTing ``/api/v1/execute`` back to back over keep-alive connections.

The same load is then sent straight through a LambdaAdapter in this process ("direct"); the
server's added latency is the via-server percentile minus the direct one.

``--compare`` measures instead the re-send guard and ``--workers``: three servers in front of
the same endpoint (guard off with ``resend_ttl = 0``; guard on; guard on with 2 workers),
loaded in interleaved rounds at one concurrency (default 50), plus the guard's own cost per
call in-process (``ResendGuard.run`` around an immediate answer, no HTTP).

    .venv/bin/python bench/bench_server.py [--duration 4] [--concurrency 50 500]
    .venv/bin/python bench/bench_server.py --compare [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from module_sdk import ExecuteRequest, LambdaAdapter

KEY = "bench-service-key"
FUNCTION_SECONDS = 0.05

ENDPOINT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from module_sdk.testing import Reply, ScriptedLambdaServer

    class Discard(list):
        def append(self, item):
            pass  # keep no invocation records: a benchmark makes many thousands

    async def main():
        ok = Reply.slow(float(sys.argv[1]), Reply.ok({"success": True, "message": "rolled 7"}))
        async with ScriptedLambdaServer(default=lambda event: ok) as server:
            server.invocations = Discard()
            print(server.url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)

RUNTIME_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from module_sdk.local import LocalLambdaRuntime

    async def main():
        async with LocalLambdaRuntime(sys.argv[1], port=0, prewarm=int(sys.argv[2]),
                                      concurrency_limit=10000) as rt:
            print(rt.url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)

HANDLER = textwrap.dedent(
    """
    import time

    def handler(event, context):
        time.sleep(%r)
        return {"success": True, "message": "rolled 7"}
    """
)


def start_process(args: list[str], ready_stream: str) -> tuple[subprocess.Popen[str], str]:
    """Start a helper process and read its URL from its first line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AWS_ACCESS_KEY_ID": "bench"}
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    stream = process.stdout if ready_stream == "stdout" else process.stderr
    assert stream is not None
    line = stream.readline()
    if "http://" not in line:
        process.kill()
        raise SystemExit(f"helper did not start: {line}{stream.read()}")
    url = "http://" + line.split("http://", 1)[1].split()[0]
    return process, url


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of ``pid`` via /proc."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, in the same unit."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def load(
    call: Callable[[int], Awaitable[bool]], concurrency: int, duration: float
) -> tuple[list[float], int, int]:
    """Run ``concurrency`` workers calling back to back for ``duration`` after a warm-up.

    Returns the latencies of the calls that finished in the measured window, the failed calls
    in it, and the number of calls completed in all (for CPU per call).
    """
    latencies: list[float] = []
    errors = 0
    completed = 0
    warmup_end = time.perf_counter() + duration / 4
    end = warmup_end + duration

    async def worker(worker_id: int) -> None:
        nonlocal errors, completed
        n = 0
        while time.perf_counter() < end:
            started = time.perf_counter()
            ok = await call(worker_id * 1_000_000 + n)
            n += 1
            completed += 1
            finished = time.perf_counter()
            if warmup_end <= finished < end:
                if ok:
                    latencies.append(finished - started)
                else:
                    errors += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return latencies, errors, completed


def body(i: int) -> dict[str, str]:
    """A router-style request body."""
    return {
        "command": "!roll",
        "args": '2d6 "with advantage"',
        "user_id": "u1",
        "entity_id": "e1",
        "community_id": "c1",
        "session_id": f"s{i}",
        "message": '!roll 2d6 "with advantage"',
    }


async def run(args: argparse.Namespace) -> None:
    """Start the processes, measure, print the table."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.local_runtime:
            functions = Path(tmp) / "functions"
            functions.mkdir()
            (functions / "dice.py").write_text(HANDLER % FUNCTION_SECONDS, encoding="utf-8")
            prewarm = max(args.concurrency)
            endpoint, lambda_url = start_process(
                [sys.executable, "-c", RUNTIME_SCRIPT, str(functions), str(prewarm)], "stdout"
            )
            backend = f"local runtime, {FUNCTION_SECONDS * 1000:.0f} ms handler"
        else:
            endpoint, lambda_url = start_process(
                [sys.executable, "-c", ENDPOINT_SCRIPT, str(FUNCTION_SECONDS)], "stdout"
            )
            backend = f"ScriptedLambdaServer, Reply.slow({FUNCTION_SECONDS})"
        config = Path(tmp) / "modules.toml"
        config.write_text(
            f'service_api_key = "{KEY}"\n[server]\nmax_in_flight = 5000\n'
            f'[aws]\nregion = "us-east-1"\nendpoint_url = "{lambda_url}"\nmax_retries = 0\n'
            "max_connections = 1024\n"
            '[[modules]]\nname = "dice"\ncommands = ["!roll"]\n',
            encoding="utf-8",
        )
        cli = [
            sys.executable,
            "-c",
            "import sys; from module_sdk.cli import main; sys.exit(main())",
        ]
        server, server_url = start_process(
            [*cli, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
            "stderr",
        )
        rows: list[tuple[str, int, int, int, float, float, float, float, float, float]] = []
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(
                connector=connector, headers={"X-Service-Key": KEY}
            ) as session:
                execute_url = server_url + "/api/v1/execute"

                own_times: list[float] = []  # the server's own ms per call (Server-Timing)

                async def via_server(i: int) -> bool:
                    async with session.post(execute_url, json=body(i)) as reply:
                        await reply.read()
                        timing = reply.headers.get("Server-Timing", "")
                        own_times.append(float(timing.rsplit("server;dur=", 1)[1]))
                        return reply.status == 200

                adapter = LambdaAdapter(
                    "dice",
                    "us-east-1",
                    "dice",
                    endpoint_url=lambda_url,
                    max_retries=0,
                    max_connections=1024,
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench-secret",  # noqa: S106 - a local fake
                )

                async def direct(i: int) -> bool:
                    b = body(i)
                    request = ExecuteRequest(
                        command=b["command"],
                        args=["2d6", "with advantage"],
                        user_id=b["user_id"],
                        entity_id=b["entity_id"],
                        community_id=b["community_id"],
                        session_id=b["session_id"],
                        platform="unknown",
                    )
                    response = await adapter.execute_async(request)
                    return response.success

                async with adapter:
                    for concurrency in args.concurrency:
                        own_times.clear()
                        # Interleave the two paths in rounds so both see the same background
                        # load (the machine is shared); latencies are pooled over the rounds.
                        pooled: dict[str, list[float]] = {"direct adapter": [], "via server": []}
                        failed = dict.fromkeys(pooled, 0)
                        cpu = {mode: [0.0, 0.0, 0] for mode in pooled}
                        measured = dict.fromkeys(pooled, 0.0)
                        paths = [("direct adapter", direct), ("via server", via_server)]
                        for round_no in range(args.rounds):
                            for mode, call in paths if round_no % 2 == 0 else paths[::-1]:
                                # Warm up: one call per worker opens every connection; a
                                # round lasts at least 3 of those so slow rows are measured.
                                warm = time.perf_counter()
                                await asyncio.gather(*(call(-i) for i in range(concurrency)))
                                seconds = max(args.duration, 3 * (time.perf_counter() - warm))
                                own, served = cpu_seconds(), cpu_seconds(server.pid)
                                latencies, errors, completed = await load(
                                    call, concurrency, seconds
                                )
                                measured[mode] += seconds
                                pooled[mode].extend(latencies)
                                failed[mode] += errors
                                cpu[mode][0] += cpu_seconds() - own
                                cpu[mode][1] += cpu_seconds(server.pid) - served
                                cpu[mode][2] += completed
                        for mode, latencies in pooled.items():
                            seconds = measured[mode]
                            n = max(1, int(cpu[mode][2]))
                            rows.append(
                                (
                                    mode,
                                    concurrency,
                                    len(latencies),
                                    failed[mode],
                                    len(latencies) / seconds,
                                    percentile(latencies, 0.5) * 1000,
                                    percentile(latencies, 0.99) * 1000,
                                    cpu[mode][0] / n * 1000,
                                    cpu[mode][1] / n * 1000,
                                    percentile(own_times, 0.99) if mode == "via server" else 0.0,
                                )
                            )
        finally:
            server.terminate()
            server.wait(30)
            endpoint.terminate()
            endpoint.wait(30)

    print(
        f"Module server benchmark: {backend}; {args.rounds} interleaved rounds of >= "
        f"{args.duration:g} s per row; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print()
    print(
        "| path | concurrency | requests | errors | req/s | p50 ms | p99 ms | added p50 ms "
        "| added p99 ms | server's own p99 ms | CPU ms/req: router | CPU ms/req: server |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    direct_rows = {r[1]: r for r in rows if r[0] == "direct adapter"}
    for mode, conc, n, errors, rps, p50, p99, cpu_own, cpu_server, own_p99 in rows:
        added = ("", "")
        server_cpu = own = ""
        if mode == "via server":
            base = direct_rows[conc]
            added = (f"{p50 - base[5]:+.2f}", f"{p99 - base[6]:+.2f}")
            server_cpu = f"{cpu_server:.2f}"
            own = f"{own_p99:.2f}"
        print(
            f"| {mode} | {conc} | {n} | {errors} | {rps:.0f} | {p50:.2f} | {p99:.2f} "
            f"| {added[0]} | {added[1]} | {own} | {cpu_own:.2f} | {server_cpu} |"
        )


async def guard_cost(calls: int = 20000) -> tuple[float, float, float, float]:
    """p50 and p99 (microseconds) of one call: awaiting an answer directly, and through the
    re-send guard (a new session each call, so every call is a first arrival and is stored)."""
    from module_sdk.server._resend import Answer, ResendGuard

    answer = Answer(200, '{"success": true, "message": "rolled 7"}')

    async def produce() -> Answer:
        return answer

    guard = ResendGuard()
    plain: list[float] = []
    guarded: list[float] = []
    for i in range(calls):
        started = time.perf_counter()
        await produce()
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        await guard.run("dice", f"sess_{i}", produce, wait_limit=30)
        guarded.append(time.perf_counter() - started)
    return (
        percentile(plain, 0.5) * 1e6,
        percentile(plain, 0.99) * 1e6,
        percentile(guarded, 0.5) * 1e6,
        percentile(guarded, 0.99) * 1e6,
    )


async def compare(args: argparse.Namespace) -> None:
    """Guard off / guard on / guard on with 2 workers, same endpoint, interleaved rounds."""
    concurrency = args.concurrency[0] if args.concurrency != [1, 10, 50, 500] else 50
    setups = [
        ("guard off, 1 worker", 0, 1),
        ("guard on, 1 worker", 120, 1),
        ("guard on, 2 workers", 120, 2),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        endpoint, lambda_url = start_process(
            [sys.executable, "-c", ENDPOINT_SCRIPT, str(FUNCTION_SECONDS)], "stdout"
        )
        cli = [
            sys.executable,
            "-c",
            "import sys; from module_sdk.cli import main; sys.exit(main())",
        ]
        servers: list[tuple[str, subprocess.Popen[str], str]] = []
        try:
            for label, ttl, workers in setups:
                config = Path(tmp) / f"{ttl}-{workers}.toml"
                config.write_text(
                    f'service_api_key = "{KEY}"\n[server]\nmax_in_flight = 5000\n'
                    f'resend_ttl = {ttl}\naccess_log = "off"\n'
                    f'[aws]\nregion = "us-east-1"\nendpoint_url = "{lambda_url}"\n'
                    "max_retries = 0\nmax_connections = 1024\n"
                    '[[modules]]\nname = "dice"\ncommands = ["!roll"]\n',
                    encoding="utf-8",
                )
                process, url = start_process(
                    [
                        *cli,
                        "serve",
                        "--config",
                        str(config),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                        "--workers",
                        str(workers),
                    ],
                    "stderr",
                )
                servers.append((label, process, url))
            pooled: dict[str, list[float]] = {label: [] for label, _, _ in servers}
            failed = dict.fromkeys(pooled, 0)
            measured = dict.fromkeys(pooled, 0.0)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(
                connector=connector, headers={"X-Service-Key": KEY}
            ) as session:
                for round_no in range(args.rounds):
                    order = servers if round_no % 2 == 0 else servers[::-1]
                    for label, _, url in order:
                        execute_url = url + "/api/v1/execute"

                        async def call(
                            i: int, execute_url: str = execute_url, tag: str = f"sess_{round_no}_"
                        ) -> bool:
                            b = body(i)
                            b["session_id"] = f"{tag}{i}"
                            async with session.post(execute_url, json=b) as reply:
                                await reply.read()
                                return reply.status == 200

                        await asyncio.gather(*(call(-i - 1) for i in range(concurrency)))
                        latencies, errors, _ = await load(call, concurrency, args.duration)
                        pooled[label].extend(latencies)
                        failed[label] += errors
                        measured[label] += args.duration
        finally:
            for _, process, _ in servers:
                process.terminate()
                process.wait(30)
            endpoint.terminate()
            endpoint.wait(30)
    plain50, plain99, guard50, guard99 = await guard_cost()
    print(
        f"Re-send guard and workers: ScriptedLambdaServer, Reply.slow({FUNCTION_SECONDS}); "
        f"concurrency {concurrency}; {args.rounds} interleaved rounds of {args.duration:g} s; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print()
    print("| server | requests | errors | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, latencies in pooled.items():
        print(
            f"| {label} | {len(latencies)} | {failed[label]} "
            f"| {len(latencies) / measured[label]:.0f} | {percentile(latencies, 0.5) * 1000:.2f} "
            f"| {percentile(latencies, 0.99) * 1000:.2f} |"
        )
    off, on = pooled[setups[0][0]], pooled[setups[1][0]]
    print()
    print(
        f"Guard's added p99 over HTTP: {(percentile(on, 0.99) - percentile(off, 0.99)) * 1000:+.2f}"
        f" ms (target <= 1 ms). In-process, per call: {plain50:.1f} / {plain99:.1f} us without, "
        f"{guard50:.1f} / {guard99:.1f} us with the guard (p50 / p99)."
    )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50, 500])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per row")
    parser.add_argument(
        "--local-runtime",
        action="store_true",
        help="back the module with the local runtime (one prewarmed worker per concurrent call)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="measure the re-send guard (on/off) and --workers 1/2 instead (see the docstring)",
    )
    args = parser.parse_args()
    if args.compare:
        asyncio.run(compare(args))
        return
    if args.local_runtime and max(args.concurrency) > 64:
        parser.error(
            "--local-runtime starts one worker process per concurrent call: use --concurrency <= 64"
        )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
