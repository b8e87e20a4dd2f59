"""Dead-letter entries and sinks: SQLite (a real file) and SQS (moto's server over HTTP)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from module_sdk.errors import ConfigurationError
from module_sdk.resilience.deadletter import (
    DEAD_LETTER_CODES,
    DeadLetterEntry,
    DeadLetterError,
    DeadLetterSink,
    SQLiteDeadLetterSink,
    SQSDeadLetterSink,
    new_entry_id,
    scrub,
)
from support.moto_lambda import FAKE_KEY_ID, FAKE_SECRET, MotoLambda

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_entry(n: int = 1, function: str = "dice", **changes: Any) -> DeadLetterEntry:
    """An entry with a realistic event payload."""
    fields: dict[str, Any] = {
        "id": new_entry_id(T0 + timedelta(seconds=n)),
        "payload": {
            "community": {"id": "c-1", "name": "Penguins", "seat_count": 0},
            "trigger": {"type": "command", "command": "!roll", "context_text": f"{n}d6"},
            "user": {"id": "u-1", "username": "pingu", "platform": "twitch"},
            "entity": {"id": "e-1", "platform": "twitch"},
            "request_id": f"sess-{n}",
            "timestamp": "2026-03-01T12:00:00.000Z",
            "unicode": "🐧 snow ❄",
        },
        "function_name": function,
        "qualifier": None,
        "region": "us-east-1",
        "invocation_type": "Event",
        "module_name": "dice",
        "error": "Lambda returned TooManyRequestsException (HTTP 429): Rate exceeded",
        "error_code": "throttled",
        "attempts": 4,
        "first_failure_at": T0 + timedelta(seconds=n),
        "last_failure_at": T0 + timedelta(seconds=n),
    }
    fields.update(changes)
    return DeadLetterEntry(**fields)


# -- entries ------------------------------------------------------------------------------------


def test_entry_json_round_trip() -> None:
    """An entry survives to_json/from_json exactly, payload and timestamps included."""
    entry = make_entry(qualifier="prod", replay_attempts=2, last_replay_error="x")
    again = DeadLetterEntry.from_json(entry.to_json())
    assert again == entry
    assert again.request_id == "sess-1"
    assert again.target == "dice:prod"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"id": "x"}', "missing the field"),
    ],
    ids=["garbage", "array", "missing-field"],
)
def test_entry_from_json_rejects_other_messages(text: str, message: str) -> None:
    """Anything that is not an entry is a ValueError saying why."""
    with pytest.raises(ValueError, match=message):
        DeadLetterEntry.from_json(text)


def test_entry_ids_sort_by_time_and_are_unique() -> None:
    """Ids are 32 hex digits, ordered by creation time, distinct within the same millisecond."""
    early, late = new_entry_id(T0), new_entry_id(T0 + timedelta(milliseconds=1))
    same = {new_entry_id(T0) for _ in range(1000)}
    assert len(early) == 32
    assert int(early, 16) >= 0
    assert early < late
    assert len(same) == 1000


def test_scrub_removes_aws_credentials() -> None:
    """Key ids, SigV4 credentials and signatures, and tokens are redacted from error texts."""
    text = (
        "SignatureDoesNotMatch: Authorization=AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20260301/us-east-1/lambda/aws4_request, "
        "Signature=0123abcdef X-Amz-Security-Token=FQoGZXIvYXdzEJr aws_secret_access_key=wJalr"
    )
    clean = scrub(text)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "0123abcdef", "FQoGZXIvYXdzEJr", "wJalr"):
        assert secret not in clean
    assert clean.startswith("SignatureDoesNotMatch")


def test_dead_letter_codes_exclude_caller_and_function_answers() -> None:
    """Outages and refusals are dead-lettered; bad requests and the function's answers are not."""
    assert {"throttled", "circuit_open", "rate_limited", "deadline_exceeded"} <= DEAD_LETTER_CODES
    assert (
        not {
            "invalid_request",
            "payload_too_large",
            "function_error",
            "module_error",
            "invalid_response",
        }
        & DEAD_LETTER_CODES
    )


# -- SQLite -------------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_sink(tmp_path: Path) -> AsyncIterator[SQLiteDeadLetterSink]:
    """A SQLite sink in a fresh file."""
    async with SQLiteDeadLetterSink(tmp_path / "dlq.sqlite3") as sink:
        yield sink


