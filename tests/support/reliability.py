"""The chaos harness shared by the reliability tests and ``bench/soak.py``.

It drives chat commands through ``LambdaAdapter`` (RequestResponse and Event) and through the
module server over HTTP, against the local Lambda runtime injecting faults, and checks every
answer against an independent oracle: the fault the runtime decided for each attempt of each
request (recorded per event ``request_id``) and the handler's known answer per command.

Nothing in the oracle comes from the SDK under test: the expected ``error_code`` of a request is
derived from the runtime's own fault decisions for that request's attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from module_sdk import ExecuteRequest, ExecuteResponse
from module_sdk.adapters import LambdaAdapter
from module_sdk.errors import InvocationError
from module_sdk.local import FaultDecision, Faults, LocalLambdaRuntime
from module_sdk.resilience.deadletter import SQLiteDeadLetterSink
from module_sdk.resilience.pipeline import Invocation
from module_sdk.server import ModuleServer, parse_config

SERVICE_KEY = "reliability-service-key-0123456789abcdef"
SYNC_FUNCTION = "chat"
EVENT_FUNCTION = "chat_event"
EVENT_CONCURRENCY = 4

CHAT_HANDLER = """
def handler(event, context):
    trigger = event["trigger"]
    command = trigger["command"]
    if command == "!boom":
        raise RuntimeError("the dice fell off the table")
    if command == "!nope":
        return {"success": False, "error": "no such dice"}
    return {"success": True, "message": "rolled " + trigger["context_text"],
            "response_type": "text", "targets": ["twitch"]}
"""

FUNCTIONS_TOML = f"""
[functions.{EVENT_FUNCTION}]
handler = "chat.handler"
reserved_concurrency = {EVENT_CONCURRENCY}
"""

# What the handler answers per command when its run is not disturbed (None: success).
COMMAND_OUTCOMES: dict[str, str | None] = {
    "!roll": None,
    "!nope": "module_error",
    "!boom": "function_error",
}
TRANSIENT = frozenset({"throttled", "service_error", "connection", "timeout"})
BUSY_CODES = frozenset({"throttled", "rate_limited", "circuit_open"})


def write_functions(directory: Path) -> Path:
    """Write the chat handler and its Event twin (limited concurrency) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chat.py").write_text(CHAT_HANDLER, encoding="utf-8")
    (directory / "functions.toml").write_text(FUNCTIONS_TOML, encoding="utf-8")
    return directory


@dataclass(frozen=True)
class Profile:
    """A chaos load: its size, its fault rates and the adapters' retry settings."""

    requests: int = 5000
    concurrency: int = 500
    server_share: float = 0.10
    event_share: float = 0.20
    max_connections: int = 32
    throttle_rate: float = 0.20
    error_rate: float = 0.05
    drop_rate: float = 0.02
    slow_rate: float = 0.02
    read_timeout: float = 2.0
    slow_seconds: float = 2.5
    retry_after: float = 0.01
    max_retries: int = 3
    event_max_retries: int = 1
    initial_retry_delay: float = 0.002
    max_retry_delay: float = 0.05
    seed: int = 20261126

    def faults(self) -> Faults:
        """The runtime's faults for this profile."""
        return Faults(
            throttle_rate=self.throttle_rate,
            error_rate=self.error_rate,
            drop_rate=self.drop_rate,
            slow_rate=self.slow_rate,
            slow_seconds=self.slow_seconds,
            retry_after=self.retry_after,
        )


FULL = Profile()
"""The issue's profile: 5,000 commands at concurrency 500 (``make chaos`` / ``make soak``)."""
FAST = Profile(requests=600, concurrency=60)
"""The ``make test`` profile: the same mix and fault rates, one eighth of the size."""


def profile_from_env() -> Profile:
    """``RELIABILITY_PROFILE=full`` selects :data:`FULL`; anything else :data:`FAST`."""
    return FULL if os.environ.get("RELIABILITY_PROFILE", "fast") == "full" else FAST


