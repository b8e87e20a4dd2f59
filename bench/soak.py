"""Reliability soak: the full chaos profile, then mixed load with faults for SOAK_MINUTES.

Runs against the local Lambda runtime (127.0.0.1 only) with the chaos harness of
``tests/support/reliability.py``: every answer is checked as it arrives against the runtime's
record of the faults each attempt met. Memory, fds, sockets, threads and tasks are sampled every
minute; the figures are printed and, with ``--write``, written to ``docs/reliability.md``.

    SOAK_MINUTES=30 .venv/bin/python bench/soak.py --write docs/reliability.md   # make soak
    .venv/bin/python bench/soak.py --minutes 2 --skip-chaos                      # a quick look

Exit status 1 when any answer was wrong or lost.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# Everything is local: fake credentials, no metadata service, no user AWS configuration.
os.environ.update(
    AWS_ACCESS_KEY_ID="AKIDSOAKLOCAL0000000",
    AWS_SECRET_ACCESS_KEY="soak-local-secret-not-real",  # noqa: S106 - a local fake
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"):
    os.environ.pop(_name, None)

from support.reliability import (  # noqa: E402
    FULL,
    ChaosReport,
    ChaosStack,
    Figures,
    Profile,
    Resources,
    chaos_runtime,
    resources,
    run_chaos,
    settled,
)

SOAK_PROFILE = Profile(requests=0, concurrency=50)
"""Mixed load for the soak: the chaos mix and faults, 50 concurrent callers, no end count."""
TEMPLATE = Path(__file__).with_name("reliability_template.md")
"""The static text of docs/reliability.md; ``{figures}`` marks where the figures go."""
GROWTH_LIMIT_MB_PER_MIN = 0.25
"""A fitted memory slope at or below this is "no growth trend" (7.5 MB over 30 minutes)."""


@dataclass
class Sample:
    """One per-minute measurement of the soak."""

    minute: float
    requests: int
    resources: Resources


@dataclass
class SoakReport:
    """What the soak did."""

    minutes: float
    concurrency: int
    figures: Figures
    faults: dict[str, int]
    retries: int
    samples: list[Sample]
    cold_starts: int
    before: Resources
    after: Resources
    seconds: float


def slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of ``y`` over ``x`` (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


async def soak(minutes: float, concurrency: int, workdir: Path) -> SoakReport:
    """Run mixed load with faults for ``minutes``, sampling every minute."""
    profile = Profile(requests=0, concurrency=concurrency)
    async with chaos_runtime(workdir, profile) as runtime:
        runtime.set_faults(profile.faults())
        warm = ChaosStack(runtime, profile, workdir, "soak-warmup")
        async with warm:
            await warm.run(concurrency * 4, concurrency, "warm")
        await runtime.wait_for_events(60)
        await settled(None, profile.slow_seconds + 5)
        runtime.stats.reset()
        runtime.decisions.clear()

        stack = ChaosStack(runtime, profile, workdir, "soak")
        stack.ledger.keep_failed_events = False  # count them; do not keep every id
        started = time.monotonic()
        end = started + minutes * 60
        before = resources()
        samples = [Sample(0.0, 0, before)]
        print(
            f"{'minute':>6} {'requests':>9} {'rss MB':>8} {'fds':>5} {'sockets':>7} "
            f"{'threads':>7} {'tasks':>6}",
            flush=True,
        )

        async def sampler() -> None:
            next_at = started + 60
            while next_at <= end + 1:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                stack.ledger.settle_events()
                done = sum(stack.ledger.figures.answers.values())
                sample = Sample((time.monotonic() - started) / 60, done, resources())
                samples.append(sample)
                r = sample.resources
                print(
                    f"{sample.minute:6.1f} {done:9d} {r.rss_mb:8.1f} {r.fds:5d} "
                    f"{r.sockets:7d} {r.threads:7d} {r.tasks:6d}",
                    flush=True,
                )
                next_at += 60

        async with stack:
            sampling = asyncio.create_task(sampler())
            await stack.run(None, concurrency, "soak", until=end)
            await sampling
        seconds = time.monotonic() - started
        runtime.set_faults(None)
        await runtime.wait_for_events(60)
        stack.ledger.settle_events(everything=True)
        faults = dict(runtime.stats.faults)
        cold_starts = sum(runtime.stats.cold_starts.values())
        after = await settled(before, profile.slow_seconds + 5)
    return SoakReport(
        minutes=minutes,
        concurrency=concurrency,
        figures=stack.ledger.figures,
        faults=faults,
        retries=stack.counter.retries,
        samples=samples,
        cold_starts=cold_starts,
        before=before,
        after=after,
        seconds=seconds,
    )


def outcome_rows(figures: Figures) -> str:
    """Markdown rows of answers by outcome."""
    return "\n".join(
        f"| `{name}` | {count:,} |" for name, count in sorted(figures.outcomes.items())
    )


def fault_text(faults: dict[str, int]) -> str:
    """``throttle 1,280 · error 286 ...``"""
    names = ("throttle", "error", "drop", "slow")
    return ", ".join(f"{name} {faults.get(name, 0):,}" for name in names)


def table(rows: list[tuple[str, object]]) -> str:
    """A two-column Markdown table."""
    lines = ["| Figure | Value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def chaos_section(report: ChaosReport) -> str:
    """The chaos run's figures as Markdown."""
    f, p = report.figures, report.profile
    answered = sum(f.answers.values())
    b, a = report.baseline, report.after
    bound = 1 + p.max_retries
    rows: list[tuple[str, object]] = [
        ("requests", f"{p.requests:,}"),
        ("answers (exactly one each)", f"{answered:,}"),
        ("lost", p.requests - answered),
        ("wrong answers (oracle violations)", len(f.problems)),
        ("HTTP attempts seen by the runtime", f"{f.http_attempts:,}"),
        ("retries", f"{report.retries:,}"),
        ("handler runs", f"{f.handler_runs:,}"),
        ("most attempts / runs for one request", f"{f.max_attempts_seen} / {f.max_runs_seen}"),
        ("bound (1 + max_retries)", bound),
        ("faults injected", fault_text(report.faults)),
        ("timeouts caused by load, not by a fault", f.late_timeouts),
        (
            "failed Event requests / dead-lettered",
            f"{len(report.failed_events)} / {len(report.dlq_ids)}",
        ),
        ("load time", f"{report.seconds:.1f} s"),
        ("RSS before / after", f"{b.rss_mb:.1f} MB / {a.rss_mb:.1f} MB"),
        ("sockets before / after", f"{b.sockets} / {a.sockets}"),
        ("fds before / after", f"{b.fds} / {a.fds}"),
        ("handler processes started during the run", f"{report.cold_starts} (2 pipes each)"),
        ("threads before / after", f"{b.threads} / {a.threads} (a child watcher per process)"),
        ("asyncio tasks before / after", f"{b.tasks} / {a.tasks}"),
    ]
    return f"""## Chaos run ({p.requests:,} commands at concurrency {p.concurrency})

Paths: {f.requests["sync"]:,} through `LambdaAdapter` (RequestResponse), {f.requests["event"]:,}
through an Event adapter with a SQLite dead-letter queue, {f.requests["server"]:,} through the
module server over HTTP. Faults: {p.throttle_rate:.0%} throttles (429, `Retry-After:
{p.retry_after:g}`), {p.error_rate:.0%} 500s, {p.drop_rate:.0%} dropped connections,
{p.slow_rate:.0%} replies held {p.slow_seconds:g} s against a read_timeout of
{p.read_timeout:g} s; seed {p.seed}. Retries: max_retries {p.max_retries} (Event
{p.event_max_retries}), backoff {p.initial_retry_delay:g}-{p.max_retry_delay:g} s; the
adapters share one client with {p.max_connections} connections.

{table(rows)}

| outcome | answers |
|---|---|
{outcome_rows(f)}
"""