async def test_sqlite_round_trip(sqlite_sink: SQLiteDeadLetterSink) -> None:
    """put, get, list (oldest first, filtered, limited), delete and purge behave."""
    entries = [make_entry(1), make_entry(2, function="quotes"), make_entry(3)]
    for entry in entries:
        await sqlite_sink.put(entry)
    assert isinstance(sqlite_sink, DeadLetterSink)
    assert await sqlite_sink.get(entries[1].id) == entries[1]
    assert await sqlite_sink.get("nope") is None
    assert await sqlite_sink.list() == entries
    assert await sqlite_sink.list(limit=2) == entries[:2]
    assert await sqlite_sink.list(function_name="dice") == [entries[0], entries[2]]
    assert await sqlite_sink.count() == 3
    assert await sqlite_sink.delete(entries[0].id) is True
    assert await sqlite_sink.delete(entries[0].id) is False
    assert await sqlite_sink.purge() == 2
    assert await sqlite_sink.list() == []


async def test_sqlite_failed_replay_keeps_entry(sqlite_sink: SQLiteDeadLetterSink) -> None:
    """record_failed_replay counts the replay and keeps the original error."""
    entry = make_entry()
    await sqlite_sink.put(entry)
    later = T0 + timedelta(hours=1)
    updated = await sqlite_sink.record_failed_replay(
        entry.id, error="still down", error_code="service_error", at=later
    )
    assert updated is not None
    assert updated.replay_attempts == 1
    assert updated.last_failure_at == later
    assert (updated.last_replay_error, updated.last_replay_error_code) == (
        "still down",
        "service_error",
    )
    assert (updated.error_code, updated.first_failure_at) == ("throttled", entry.first_failure_at)
    again = await sqlite_sink.record_failed_replay(
        entry.id, error="again", error_code="timeout", at=later
    )
    assert again is not None
    assert again.replay_attempts == 2
    assert await sqlite_sink.get(entry.id) == again
    missing = await sqlite_sink.record_failed_replay("nope", error="e", error_code="x", at=later)
    assert missing is None


