"""Chaos: chat commands through LambdaAdapter and the module server against a faulty runtime.

The local runtime injects 20 % throttles (with Retry-After), 5 % 500s, 2 % dropped connections
and 2 % replies slower than ``read_timeout``, from a fixed seed. Every answer is checked
against the runtime's own record of what each attempt met (``support.reliability.Ledger``).

``make test`` runs the fast profile (600 commands at concurrency 60);
``RELIABILITY_PROFILE=full`` (``make chaos``, and ``make soak``) runs the issue's 5,000 at 500.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from support.reliability import TRANSIENT, profile_from_env, run_chaos

RSS_TOLERANCE_MB = 25.0
"""Allowed resident-memory growth over the warmed-up baseline (allocator high-water marks)."""


async def test_chaos_every_request_gets_one_correct_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Exactly one correct answer per request, retries bounded, failed events dead-lettered,
    and the process's fds, sockets, threads, tasks and memory back at their baseline."""
    caplog.set_level(logging.CRITICAL, logger="module_sdk")  # thousands of retry warnings
    profile = profile_from_env()
    report = await run_chaos(tmp_path, profile)
    figures = report.figures

    assert figures.problems == []
    # exactly one ExecuteResponse per request, on every path
    assert sum(figures.answers.values()) == profile.requests
    assert figures.answers == figures.requests
    assert set(figures.answers) == {"sync", "event", "server"}
    assert report.unattributed == 0
    # the retry bound, at the runtime: HTTP calls and handler runs per request_id
    assert figures.max_attempts_seen <= 1 + profile.max_retries
    assert figures.max_runs_seen <= 1 + profile.max_retries
    # every fault kind was injected, and some requests failed for good because of them
    assert {"throttle", "error", "drop", "slow"} <= set(report.faults)
    assert report.statuses.get("429", 0) == report.faults["throttle"]
    assert set(figures.outcomes) - {"success", "module_error", "function_error"} <= TRANSIENT
    # every failed Event request is in the dead-letter queue, and nothing else is
    assert report.failed_events
    assert report.dlq_ids == report.failed_events
    assert set(report.dlq_codes) <= TRANSIENT
    # the process is back where it started
    base, after = report.baseline, report.after
    assert after.sockets == base.sockets
    assert after.pipes == base.pipes + 2 * report.cold_starts  # new warm handler processes
    assert after.fds - after.sockets - after.pipes == base.fds - base.sockets - base.pipes
    assert after.other_threads == base.other_threads
    assert after.watcher_threads == base.watcher_threads + report.cold_starts
    assert after.tasks == base.tasks
    assert report.after_tasks == []
    assert after.rss_mb - base.rss_mb < RSS_TOLERANCE_MB
