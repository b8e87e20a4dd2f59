"""The dead-letter queue end to end: LambdaAdapter over real HTTP, replay, the CLI, kill -9."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from module_sdk import ExecuteRequest, ExecuteResponse, LambdaAdapter
from module_sdk.adapters.replay import ReplayAdapters
from module_sdk.cli import main
from module_sdk.errors import ConfigurationError, ErrorCode, PolicyRejection
from module_sdk.resilience.deadletter import (
    DeadLetterEntry,
    SQLiteDeadLetterSink,
    SQSDeadLetterSink,
    replay_entries,
)
from module_sdk.resilience.pipeline import Handler, Invocation
from module_sdk.testing import FakeClock, Reply, ScriptedLambdaServer
from support.moto_lambda import FAKE_KEY_ID, FAKE_SECRET, MotoLambda

CHILD = Path(__file__).resolve().parents[1] / "support" / "dlq_crash_child.py"
THROTTLE = Reply.aws_error(429, "TooManyRequestsException", "Rate exceeded")
UNAVAILABLE = Reply.aws_error(503, "ServiceException", "Lambda is down")


def request(session: str = "sess-1", args: list[str] | None = None) -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest(
        command="!roll",
        args=["2d6"] if args is None else args,
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id=session,
        platform="twitch",
        metadata={"user": {"username": "pingu"}},
    )


def adapter_for(server: ScriptedLambdaServer, **kwargs: Any) -> LambdaAdapter:
    """An adapter on the scripted endpoint with a fake clock (no real backoff sleeps)."""
    params: dict[str, Any] = {
        "endpoint_url": server.url,
        "clock": FakeClock(),
        "rng": random.Random(0),
        "max_retries": 2,
        "read_timeout": 5.0,
    }
    params.update(kwargs)
    return LambdaAdapter("dice", "us-east-1", "dice", **params)


def replayers(server: ScriptedLambdaServer, **kwargs: Any) -> ReplayAdapters:
    """Replay adapters on the scripted endpoint with a fake clock."""
    params: dict[str, Any] = {
        "endpoint_url": server.url,
        "clock": FakeClock(),
        "rng": random.Random(0),
        "max_retries": 0,
    }
    params.update(kwargs)
    return ReplayAdapters(**params)


# -- writing entries ----------------------------------------------------------------------------


async def test_event_throttled_past_retries_is_dead_lettered(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """An Event call throttled on every attempt lands in the sink with the exact event."""
    db = tmp_path / "dlq.sqlite3"
    scripted.script("dice", THROTTLE, THROTTLE, THROTTLE)
    async with adapter_for(scripted, invocation_type="Event", dead_letter=db) as adapter:
        response = await adapter.execute_async(request())
        assert isinstance(adapter.dead_letter, SQLiteDeadLetterSink)
        entries = await adapter.dead_letter.list()
    assert response.success is False
    assert response.error_code == ErrorCode.THROTTLED
    assert response.data is None
    assert response.diagnostics is not None
    assert response.diagnostics.dead_letter == "stored"
    assert scripted.count() == 3
    [entry] = entries
    assert entry.id == response.diagnostics.dead_letter_id
    assert entry.payload == json.loads(scripted.invocations[0]["body"])
    assert entry.request_id == "sess-1"
    assert (entry.function_name, entry.qualifier, entry.region) == ("dice", None, "us-east-1")
    assert (entry.invocation_type, entry.module_name) == ("Event", "dice")
    assert (entry.error_code, entry.attempts, entry.replay_attempts) == ("throttled", 3, 0)
    assert "TooManyRequestsException" in entry.error
    assert entry.first_failure_at == entry.last_failure_at
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert FAKE_KEY_ID.encode() not in raw
    assert FAKE_SECRET.encode() not in raw


async def test_sync_failure_is_kept_only_when_asked(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """A failed RequestResponse call is dead-lettered only with dead_letter_sync=True."""
    scripted.script("dice", *[UNAVAILABLE] * 6)
    async with (
        adapter_for(scripted, dead_letter=tmp_path / "a.sqlite3") as plain,
        adapter_for(scripted, dead_letter=tmp_path / "b.sqlite3", dead_letter_sync=True) as sync,
    ):
        skipped = await plain.execute_async(request("plain"))
        kept = await sync.execute_async(request("sync"))
        assert plain.dead_letter is not None
        assert sync.dead_letter is not None
        assert await plain.dead_letter.list() == []
        [entry] = await sync.dead_letter.list()
    assert skipped.error_code == kept.error_code == ErrorCode.SERVICE_ERROR
    assert skipped.diagnostics is not None and skipped.diagnostics.dead_letter is None
    assert kept.diagnostics is not None
    assert kept.diagnostics.dead_letter == "stored"
    assert (entry.invocation_type, entry.error_code, entry.request_id) == (
        "RequestResponse",
        "service_error",
        "sync",
    )


async def test_answers_and_caller_errors_are_not_dead_lettered(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """Function errors, business failures, successes and oversized requests write nothing."""
    scripted.script(
        "dice",
        Reply.function_error({"errorMessage": "boom", "errorType": "ValueError"}),
        Reply.ok({"success": False, "error": "no such dice"}),
        Reply.ok({"success": True, "message": "7"}),
    )
    db = tmp_path / "dlq.sqlite3"
    async with (
        adapter_for(scripted, dead_letter=db, dead_letter_sync=True) as sync,
        adapter_for(scripted, dead_letter=db, invocation_type="Event") as event,
    ):
        codes = [(await sync.execute_async(request(f"s{n}"))).error_code for n in range(3)]
        too_big = await event.execute_async(request("big", args=["x" * (1024 * 1024)]))
        assert sync.dead_letter is not None
        assert await sync.dead_letter.list() == []
    assert codes == ["function_error", "module_error", None]
    assert too_big.error_code == ErrorCode.PAYLOAD_TOO_LARGE
    assert too_big.data is None


async def test_policy_refusal_is_dead_lettered_without_any_call(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """A call refused by a policy (an open breaker) is kept with 0 attempts; nothing is sent."""

    async def open_breaker(invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        raise PolicyRejection("circuit open for dice", error_code=ErrorCode.CIRCUIT_OPEN)

    async with adapter_for(
        scripted,
        invocation_type="Event",
        dead_letter=tmp_path / "d.sqlite3",
        policies=[open_breaker],
    ) as adapter:
        response = await adapter.execute_async(request())
        assert adapter.dead_letter is not None
        [entry] = await adapter.dead_letter.list()
    assert response.error_code == ErrorCode.CIRCUIT_OPEN
    assert scripted.count() == 0
    assert (entry.error_code, entry.attempts, entry.error) == (
        "circuit_open",
        0,
        "circuit open for dice",
    )
    assert entry.payload["request_id"] == "sess-1"


async def test_deadline_exceeded_is_dead_lettered(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """When total_timeout runs out (a long Retry-After), the request is kept."""
    scripted.script(
        "dice", Reply.aws_error(429, "TooManyRequestsException", "slow down", retry_after=60)
    )
    async with adapter_for(
        scripted, invocation_type="Event", total_timeout=5.0, dead_letter=tmp_path / "d.sqlite3"
    ) as adapter:
        response = await adapter.execute_async(request())
        assert adapter.dead_letter is not None
        [entry] = await adapter.dead_letter.list()
    assert response.error_code == entry.error_code == ErrorCode.DEADLINE_EXCEEDED
    assert entry.attempts == 1


async def test_sink_failure_is_logged_and_marked(
    scripted: ScriptedLambdaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sink that cannot store does not crash the caller: logged, response marked failed."""
    broken = SQLiteDeadLetterSink(tmp_path / "d.sqlite3")
    await broken.aclose()
    scripted.script("dice", THROTTLE)
    async with adapter_for(
        scripted, invocation_type="Event", max_retries=0, dead_letter=broken
    ) as adapter:
        with caplog.at_level(logging.ERROR):
            response = await adapter.execute_async(request())
    assert response.success is False
    assert response.error_code == ErrorCode.THROTTLED
    assert response.diagnostics is not None
    assert response.diagnostics.dead_letter == "failed"
    assert response.diagnostics.dead_letter_id is None
    assert any("dead-letter write" in r.getMessage() for r in caplog.records)