async def test_sqlite_file_is_wal_private_and_durable_settings(tmp_path: Path) -> None:
    """The file uses WAL, mode 0600, and the connection runs synchronous=FULL."""
    path = tmp_path / "dlq.sqlite3"
    async with SQLiteDeadLetterSink(path) as sink:
        await sink.put(make_entry())
        level = await sink._run(
            "pragma", lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert level == 2  # FULL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 1
    conn.close()


async def test_sqlite_runs_on_its_own_thread(sqlite_sink: SQLiteDeadLetterSink) -> None:
    """Blocking calls run on the sink's dedicated worker thread, not the loop's thread."""
    seen: list[str] = []

    def spy(conn: sqlite3.Connection) -> None:
        seen.append(threading.current_thread().name)

    await sqlite_sink._run("spy", spy)
    await sqlite_sink._run("spy", spy)
    assert len(set(seen)) == 1
    assert seen[0].startswith("waddlebot-dlq")
    assert seen[0] != threading.current_thread().name


async def test_sqlite_concurrent_callers(tmp_path: Path) -> None:
    """Many tasks writing at once through two sinks on one file all land, none twice."""
    path = tmp_path / "dlq.sqlite3"
    async with SQLiteDeadLetterSink(path) as one, SQLiteDeadLetterSink(path) as two:
        entries = [make_entry(n) for n in range(60)]
        await asyncio.gather(
            *((one if n % 2 else two).put(entry) for n, entry in enumerate(entries))
        )
        stored = await one.list()
    assert sorted(e.id for e in stored) == sorted(e.id for e in entries)


async def test_sqlite_duplicate_id_is_an_error(sqlite_sink: SQLiteDeadLetterSink) -> None:
    """Storing the same id twice raises DeadLetterError (never a silent overwrite)."""
    entry = make_entry()
    await sqlite_sink.put(entry)
    with pytest.raises(DeadLetterError, match="put failed"):
        await sqlite_sink.put(entry)


async def test_sqlite_group_commit_fails_only_the_bad_put(
    sqlite_sink: SQLiteDeadLetterSink,
) -> None:
    """Concurrent puts share commits; a duplicate among them fails alone."""
    existing = make_entry(0)
    await sqlite_sink.put(existing)
    fresh = [make_entry(n) for n in range(1, 30)]
    outcomes = await asyncio.gather(
        *(sqlite_sink.put(e) for e in [*fresh[:10], existing, *fresh[10:]]),
        return_exceptions=True,
    )
    failures = [o for o in outcomes if o is not None]
    assert len(failures) == 1
    assert isinstance(failures[0], DeadLetterError)
    assert "UNIQUE" in str(failures[0])
    assert {e.id for e in await sqlite_sink.list()} == {existing.id} | {e.id for e in fresh}


async def test_sqlite_scrubs_error_text(sqlite_sink: SQLiteDeadLetterSink) -> None:
    """An error text carrying a key id is stored redacted."""
    entry = make_entry(error="denied for AKIAIOSFODNN7EXAMPLE")
    await sqlite_sink.put(entry)
    stored = await sqlite_sink.get(entry.id)
    assert stored is not None
    assert "AKIAIOSFODNN7EXAMPLE" not in stored.error


async def test_sqlite_closed_sink_refuses(tmp_path: Path) -> None:
    """A closed sink raises DeadLetterError; closing twice is fine."""
    sink = SQLiteDeadLetterSink(tmp_path / "dlq.sqlite3")
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(DeadLetterError, match="closed"):
        await sink.put(make_entry())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "/nonexistent-dir/x/dlq.sqlite3"}, "does not exist"),
        ({"synchronous": "OFF"}, "synchronous='OFF' is invalid"),
        ({"busy_timeout": -1}, "busy_timeout=-1 is invalid"),
    ],
    ids=["missing-directory", "synchronous-off", "negative-timeout"],
)
def test_sqlite_bad_settings(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    """Bad settings are ConfigurationErrors that name the problem."""
    kwargs.setdefault("path", tmp_path / "dlq.sqlite3")
    with pytest.raises(ConfigurationError, match=message):
        SQLiteDeadLetterSink(**kwargs)


def test_sqlite_directory_path(tmp_path: Path) -> None:
    """A directory is refused with a hint to name a file inside it."""
    with pytest.raises(ConfigurationError, match="is a directory"):
        SQLiteDeadLetterSink(tmp_path)


# -- SQS ----------------------------------------------------------------------------------------


def make_queue(moto: MotoLambda, fifo: bool = False) -> str:
    """A fresh queue on moto's server; its URL."""
    import boto3

    sqs = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=moto.url,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    name = f"dlq-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    sqs.close()
    return url


def sqs_sink(moto: MotoLambda, url: str) -> SQSDeadLetterSink:
    """A sink on moto's server (no long polling: an empty receive returns at once)."""
    return SQSDeadLetterSink(url, region="us-east-1", endpoint_url=moto.url, receive_wait_seconds=0)


async def test_sqs_round_trip(moto_lambda: MotoLambda) -> None:
    """put, list, get, delete and purge over moto's SQS; one message per entry."""
    url = make_queue(moto_lambda)
    async with sqs_sink(moto_lambda, url) as sink:
        entries = [make_entry(1), make_entry(2, function="quotes"), make_entry(3)]
        for entry in entries:
            await sink.put(entry)
        assert isinstance(sink, DeadLetterSink)
        assert await sink.count() == 3
        listed = await sink.list()
        assert sorted(e.id for e in listed) == sorted(e.id for e in entries)
        assert {e.id: e for e in listed}[entries[0].id] == entries[0]
        # a list releases what it received: the next one sees everything again
        assert len(await sink.list()) == 3
        assert [e.id for e in await sink.list(function_name="quotes")] == [entries[1].id]
        assert len(await sink.list(limit=2)) == 2
        assert await sink.get(entries[2].id) == entries[2]
        assert await sink.get("nope") is None
        assert await sink.delete(entries[0].id) is True
        assert await sink.delete(entries[0].id) is False
        assert len(await sink.list()) == 2
        assert await sink.purge() == 2
        assert await sink.list() == []


async def test_sqs_client_comes_from_the_client_pool(moto_lambda: MotoLambda) -> None:
    """Two sinks with the same settings share one pooled SQS client; the last close ends it."""
    from module_sdk.aws_lambda.clients import ClientPool

    url = make_queue(moto_lambda)
    pool = ClientPool()
    first = SQSDeadLetterSink(url, region="us-east-1", endpoint_url=moto_lambda.url, pool=pool)
    second = SQSDeadLetterSink(url, region="us-east-1", endpoint_url=moto_lambda.url, pool=pool)
    await first.put(make_entry(1))
    assert await second.count() == 1
    assert pool.open_clients() == 1
    await first.aclose()
    assert pool.open_clients() == 1
    await second.aclose()
    assert pool.open_clients() == 0


async def test_sqs_failed_replay_replaces_message(moto_lambda: MotoLambda) -> None:
    """A failed replay leaves exactly one message per entry, with the count raised."""
    url = make_queue(moto_lambda)
    async with sqs_sink(moto_lambda, url) as sink:
        entry = make_entry()
        await sink.put(entry)
        at = T0 + timedelta(hours=2)
        updated = await sink.record_failed_replay(
            entry.id, error="still throttled", error_code="throttled", at=at
        )
        assert updated is not None
        assert updated.replay_attempts == 1
        listed = await sink.list()
        assert listed == [updated]
        assert await sink.count() == 1
        missing = await sink.record_failed_replay("nope", error="e", error_code="x", at=at)
        assert missing is None


async def test_sqs_leaves_foreign_messages(moto_lambda: MotoLambda) -> None:
    """Messages that are not entries are skipped by list and survive a purge."""
    url = make_queue(moto_lambda)
    async with sqs_sink(moto_lambda, url) as sink:
        client = await sink._sqs()
        await client.send_message(QueueUrl=url, MessageBody="hello, not an entry")
        await sink.put(make_entry())
        assert len(await sink.list()) == 1
        assert await sink.purge() == 1
        reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        assert [m["Body"] for m in reply["Messages"]] == ["hello, not an entry"]


async def test_sqs_fifo_queue(moto_lambda: MotoLambda) -> None:
    """A FIFO queue gets a group and a deduplication id per entry version."""
    url = make_queue(moto_lambda, fifo=True)
    async with sqs_sink(moto_lambda, url) as sink:
        first, second = make_entry(1), make_entry(2)
        await sink.put(first)
        await sink.put(second)
        assert [e.id for e in await sink.list()] == [first.id, second.id]
        updated = await sink.record_failed_replay(
            first.id, error="e", error_code="throttled", at=T0
        )
        assert updated is not None
        assert {e.id: e.replay_attempts for e in await sink.list()} == {first.id: 1, second.id: 0}


async def test_sqs_message_body_is_the_entry_json(moto_lambda: MotoLambda) -> None:
    """The message body is the entry's JSON, with no credentials in it."""
    url = make_queue(moto_lambda)
    async with sqs_sink(moto_lambda, url) as sink:
        entry = make_entry()
        await sink.put(entry)
        client = await sink._sqs()
        reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    body = reply["Messages"][0]["Body"]
    assert json.loads(body)["payload"] == entry.payload
    assert FAKE_KEY_ID not in body
    assert FAKE_SECRET not in body


async def test_sqs_unreachable_queue_is_a_dead_letter_error() -> None:
    """A queue nobody answers for raises DeadLetterError naming the queue."""
    sink = SQSDeadLetterSink(
        "http://127.0.0.1:9/123456789012/nowhere",
        region="us-east-1",
        receive_wait_seconds=0,
        connect_timeout=0.5,
    )
    try:
        with pytest.raises(DeadLetterError, match="nowhere"):
            await sink.put(make_entry())
    finally:
        await sink.aclose()


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("sqs-queue", {}, "use the queue's URL"),
        ("https://sqs.us-east-1.amazonaws.com/", {}, "no queue path"),
        ("https://sqs.us-east-1.amazonaws.com/1/q", {"visibility_timeout": 0}, "visibility"),
        (
            "https://sqs.us-east-1.amazonaws.com/1/q",
            {"aws_access_key_id": "AKIDX"},
            "must be given together",
        ),
    ],
    ids=["not-a-url", "no-path", "visibility", "half-credentials"],
)
def test_sqs_bad_settings(url: str, kwargs: dict[str, Any], message: str) -> None:
    """Bad SQS settings are ConfigurationErrors that name the problem."""
    with pytest.raises(ConfigurationError, match=message):
        SQSDeadLetterSink(url, **kwargs)