@dataclass(frozen=True)
class Attempt:
    """One HTTP call as the runtime handled it: the fault decision it drew."""

    decision: FaultDecision


class RecordingRuntime(LocalLambdaRuntime):
    """The local runtime, also keeping every fault decision per event ``request_id``.

    ``_apply_faults`` is where the runtime applies the decision it drew for one HTTP call;
    recording there gives the ground truth of what each attempt of a request met.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decisions: dict[str, list[Attempt]] = {}
        self.unattributed = 0

    async def _apply_faults(
        self, request: web.Request, function: str, decision: FaultDecision
    ) -> None:
        body = await request.read()  # already read by the runtime: the cached bytes
        rid = _request_id(body)
        if rid is None:
            self.unattributed += 1
        else:
            self.decisions.setdefault(rid, []).append(Attempt(decision))
        await super()._apply_faults(request, function, decision)


def _request_id(body: bytes) -> str | None:
    import json

    try:
        event = json.loads(body)
    except ValueError:
        return None
    rid = event.get("request_id") if isinstance(event, dict) else None
    return rid if isinstance(rid, str) else None


class AttemptCounter:
    """An observer timing the adapter's network attempts per session id (harness clock)."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[list[float]]] = {}
        self.retry_codes: dict[str, list[str]] = {}
        self.retries = 0

    def on_start(self, invocation: Invocation) -> None:
        """Nothing to do at the start."""

    def on_attempt(self, invocation: Invocation) -> None:
        """Note when one attempt starts."""
        now = time.monotonic()
        self.attempts.setdefault(invocation.session_id, []).append([now, now])

    def _end(self, invocation: Invocation) -> None:
        spans = self.attempts.get(invocation.session_id)
        if spans:
            spans[-1][1] = time.monotonic()

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Note when the attempt ended, and why the adapter retried it."""
        self._end(invocation)
        self.retries += 1
        self.retry_codes.setdefault(invocation.session_id, []).append(error.error_code.value)

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Note when the last attempt ended."""
        self._end(invocation)

    def pop(self, rid: str) -> tuple[list[float], list[str]]:
        """The durations of ``rid``'s attempts and its retry reasons (forgotten afterwards)."""
        spans = self.attempts.pop(rid, [])
        return [end - start for start, end in spans], self.retry_codes.pop(rid, [])


def attempt_outcome(decision: FaultDecision, command: str, kind: str) -> str | None:
    """What one attempt met, from the runtime's decision (the runtime's own precedence)."""
    if decision.drop:
        return "connection"
    if decision.throttle:
        return "throttled"
    if decision.error:
        return "service_error"
    if decision.slow:
        return "timeout"
    if decision.drop_after_run:
        return "connection"
    return None if kind == "event" else COMMAND_OUTCOMES[command]


def reached_function(decision: FaultDecision) -> bool:
    """Whether the handler ran for this attempt."""
    return not (decision.drop or decision.throttle or decision.error)


@dataclass
class Answer:
    """One request's single answer, as the caller saw it."""

    success: bool
    error_code: str | None
    dead_letter: str | None
    status: int | None = None