def soak_section(report: SoakReport) -> str:
    """The soak's figures as Markdown."""
    f = report.figures
    answered = sum(f.answers.values())
    sent = sum(f.requests.values())
    points = [(s.minute, s.resources.rss_mb) for s in report.samples[1:]]
    fitted = slope(points)
    verdict = (
        "no growth trend"
        if fitted <= GROWTH_LIMIT_MB_PER_MIN
        else "GROWTH: memory rises over the run"
    )
    samples = "\n".join(
        f"| {s.minute:.1f} | {s.requests:,} | {s.resources.rss_mb:.1f} | {s.resources.fds} | "
        f"{s.resources.sockets} | {s.resources.threads} | {s.resources.tasks} |"
        for s in report.samples
    )
    b, a = report.before, report.after
    rows: list[tuple[str, object]] = [
        ("requests", f"{sent:,} ({sent / max(report.seconds, 1e-9):.0f}/s)"),
        ("answers (exactly one each)", f"{answered:,}"),
        ("lost", sent - answered),
        ("wrong answers (oracle violations)", len(f.problems)),
        ("retries", f"{report.retries:,}"),
        ("faults injected", fault_text(report.faults)),
        ("timeouts caused by load, not by a fault", f.late_timeouts),
        ("failed Event requests, all dead-lettered", f"{f.dead_lettered:,}"),
        ("RSS before / after", f"{b.rss_mb:.1f} MB / {a.rss_mb:.1f} MB"),
        ("sockets before / after", f"{b.sockets} / {a.sockets}"),
        ("handler processes started during the soak", report.cold_starts),
        (
            f"memory slope (least squares, minutes 1-{len(report.samples) - 1})",
            f"{fitted:+.3f} MB/min",
        ),
        ("verdict", f"**{verdict}** (limit {GROWTH_LIMIT_MB_PER_MIN} MB/min)"),
    ]
    return f"""## Soak ({report.minutes:g} minutes at concurrency {report.concurrency})

The chaos mix and fault rates, sent continuously by {report.concurrency} callers; each answer is
checked as it arrives and its bookkeeping dropped, so the harness holds nothing per request.

{table(rows)}

| minute | answers so far | RSS MB | fds | sockets | threads | tasks |
|---|---|---|---|---|---|---|
{samples}
"""


