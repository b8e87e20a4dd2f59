"""Benchmark: the local runtime's execution environments per runtime, and hot reload.

For each runtime (the built-in Python worker, Python through awslambdaric, Node.js with the
shipped bootstrap, a shell ``bootstrap`` using curl) it measures, with a no-op handler:

- cold start: a call that has to start its environment (init + first run), median of N;
- warm p50 / p99 at concurrency 1 and 50 (environments started before timing);

and the time from a saved edit to the first call answered by the new code (``reload=True``,
the watcher, a warm swap). The runtime runs in this process; the client is aiohttp on the
same loop (the cheapest client, so the runtime is what is measured). Runtimes whose tool is
missing (node, curl, awslambdaric) are skipped and said so.

    .venv/bin/python bench/bench_runtimes.py [--duration 2] [--cold 5]
        [--write-docs]    # replace the "Local runtime: every runtime" section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from module_sdk.local import LocalLambdaRuntime, ReloadReport

ROOT = Path(__file__).resolve().parent.parent
SIGNED = {
    # The runtime takes only SigV4-shaped calls (any credentials): what every AWS SDK sends.
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20260101/us-east-1/lambda/"
    "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
}
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Local runtime: every runtime"

SHELL_BOOTSTRAP = (ROOT / "examples" / "runtimes" / "custom" / "bootstrap").read_text()
TOML = """
[functions.worker]
handler = "noop.handler"

[functions.awslambdaric]
handler = "noop.handler"
runtime_interface_client = "awslambdaric"

[functions.node]
runtime = "nodejs20.x"
code = "node"
handler = "index.handler"

[functions.shell]
runtime = "provided.al2023"
code = "shell"
handler = "function.handler"
"""


def _folder(root: Path) -> Path:
    (root / "noop.py").write_text("def handler(event, context):\n    return {'success': True}\n")
    (root / "node").mkdir()
    (root / "node" / "index.js").write_text("exports.handler = async () => ({ success: true });\n")
    (root / "shell").mkdir()
    (root / "shell" / "bootstrap").write_text(SHELL_BOOTSTRAP)
    os.chmod(root / "shell" / "bootstrap", 0o700)
    (root / "shell" / "function.sh").write_text("handler() {\n  echo '{\"success\": true}'\n}\n")
    (root / "functions.toml").write_text(TOML)
    return root


def _available() -> dict[str, str | None]:
    """Runtime name -> why it is skipped (None: available)."""
    return {
        "worker": None,
        "awslambdaric": None
        if importlib.util.find_spec("awslambdaric")
        else "awslambdaric not installed",
        "node": None if shutil.which("node") else "no node on PATH",
        "shell": None if shutil.which("curl") else "no curl on PATH",
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _invoke(session: aiohttp.ClientSession, url: str, name: str) -> None:
    async with session.post(
        f"{url}/2015-03-31/functions/{name}/invocations", data=b"{}", headers=SIGNED
    ) as response:
        await response.read()
        if response.status != 200 or response.headers.get("X-Amz-Function-Error"):
            raise RuntimeError(f"{name}: {response.status} {await response.text()}")


async def _cold(directory: Path, name: str, count: int) -> float:
    """Median ms of a call that starts its environment (a fresh runtime each time)."""
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with LocalLambdaRuntime(directory) as rt:
                started = time.perf_counter()
                await _invoke(session, rt.url, name)
                times.append((time.perf_counter() - started) * 1000)
    return _pct(times, 0.5)


async def _warm(directory: Path, name: str, concurrency: int, duration: float) -> dict[str, Any]:
    async with (
        LocalLambdaRuntime(directory, prewarm=concurrency, concurrency_limit=1000) as rt,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session,
    ):
        for _ in range(2):  # touch every environment once before timing
            await asyncio.gather(*(_invoke(session, rt.url, name) for _ in range(concurrency)))
        latencies: list[float] = []
        stop = time.perf_counter() + duration

        async def loop() -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await _invoke(session, rt.url, name)
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50": _pct(latencies, 0.5),
        "p99": _pct(latencies, 0.99),
    }


async def _reload(directory: Path, rounds: int) -> list[float]:
    """ms from writing the file to the first call that answers with the new code."""
    target = directory / "noop.py"
    times = []
    changed = asyncio.Event()

    def on_reload(report: ReloadReport) -> None:
        if "worker" in report.restarted:
            changed.set()

    async with (
        LocalLambdaRuntime(directory, reload=True, on_reload=on_reload) as rt,
        aiohttp.ClientSession() as session,
    ):
        for number in range(rounds):
            changed.clear()
            started = time.perf_counter()
            target.write_text(f"def handler(event, context):\n    return {{'v': {number}}}\n")
            while True:  # poll like a developer pressing enter: the first new answer counts
                async with session.post(
                    f"{rt.url}/2015-03-31/functions/worker/invocations",
                    data=b"{}",
                    headers=SIGNED,
                ) as response:
                    if (await response.json()).get("v") == number:
                        break
                await asyncio.sleep(0.005)
            times.append((time.perf_counter() - started) * 1000)
            await changed.wait()
    return times


async def main(args: argparse.Namespace) -> str:
    lines: list[str] = []
    skipped = {k: v for k, v in _available().items() if v}
    with tempfile.TemporaryDirectory() as tmp:
        directory = _folder(Path(tmp))
        rows = []
        for name, why in _available().items():
            if why:
                continue
            cold = await _cold(directory, name, args.cold)
            one = await _warm(directory, name, 1, args.duration)
            fifty = await _warm(directory, name, 50, args.duration)
            rows.append((name, cold, one, fifty))
            print(name, f"cold {cold:.0f} ms", one, fifty, flush=True)
        reload_times = await _reload(directory, args.reload_rounds)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(HEADING)
    lines.append("")
    lines.append(
        f"No-op handler per runtime, `bench/bench_runtimes.py --duration {args.duration:g}` "
        f"on {os.cpu_count()} cores (CPython {platform.python_version()}, load average {load} "
        "at the end, machine shared: provisional figures). Runtime and aiohttp client in one "
        "process; warm figures with environments started before timing (closed loop)."
    )
    lines.append("")
    lines.append(
        "| runtime | cold start ms (median) | c=1 calls/s | c=1 p50 ms | c=1 p99 ms "
        "| c=50 calls/s | c=50 p50 ms | c=50 p99 ms |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    labels = {
        "worker": "built-in Python worker",
        "awslambdaric": "Python via awslambdaric",
        "node": "Node.js (shipped bootstrap)",
        "shell": "shell `bootstrap` + curl",
    }
    for name, cold, one, fifty in rows:
        lines.append(
            f"| {labels[name]} | {cold:.0f} | {one['rps']:.0f} | {one['p50']:.1f} | "
            f"{one['p99']:.1f} | {fifty['rps']:.0f} | {fifty['p50']:.1f} | {fifty['p99']:.1f} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {labels[name]} | skipped: {why} | | | | | | |")
    lines.append("")
    lines.append(
        f"Hot reload (`reload=True`): from writing a handler file to the first call answered "
        f"by the new code, {len(reload_times)} edits: median {_pct(reload_times, 0.5):.0f} ms, "
        f"max {max(reload_times):.0f} ms (watch debounce 50 ms, then the new version's "
        "environment is started before it takes calls)."
    )
    lines.append("")
    return "\n".join(lines)


def _write_docs(section: str) -> None:
    text = DOCS.read_text()
    pattern = re.compile(rf"{re.escape(HEADING)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--reload-rounds", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    print(result)
    if arguments.write_docs:
        _write_docs(result)
    sys.exit(0)