@dataclass
class Figures:
    """What a run did (for the tests' assertions and docs/reliability.md)."""

    requests: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    http_attempts: int = 0
    handler_runs: int = 0
    dead_lettered: int = 0
    max_attempts_seen: int = 0
    max_runs_seen: int = 0
    late_timeouts: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Keep a violation (only the first 50 are kept verbatim)."""
        if len(self.problems) < 50:
            self.problems.append(text)
        elif len(self.problems) == 50:
            self.problems.append("... more problems not shown")


class Ledger:
    """Checks every answer against the runtime's decisions as soon as it arrives.

    Per-request bookkeeping is dropped once a request is checked, so a long soak keeps a
    bounded amount of it (Event requests wait ``event_settle`` seconds for their runs).
    """

    def __init__(
        self,
        runtime: RecordingRuntime,
        counter: AttemptCounter,
        max_retries: int,
        *,
        read_timeout: float,
        event_max_retries: int | None = None,
        event_settle: float = 10.0,
    ) -> None:
        self.runtime = runtime
        self.counter = counter
        self.max_retries = max_retries
        self.read_timeout = read_timeout
        self.event_max_retries = max_retries if event_max_retries is None else event_max_retries
        self.figures = Figures()
        self.event_settle = event_settle
        self._pending_events: deque[tuple[float, str, int, int]] = deque()
        self.failed_events: set[str] = set()
        self.keep_failed_events = True

    def check(self, rid: str, kind: str, command: str, answer: Answer) -> None:
        """Check one request's answer (called exactly once per request)."""
        f = self.figures
        f.answers[kind] += 1
        f.outcomes[answer.error_code or "success"] += 1
        decisions = self.runtime.decisions.pop(rid, [])
        durations, retry_codes = self.counter.pop(rid)
        attempts = len(durations)
        bound = 1 + (self.event_max_retries if kind == "event" else self.max_retries)
        f.http_attempts += len(decisions)
        f.max_attempts_seen = max(f.max_attempts_seen, attempts)
        if attempts != len(decisions):
            f.problem(
                f"{rid}: the adapter made {attempts} attempts, the runtime saw {len(decisions)}"
            )
        if attempts > bound:
            f.problem(f"{rid}: {attempts} attempts, over 1 + max_retries ({bound})")
        if not decisions:
            f.problem(f"{rid}: no attempt reached the runtime")
            return
        met = self._met(decisions, durations, command, kind, answer)
        if any(m not in TRANSIENT for m in met[:-1]):
            f.problem(f"{rid}: retried after a final outcome: {met} (retried for {retry_codes})")
        last = met[-1]
        if answer.success != (last is None) or (not answer.success and answer.error_code != last):
            f.problem(f"{rid} ({kind} {command}): answered {answer.error_code}, attempts met {met}")
        if last in TRANSIENT and len(decisions) != bound:
            f.problem(f"{rid}: gave up on {last} after {len(decisions)} attempts")
        if answer.success != (answer.error_code is None):
            f.problem(f"{rid}: success={answer.success} with error_code={answer.error_code}")
        if kind == "server":
            busy = answer.error_code in BUSY_CODES
            if answer.status != (429 if busy else 200):
                f.problem(f"{rid}: server answered HTTP {answer.status} for {answer.error_code}")
        stored = answer.dead_letter
        if kind == "event" and not answer.success:
            if stored != "stored":
                f.problem(f"{rid}: failed Event request not dead-lettered ({stored})")
            f.dead_lettered += 1
            if self.keep_failed_events:
                self.failed_events.add(rid)
        elif stored is not None:
            f.problem(f"{rid}: {kind} answer marked dead_letter={stored}")
        expected_runs = sum(1 for d in decisions if reached_function(d.decision))
        if kind == "event":
            self._pending_events.append((time.monotonic(), rid, expected_runs, bound))
        else:
            self._check_runs(rid, expected_runs, SYNC_FUNCTION, bound)

    def _met(
        self,
        attempts: list[Attempt],
        durations: list[float],
        command: str,
        kind: str,
        answer: Answer,
    ) -> list[str | None]:
        """What each attempt met, from the runtime's decisions.

        One thing no fault plan decides: an attempt the runtime answered late because the
        machine was overloaded. An attempt that lasted at least ``read_timeout`` by the
        harness's own clock may have timed out at the client whatever the runtime decided: it
        counts as a timeout when the adapter treated it as one (it retried, or answered
        ``timeout`` last), and is counted in ``late_timeouts``.
        """
        met: list[str | None] = []
        for position, attempt in enumerate(attempts):
            planned = attempt_outcome(attempt.decision, command, kind)
            lasted = durations[position] if position < len(durations) else 0.0
            late = planned != "timeout" and lasted >= self.read_timeout * 0.95
            is_last = position == len(attempts) - 1
            retried_anyway = not is_last and planned not in TRANSIENT
            if late and (retried_anyway or (is_last and answer.error_code == "timeout")):
                self.figures.late_timeouts += 1
                planned = "timeout"
            met.append(planned)
        return met

    def _check_runs(self, rid: str, expected: int, function: str, bound: int) -> None:
        stats = self.runtime.stats
        runs = stats.request_ids.pop(rid, 0)
        stats.runs.pop((function, rid), None)
        self.figures.handler_runs += runs
        self.figures.max_runs_seen = max(self.figures.max_runs_seen, runs)
        if runs != expected:
            self.figures.problem(f"{rid}: the handler ran {runs} times, expected {expected}")
        if runs > bound:
            self.figures.problem(f"{rid}: the handler ran {runs} times, over 1 + max_retries")

    def settle_events(self, *, everything: bool = False) -> None:
        """Check the run counts of Event requests answered ``event_settle`` seconds ago."""
        horizon = time.monotonic() - self.event_settle
        while self._pending_events and (everything or self._pending_events[0][0] < horizon):
            _, rid, expected, bound = self._pending_events.popleft()
            self._check_runs(rid, expected, EVENT_FUNCTION, bound)