async def test_adapter_closes_only_the_sink_it_created(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """aclose() closes a sink made from a path and leaves a sink passed in open."""
    mine = SQLiteDeadLetterSink(tmp_path / "mine.sqlite3")
    owned = adapter_for(scripted, dead_letter=str(tmp_path / "owned.sqlite3"))
    borrowed = adapter_for(scripted, dead_letter=mine)
    await owned.aclose()
    await borrowed.aclose()
    assert owned.dead_letter is not None
    assert owned.dead_letter._closed is True  # type: ignore[attr-defined]
    assert await mine.list() == []
    await mine.aclose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dead_letter": "https://sqs.us-east-1.amazonaws.com/1/q"}, "looks like a URL"),
        ({"dead_letter_sync": True}, "needs a sink"),
        ({"dead_letter": 42}, "dead_letter=42 is invalid"),
        ({"dead_letter": "/nonexistent-dir/x/d.sqlite3"}, "does not exist"),
    ],
    ids=["url-string", "sync-without-sink", "not-a-sink", "missing-directory"],
)
def test_dead_letter_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    """Bad dead-letter settings fail in the constructor with a message naming the fix."""
    with pytest.raises(ConfigurationError, match=message):
        LambdaAdapter("dice", "us-east-1", "dice", **kwargs)