def document(chaos: ChaosReport | None, soak_report: SoakReport | None, note: str) -> str:
    """The whole of docs/reliability.md."""
    parts = [f"## The committed figures\n\n{note}\n"]
    if chaos is not None:
        parts.append(chaos_section(chaos))
    if soak_report is not None:
        parts.append(soak_section(soak_report))
    return TEMPLATE.read_text(encoding="utf-8").replace("{figures}", "\n".join(parts))


async def main() -> int:
    """Parse arguments, run, print and write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=float(os.environ.get("SOAK_MINUTES", "30")),
        help="soak duration (default: SOAK_MINUTES or 30)",
    )
    parser.add_argument("--concurrency", type=int, default=SOAK_PROFILE.concurrency)
    parser.add_argument("--skip-chaos", action="store_true", help="only the soak")
    parser.add_argument("--write", type=Path, help="write the Markdown report to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # thousands of expected retry warnings

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        chaos = None
        if not args.skip_chaos:
            print(
                f"chaos: {FULL.requests:,} commands at concurrency {FULL.concurrency}", flush=True
            )
            chaos = await run_chaos(Path(tmp) / "chaos", FULL)
            print(chaos_section(chaos), flush=True)
        print(f"soak: {args.minutes:g} minutes at concurrency {args.concurrency}", flush=True)
        soak_report = await soak(args.minutes, args.concurrency, Path(tmp) / "soak")
        print(soak_section(soak_report), flush=True)

    note = (
        f"Produced on {started:%Y-%m-%d} by `make soak SOAK_MINUTES={args.minutes:g}` (a "
        f"{args.minutes:g}-minute soak; the default is 30){'' if chaos else ', chaos skipped,'}"
        f" on {platform.system()} / Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU cores shared with other work: "
        "throughput figures are that machine's, not the SDK's ceiling."
    )
    if args.write is not None:
        args.write.write_text(document(chaos, soak_report, note), encoding="utf-8")
        print(f"wrote {args.write}")
    problems = (chaos.figures.problems if chaos else []) + soak_report.figures.problems
    for problem in problems[:20]:
        print("PROBLEM", problem)
    lost = sum(soak_report.figures.requests.values()) - sum(soak_report.figures.answers.values())
    return 1 if problems or lost else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