@dataclass(frozen=True)
class Resources:
    """What the process holds: fds, sockets, threads, tasks and resident memory."""

    fds: int
    sockets: int
    pipes: int
    threads: int
    tasks: int
    rss_mb: float
    watcher_threads: int = 0
    """asyncio's child watchers: one per live handler process of the local runtime."""
    executor_threads: int = 0
    """The loop's default executor (reused, at most ``min(32, cores + 4)``)."""

    @property
    def other_threads(self) -> int:
        """Every other thread: what the SDK itself would have leaked."""
        return self.threads - self.watcher_threads - self.executor_threads


def resources() -> Resources:
    """Measure the process now (after a full garbage collection)."""
    gc.collect()
    fds = sockets = pipes = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the directory's own fd, already closed
        fds += 1
        sockets += target.startswith("socket:")
        pipes += target.startswith("pipe:")
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:
        tasks = 0
    names = [thread.name for thread in threading.enumerate()]
    return Resources(
        fds,
        sockets,
        pipes,
        len(names),
        tasks,
        rss_mb(),
        watcher_threads=sum(name.startswith(("asyncio-waitpid-", "waitpid-")) for name in names),
        executor_threads=sum(name.startswith("asyncio_") for name in names),
    )


async def settled(baseline: Resources | None, timeout: float) -> Resources:
    """Measure once sockets and tasks are back at ``baseline`` (or ``timeout`` passed).

    The runtime (the stand-in for AWS, not the SDK) keeps serving a slow reply the client gave
    up on until its delay ends; the measurement waits for those, briefly.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = resources()
        if baseline is None:
            current = asyncio.current_task()
            busy = any(t is not current for t in asyncio.all_tasks())
            settled = not busy
        else:
            settled = now.sockets <= baseline.sockets and now.tasks <= baseline.tasks
        if settled or time.monotonic() >= deadline:
            return now
        await asyncio.sleep(0.1)


def rss_mb() -> float:
    """Resident set size of this process, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def command_for(index: int) -> str:
    """A deterministic command mix: 84 % !roll, 8 % !nope, 8 % !boom."""
    slot = index % 25
    if slot in (3, 16):
        return "!nope"
    if slot in (7, 20):
        return "!boom"
    return "!roll"


def kind_for(index: int, profile: Profile) -> str:
    """Which path request ``index`` takes: ``sync``, ``event`` or ``server``."""
    slot = (index * 37) % 100
    if slot < profile.server_share * 100:
        return "server"
    if slot < (profile.server_share + profile.event_share) * 100:
        return "event"
    return "sync"