async def test_open_breaker_and_rate_limit_refusals_are_kept_and_replayed(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """The real breaker and rate limiter: refusals cost no call, are kept, and replay later."""
    from module_sdk.resilience.breaker import CircuitBreakerConfig
    from module_sdk.resilience.ratelimit import RateLimit

    sink = SQLiteDeadLetterSink(tmp_path / "d.sqlite3")
    scripted.script("dice", UNAVAILABLE, UNAVAILABLE)
    breaker = CircuitBreakerConfig(consecutive_failures=2, minimum_calls=2, window_size=2)
    async with adapter_for(
        scripted, invocation_type="Event", max_retries=0, circuit_breaker=breaker, dead_letter=sink
    ) as adapter:
        codes = [(await adapter.execute_async(request(f"b{n}"))).error_code for n in range(3)]
    async with adapter_for(
        scripted,
        invocation_type="Event",
        rate_limit=RateLimit(rate=0.001, burst=1),
        dead_letter=sink,
    ) as limited:
        codes += [(await limited.execute_async(request(f"r{n}"))).error_code for n in range(2)]
    assert codes == ["service_error", "service_error", "circuit_open", None, "rate_limited"]
    assert scripted.count() == 3
    entries = await sink.list()
    assert [(e.request_id, e.error_code, e.attempts) for e in entries] == [
        ("b0", "service_error", 1),
        ("b1", "service_error", 1),
        ("b2", "circuit_open", 0),
        ("r1", "rate_limited", 0),
    ]
    adapters = replayers(scripted)
    try:
        results = await replay_entries(sink, adapters)
    finally:
        await adapters.aclose()
    assert all(r.delivered for r in results)
    assert scripted.count() == 7
    assert [json.loads(i["body"])["request_id"] for i in scripted.invocations[3:]] == [
        "b0",
        "b1",
        "b2",
        "r1",
    ]
    assert await sink.list() == []
    await sink.aclose()


# -- invoke_payload and replay ------------------------------------------------------------------


async def test_invoke_payload_sends_the_event_unchanged(scripted: ScriptedLambdaServer) -> None:
    """invoke_payload sends a stored event byte-for-byte (same request_id and timestamp)."""
    event = {
        "trigger": {"type": "command", "command": "!roll", "context_text": "2d6"},
        "user": {"id": "u-9", "platform": "discord"},
        "request_id": "old-session",
        "timestamp": "2026-01-01T00:00:00.000Z",
    }
    scripted.script("dice", THROTTLE, Reply.ok({"success": True, "message": "ok"}))
    async with adapter_for(scripted) as adapter:
        response = await adapter.invoke_payload(event)
        refused = await adapter.invoke_payload({"no": "request id"})
    assert response.success is True
    assert scripted.count() == 2
    assert [json.loads(i["body"]) for i in scripted.invocations] == [event, event]
    assert refused.error_code == ErrorCode.INVALID_REQUEST
    assert "request_id" in (refused.error or "")


async def test_replay_delivers_once_and_removes(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """Replay re-sends each entry once to the recovered function, then removes it."""
    scripted.script("dice", *[THROTTLE] * 6)
    sink = SQLiteDeadLetterSink(tmp_path / "d.sqlite3")
    async with adapter_for(scripted, invocation_type="Event", dead_letter=sink) as adapter:
        for n in range(2):
            await adapter.execute_async(request(f"s{n}"))
    originals = [i["body"] for i in scripted.invocations[::3]]
    adapters = replayers(scripted)
    try:
        results = await replay_entries(sink, adapters)
        again = await replay_entries(sink, adapters)
    finally:
        await adapters.aclose()
    assert [r.delivered for r in results] == [True, True]
    assert again == []
    assert scripted.count() == 8
    assert [i["body"] for i in scripted.invocations[6:]] == originals
    assert all(i["invocation_type"] == "Event" for i in scripted.invocations[6:])
    assert await sink.list() == []
    await sink.aclose()


async def test_failed_replay_keeps_the_entry(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """A replay that fails again keeps the entry with replay_attempts + 1 and the new error."""
    sink = SQLiteDeadLetterSink(tmp_path / "d.sqlite3")
    scripted.script("dice", THROTTLE, UNAVAILABLE)
    async with adapter_for(
        scripted, invocation_type="Event", max_retries=0, dead_letter=sink
    ) as adapter:
        await adapter.execute_async(request())
    adapters = replayers(scripted)
    try:
        [result] = await replay_entries(sink, adapters)
    finally:
        await adapters.aclose()
    [entry] = await sink.list()
    await sink.aclose()
    assert (result.delivered, result.error_code, result.replay_attempts) == (
        False,
        "service_error",
        1,
    )
    assert (entry.replay_attempts, entry.last_replay_error_code, entry.error_code) == (
        1,
        "service_error",
        "throttled",
    )
    assert scripted.count() == 2


async def test_replay_through_sqs(scripted: ScriptedLambdaServer, moto_lambda: MotoLambda) -> None:
    """An Event call dead-lettered to SQS is replayed once and its message deleted."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_lambda.url)
    url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    sqs.close()
    sink = SQSDeadLetterSink(url, region="us-east-1", receive_wait_seconds=0)
    scripted.script("dice", THROTTLE, THROTTLE, THROTTLE)
    async with adapter_for(scripted, invocation_type="Event", dead_letter=sink) as adapter:
        response = await adapter.execute_async(request())
    assert response.diagnostics is not None
    [entry] = await sink.list()
    assert entry.id == response.diagnostics.dead_letter_id
    assert entry.payload == json.loads(scripted.invocations[0]["body"])
    adapters = replayers(scripted)
    try:
        [result] = await replay_entries(sink, adapters)
    finally:
        await adapters.aclose()
    assert result.delivered is True
    assert scripted.count() == 4
    assert await sink.list() == []
    await sink.aclose()


# -- the command line ---------------------------------------------------------------------------


async def run_cli(*argv: str) -> int:
    """``waddlebot-lambda ARGV`` in a worker thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def dead_letter_two(server: ScriptedLambdaServer, db: Path) -> list[DeadLetterEntry]:
    """Two throttled Event calls written to ``db``; their entries."""
    server.script("dice", THROTTLE, THROTTLE)
    async with adapter_for(
        server, invocation_type="Event", max_retries=0, dead_letter=db
    ) as adapter:
        await adapter.execute_async(request("first"))
        await adapter.execute_async(request("second"))
        assert adapter.dead_letter is not None
        return await adapter.dead_letter.list()


async def test_cli_list_show_delete_purge(
    scripted: ScriptedLambdaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """list prints a table, show the whole entry, delete one, purge needs --yes."""
    db = tmp_path / "d.sqlite3"
    first, second = await dead_letter_two(scripted, db)
    capsys.readouterr()
    assert await run_cli("dlq", "list", "--sqlite", str(db)) == 0
    table = capsys.readouterr().out
    assert first.id in table
    assert "throttled" in table
    assert "2 entries shown" in table
    assert await run_cli("dlq", "show", first.id, "--sqlite", str(db)) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["payload"] == dict(first.payload)
    assert await run_cli("dlq", "show", "nope", "--sqlite", str(db)) == 1
    assert "no dead-letter entry" in capsys.readouterr().err
    assert await run_cli("dlq", "delete", first.id, "--sqlite", str(db)) == 0
    assert await run_cli("dlq", "list", "--json", "--sqlite", str(db)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines[1:]] == [second.id]
    assert await run_cli("dlq", "purge", "--sqlite", str(db)) == 2
    assert "--yes" in capsys.readouterr().err
    assert await run_cli("dlq", "purge", "--yes", "--sqlite", str(db)) == 0
    assert "purged 1 entry" in capsys.readouterr().out


async def test_cli_replay(
    scripted: ScriptedLambdaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """replay --limit 1 delivers the oldest entry once; a failing one is kept, exit status 1."""
    db = tmp_path / "d.sqlite3"
    first, second = await dead_letter_two(scripted, db)
    capsys.readouterr()
    common = ("--sqlite", str(db), "--endpoint-url", scripted.url, "--max-retries", "0")
    assert await run_cli("dlq", "replay", "--limit", "1", *common) == 0
    assert f"delivered  {first.id}" in capsys.readouterr().out
    assert scripted.count() == 3
    assert json.loads(scripted.invocations[2]["body"]) == dict(first.payload)
    scripted.script("dice", UNAVAILABLE)
    assert await run_cli("dlq", "replay", *common) == 1
    out = capsys.readouterr().out
    assert f"FAILED     {second.id}" in out
    assert "0 delivered, 1 failed" in out
    async with SQLiteDeadLetterSink(db) as sink:
        [kept] = await sink.list()
    assert (kept.id, kept.replay_attempts) == (second.id, 1)


async def test_cli_reads_an_sqs_queue_from_the_environment(
    scripted: ScriptedLambdaServer,
    moto_lambda: MotoLambda,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With $WADDLEBOT_DLQ_SQS_QUEUE_URL set, list and show read the SQS queue."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_lambda.url)
    url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    sqs.close()
    sink = SQSDeadLetterSink(url, region="us-east-1", receive_wait_seconds=0)
    scripted.script("dice", THROTTLE)
    async with adapter_for(
        scripted, invocation_type="Event", max_retries=0, dead_letter=sink
    ) as adapter:
        response = await adapter.execute_async(request())
    await sink.aclose()
    assert response.diagnostics is not None
    entry_id = response.diagnostics.dead_letter_id
    assert entry_id is not None
    monkeypatch.setenv("WADDLEBOT_DLQ_SQS_QUEUE_URL", url)
    capsys.readouterr()
    options = ("--sqs-region", "us-east-1", "--sqs-wait-seconds", "0")
    assert await run_cli("dlq", "list", *options) == 0
    assert entry_id in capsys.readouterr().out
    assert await run_cli("dlq", "show", entry_id, *options) == 0
    assert json.loads(capsys.readouterr().out)["error_code"] == "throttled"


async def test_cli_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path with no database is a one-line error naming --sqlite, not a new empty file."""
    missing = tmp_path / "none.sqlite3"
    assert await run_cli("dlq", "list", "--sqlite", str(missing)) == 2
    assert "--sqlite PATH" in capsys.readouterr().err
    assert not missing.exists()


# -- a crash of the process ---------------------------------------------------------------------


async def test_entry_survives_kill_9_and_replays_once(
    scripted: ScriptedLambdaServer, tmp_path: Path
) -> None:
    """kill -9 right after execute_async returned: the entry is there; replay delivers once."""
    db = tmp_path / "d.sqlite3"
    scripted.script("dice", THROTTLE, THROTTLE, THROTTLE)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        scripted.url,
        str(db),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
    finally:
        child.kill()  # SIGKILL: no cleanup, no atexit, no connection close
        _, stderr = await child.communicate()
    assert line.startswith(b"RETURNED "), stderr.decode(errors="replace")
    assert child.returncode == -9
    response = json.loads(line[len(b"RETURNED ") :])
    assert response["error_code"] == "throttled"
    assert response["diagnostics"]["dead_letter"] == "stored"

    sink = SQLiteDeadLetterSink(db)
    entry = await sink.get(response["diagnostics"]["dead_letter_id"])
    assert entry is not None
    assert entry.payload == json.loads(scripted.invocations[0]["body"])
    assert (entry.attempts, entry.request_id) == (3, "crash-session")

    adapters = replayers(scripted)
    try:
        [result] = await replay_entries(sink, adapters)
        assert await replay_entries(sink, adapters) == []
    finally:
        await adapters.aclose()
    assert result.delivered is True
    assert scripted.count() == 4
    assert scripted.invocations[3]["body"] == scripted.invocations[0]["body"]
    assert await sink.list() == []
    await sink.aclose()


def test_replay_adapters_former_import_path_still_works() -> None:
    """The path docs/dead-letter.md once gave keeps working, with a warning naming the new one."""
    import module_sdk.resilience.deadletter as deadletter
    from module_sdk.adapters.replay import ReplayAdapters

    with pytest.warns(DeprecationWarning, match=r"module_sdk\.adapters\.replay"):
        former = deadletter.ReplayAdapters
    assert former is ReplayAdapters
    with pytest.raises(AttributeError, match="NoSuchName"):
        deadletter.NoSuchName  # noqa: B018