def test_sqs_region_from_url_and_secret_free_repr() -> None:
    """An AWS queue URL gives the region; the repr never shows credentials."""
    sink = SQSDeadLetterSink(
        "https://sqs.eu-west-2.amazonaws.com/123456789012/dlq",
        aws_access_key_id="AKIDSECRETISH",
        aws_secret_access_key="very-secret",
    )
    assert sink.region == "eu-west-2"
    assert sink.endpoint_url is None
    assert "very-secret" not in repr(sink)
    assert "AKIDSECRETISH" not in repr(sink)
    local = SQSDeadLetterSink("http://127.0.0.1:4566/000000000000/dlq", region="us-east-1")
    assert local.endpoint_url == "http://127.0.0.1:4566"


def test_sqlite_sinks_opening_one_new_file_together_all_open(tmp_path: Path) -> None:
    """Openers racing to switch a new file to WAL wait for each other (busy_timeout) instead
    of failing with 'database is locked' (SQLite skips the busy handler in that race)."""
    failures: list[BaseException] = []
    for round_ in range(100):
        path = tmp_path / f"dlq-{round_}.sqlite3"
        sinks = [SQLiteDeadLetterSink(path, synchronous="NORMAL") for _ in range(6)]
        barrier = threading.Barrier(len(sinks))

        def open_and_close(sink: SQLiteDeadLetterSink, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                sink._connection()
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)
            finally:
                sink._close_connection()

        threads = [threading.Thread(target=open_and_close, args=(s, barrier)) for s in sinks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