class ChaosStack:
    """Adapters (sync and Event, SQLite dead-letter queue), the module server and a client."""

    def __init__(
        self, runtime: RecordingRuntime, profile: Profile, workdir: Path, tag: str
    ) -> None:
        self.runtime = runtime
        self.profile = profile
        self.counter = AttemptCounter()
        self.dlq_path = workdir / f"dlq-{tag}.sqlite3"
        common: dict[str, Any] = {
            "endpoint_url": runtime.url,
            "max_retries": profile.max_retries,
            "initial_retry_delay": profile.initial_retry_delay,
            "max_retry_delay": profile.max_retry_delay,
            "read_timeout": profile.read_timeout,
            "connect_timeout": 30.0,  # a starved loop must not turn into connect timeouts
            "max_connections": profile.max_connections,
            "observers": [self.counter],
        }
        self.sync = LambdaAdapter(SYNC_FUNCTION, "us-east-1", "chat", **common)
        self.event = LambdaAdapter(
            EVENT_FUNCTION,
            "us-east-1",
            "chat_event",
            invocation_type="Event",
            dead_letter=self.dlq_path,
            **{**common, "max_retries": profile.event_max_retries},
        )
        server_adapter = LambdaAdapter(SYNC_FUNCTION, "us-east-1", "chat", **common)
        config = parse_config(
            {
                "service_api_key": SERVICE_KEY,
                "server": {"shutdown_grace": 30},
                "aws": {"region": "us-east-1", "endpoint_url": runtime.url},
                "modules": [{"name": "chat", "commands": sorted(COMMAND_OUTCOMES)}],
            },
            env={},
        )
        self.server = ModuleServer(
            config, host="127.0.0.1", port=0, adapters={"chat": server_adapter}, metrics=False
        )
        self.session: aiohttp.ClientSession | None = None
        self.ledger = Ledger(
            runtime,
            self.counter,
            profile.max_retries,
            read_timeout=profile.read_timeout,
            event_max_retries=profile.event_max_retries,
        )

    async def __aenter__(self) -> ChaosStack:
        await self.server.start()
        connector = aiohttp.TCPConnector(limit=self.profile.max_connections)
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"X-Service-Key": SERVICE_KEY}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client, the server (and its adapter) and both adapters."""
        if self.session is not None:
            await self.session.close()
            self.session = None
        await self.server.aclose()
        await self.sync.aclose()
        await self.event.aclose()

    async def one(self, index: int, prefix: str) -> None:
        """Send request ``index`` down its path and check its single answer."""
        command = command_for(index)
        kind = kind_for(index, self.profile)
        rid = f"{prefix}-{index}"
        self.ledger.figures.requests[kind] += 1
        if kind == "server":
            answer = await self._via_server(rid, command)
        else:
            adapter = self.event if kind == "event" else self.sync
            response: object = await adapter.execute_async(
                ExecuteRequest(command, ["2d6"], "viewer-7", "chan", "1", rid, "twitch")
            )
            if not isinstance(response, ExecuteResponse):
                self.ledger.figures.problem(f"{rid}: answered {type(response).__name__}")
                return
            diagnostics = response.diagnostics
            stored = None if diagnostics is None else diagnostics.dead_letter
            answer = Answer(response.success, response.error_code, stored)
        self.ledger.check(rid, kind, command, answer)

    async def _via_server(self, rid: str, command: str) -> Answer:
        assert self.session is not None
        body = {
            "command": command,
            "args": "2d6",
            "user_id": "viewer-7",
            "entity_id": "chan",
            "community_id": "1",
            "session_id": rid,
            "message": f"{command} 2d6",
            "platform": "twitch",
        }
        async with self.session.post(self.server.url + "/api/v1/execute", json=body) as reply:
            data = await reply.json()
        if data.get("session_id") != rid:
            self.ledger.figures.problem(f"{rid}: the server answered for {data.get('session_id')}")
        stored = (data.get("diagnostics") or {}).get("dead_letter")
        return Answer(bool(data["success"]), data["error_code"], stored, reply.status)

    async def run(
        self,
        requests: int | None,
        concurrency: int,
        prefix: str,
        *,
        until: float | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """``concurrency`` workers send ``requests`` requests (or until ``until``)."""
        counter = iter(range(requests if requests is not None else 1 << 62))
        failures: list[BaseException] = []

        async def worker() -> None:
            for index in counter:
                if until is not None and time.monotonic() >= until:
                    return
                try:
                    await self.one(index, prefix)
                except Exception as exc:  # a harness failure must not hide the others
                    failures.append(exc)
                    self.ledger.figures.problem(f"{prefix}-{index}: raised {exc!r}")
                if on_tick is not None:
                    on_tick()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if failures:
            self.ledger.figures.problem(f"{len(failures)} requests raised; first: {failures[0]!r}")


@contextlib.asynccontextmanager
async def chaos_runtime(workdir: Path, profile: Profile) -> AsyncIterator[RecordingRuntime]:
    """The local runtime serving the chat functions, faults off (turn them on later)."""
    functions = write_functions(workdir / "functions")
    async with RecordingRuntime(
        functions, port=0, seed=profile.seed, throttle_retry_after=profile.retry_after
    ) as runtime:
        yield runtime


async def dead_letter_ids(path: Path) -> tuple[set[str], Counter[str]]:
    """The request ids and error codes stored in a SQLite dead-letter file."""
    async with SQLiteDeadLetterSink(path) as sink:
        entries = await sink.list()
    return {e.request_id or "" for e in entries}, Counter(e.error_code for e in entries)


@dataclass
class ChaosReport:
    """Everything a chaos run measured."""

    profile: Profile
    figures: Figures
    faults: dict[str, int]
    statuses: dict[str, int]
    retries: int
    seconds: float
    baseline: Resources
    after: Resources
    dlq_ids: set[str]
    dlq_codes: Counter[str]
    failed_events: set[str]
    unattributed: int
    cold_starts: int
    """Handler processes the runtime started during the measured run (2 pipes, 1 thread each)."""
    after_tasks: list[str] = field(default_factory=list)


async def run_chaos(workdir: Path, profile: Profile) -> ChaosReport:
    """Warm up, take the baseline, run the profile with faults, close everything, measure."""
    async with chaos_runtime(workdir, profile) as runtime:
        # The warm-up runs the same load shape (faults included) at the same concurrency, so
        # that the baseline already holds what a first run builds once and keeps: botocore's
        # models, the shared client's pool, warm handler processes, allocator high-water marks.
        runtime.set_faults(profile.faults())
        warm = ChaosStack(runtime, profile, workdir, "warmup")
        async with warm:
            await warm.run(profile.concurrency * 2, profile.concurrency, "warm")
        runtime.set_faults(None)
        await runtime.wait_for_events(60)
        await settled(None, profile.slow_seconds + 5)
        baseline = resources()

        runtime.stats.reset()
        runtime.decisions.clear()
        runtime.set_faults(profile.faults())
        stack = ChaosStack(runtime, profile, workdir, "chaos")
        started = time.monotonic()
        async with stack:
            await stack.run(profile.requests, profile.concurrency, "req")
        seconds = time.monotonic() - started
        runtime.set_faults(None)
        await runtime.wait_for_events(60)
        stack.ledger.settle_events(everything=True)
        faults = dict(runtime.stats.faults)
        statuses = {str(k): v for k, v in sorted(runtime.stats.statuses.items())}
        unattributed = runtime.unattributed
        cold_starts = sum(runtime.stats.cold_starts.values())
        after = await settled(baseline, profile.slow_seconds + 5)
        current = asyncio.current_task()
        after_tasks = [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not current]
    dlq_ids, dlq_codes = await dead_letter_ids(stack.dlq_path)
    return ChaosReport(
        profile=profile,
        figures=stack.ledger.figures,
        faults=faults,
        statuses=statuses,
        retries=stack.counter.retries,
        seconds=seconds,
        baseline=baseline,
        after=after,
        dlq_ids=dlq_ids,
        dlq_codes=dlq_codes,
        failed_events=stack.ledger.failed_events,
        unattributed=unattributed,
        cold_starts=cold_starts,
        after_tasks=after_tasks,
    )
