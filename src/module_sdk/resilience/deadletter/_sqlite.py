"""The SQLite dead-letter sink: one local file, durable across a crash of the process."""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from module_sdk._validate import number
from module_sdk.errors import ConfigurationError
from module_sdk.resilience.deadletter._entry import DeadLetterEntry, DeadLetterError, scrub

__all__ = ["DEFAULT_SQLITE_PATH", "SQLiteDeadLetterSink"]

logger = logging.getLogger(__name__)

DEFAULT_SQLITE_PATH = "waddlebot-dlq.sqlite3"
"""The file used when only "SQLite" is asked for (relative to the working directory)."""

SCHEMA_VERSION = 1
_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
# Both SELECTs list the columns in the order _row_to_entry reads them.
_SELECT_ONE = (
    "SELECT id, payload, function_name, qualifier, region, invocation_type, module_name, error, "
    "error_code, attempts, first_failure_at, last_failure_at, replay_attempts, "
    "last_replay_error, last_replay_error_code FROM dead_letters WHERE id = ?"
)
_SELECT_MANY = (
    "SELECT id, payload, function_name, qualifier, region, invocation_type, module_name, error, "
    "error_code, attempts, first_failure_at, last_failure_at, replay_attempts, "
    "last_replay_error, last_replay_error_code FROM dead_letters "
    "WHERE (?1 IS NULL OR function_name = ?1) ORDER BY seq LIMIT ?2"
)
_INSERT = (
    "INSERT INTO dead_letters (request_id, id, payload, function_name, qualifier, region, "
    "invocation_type, module_name, error, error_code, attempts, first_failure_at, "
    "last_failure_at, replay_attempts, last_replay_error, last_replay_error_code) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    request_id TEXT,
    function_name TEXT NOT NULL,
    qualifier TEXT,
    region TEXT NOT NULL,
    invocation_type TEXT NOT NULL,
    module_name TEXT NOT NULL,
    error TEXT NOT NULL,
    error_code TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failure_at TEXT NOT NULL,
    last_failure_at TEXT NOT NULL,
    replay_attempts INTEGER NOT NULL DEFAULT 0,
    last_replay_error TEXT,
    last_replay_error_code TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_function ON dead_letters (function_name, seq);
"""

T = TypeVar("T")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _row_to_entry(row: tuple[Any, ...]) -> DeadLetterEntry:
    return DeadLetterEntry(
        id=row[0],
        payload=json.loads(row[1]),
        function_name=row[2],
        qualifier=row[3],
        region=row[4],
        invocation_type=row[5],
        module_name=row[6],
        error=row[7],
        error_code=row[8],
        attempts=row[9],
        first_failure_at=datetime.fromisoformat(row[10]),
        last_failure_at=datetime.fromisoformat(row[11]),
        replay_attempts=row[12],
        last_replay_error=row[13],
        last_replay_error_code=row[14],
    )


class SQLiteDeadLetterSink:
    """Dead-letter entries in a local SQLite file (the embedded default).

    Durability: the database runs in write-ahead-log mode and every ``put`` is its own
    committed transaction before it returns, so an entry survives a ``kill -9`` of the process
    that wrote it. ``synchronous="FULL"`` (the default) also fsyncs the log on every commit,
    which makes entries survive an operating-system crash or power loss too; ``"NORMAL"`` is
    enough for a process crash and skips that fsync (dead letters are rare, so the default
    keeps the stronger guarantee).

    The blocking ``sqlite3`` calls run on one dedicated worker thread per sink, never on the
    event loop and never on the loop's shared default executor; that single thread also
    serializes concurrent callers. Several processes may share one file (SQLite's own
    locking, with ``busy_timeout`` seconds of waiting).

    The file is created on first use with permissions ``0600`` (entries hold chat users'
    data). The constructor does no I/O beyond checking that the directory exists.
    """

    sink_name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_SQLITE_PATH,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise ConfigurationError(
                f"dead-letter path {path!r} is invalid: use a file path such as "
                f"{DEFAULT_SQLITE_PATH!r}"
            )
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigurationError(
                f"dead-letter path {str(self.path)!r} is a directory: give a file path inside "
                f"it, such as {str(self.path / DEFAULT_SQLITE_PATH)!r}"
            )
        parent = self.path.parent
        if not parent.is_dir():
            raise ConfigurationError(
                f"dead-letter path {str(self.path)!r} is invalid: the directory {str(parent)!r} "
                "does not exist (create it first)"
            )
        upper = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if upper not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous={synchronous!r} is invalid: use 'FULL' (default), 'NORMAL' or 'EXTRA'"
            )
        busy = number(
            "busy_timeout",
            busy_timeout,
            strict_minimum=False,
            maximum=3600,
            unit="seconds",
        )
        self.synchronous = str(upper)
        self.busy_timeout = busy
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="waddlebot-dlq")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._flush_scheduled = False
        self._shut = False  # the connection was closed for good (worker thread only)

    def __repr__(self) -> str:
        return f"<SQLiteDeadLetterSink path={str(self.path)!r}>"

    # -- the worker thread ------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """Open (once) on the worker thread."""
        if self._conn is not None:
            return self._conn
        if self._shut:
            raise DeadLetterError(f"the dead-letter sink {self!r} is closed")
        if not self.path.exists():
            # Create it private before SQLite does (with the umask's usual 0644).
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            mode = self._enter_wal(conn)
            if str(mode).lower() != "wal":
                logger.warning(
                    "dead-letter database %s could not use WAL mode (journal_mode=%s); "
                    "writes stay durable but readers may wait for writers",
                    self.path,
                    mode,
                )
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DeadLetterError(
                    f"dead-letter database {str(self.path)!r} has schema version {version}, "
                    f"newer than this SDK's {SCHEMA_VERSION}: upgrade waddlebot-module-sdk"
                )
            if version < SCHEMA_VERSION:
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> object:
        """Switch to WAL, waiting up to ``busy_timeout`` for other openers.

        SQLite answers ``database is locked`` at once, without calling the busy handler, when
        two connections change the journal mode of one file together (two sinks or processes
        opening a new file); so wait here as ``busy_timeout`` promises (on the worker thread).
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _close_connection(self) -> None:
        self._shut = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, operation: str, func: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise DeadLetterError(f"the dead-letter sink {self!r} is closed")

        def job() -> T:
            return func(self._connection())

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, job)
        except DeadLetterError:
            raise
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise DeadLetterError(
                f"dead-letter {operation} failed on {str(self.path)!r}: {type(exc).__name__}: {exc}"
            ) from exc

    # -- the sink protocol ------------------------------------------------------------------

    async def put(self, entry: DeadLetterEntry) -> None:
        """Insert ``entry``; committed (WAL) when this returns."""
        payload = json.dumps(dict(entry.payload), separators=(",", ":"), ensure_ascii=False)
        row = (
            entry.request_id,
            entry.id,
            payload,
            entry.function_name,
            entry.qualifier,
            entry.region,
            entry.invocation_type,
            entry.module_name,
            scrub(entry.error),
            entry.error_code,
            entry.attempts,
            _iso(entry.first_failure_at),
            _iso(entry.last_failure_at),
            entry.replay_attempts,
            entry.last_replay_error,
            entry.last_replay_error_code,
        )

        if self._closed:
            raise DeadLetterError(f"the dead-letter sink {self!r} is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._pending.append((row, future))
            schedule, self._flush_scheduled = not self._flush_scheduled, True
        if schedule:
            try:
                self._executor.submit(self._flush)
            except RuntimeError as exc:  # shut down by a concurrent aclose()
                raise DeadLetterError(f"the dead-letter sink {self!r} is closed") from exc
        # Cancelling the caller does not un-write the row: the flush commits it anyway.
        await future

    def _flush(self) -> None:
        """Group commit, on the worker thread: every pending put in one transaction.

        Puts that arrive while a commit (and its fsync) runs wait for the next flush, so a
        burst of failures costs one fsync per batch instead of one per entry.
        """
        with self._lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        if not batch:
            return
        outcomes: builtins.list[BaseException | None]
        try:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, [row for row, _ in batch])
                conn.execute("COMMIT")
                outcomes = [None] * len(batch)
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if len(batch) == 1:
                    raise
                outcomes = [self._insert_one(conn, row) for row, _ in batch]
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            try:
                future.get_loop().call_soon_threadsafe(self._settle, future, outcome)
            except RuntimeError:
                pass  # the caller's event loop is gone; the row is written (or not) anyway

    @staticmethod
    def _insert_one(conn: sqlite3.Connection, row: tuple[Any, ...]) -> BaseException | None:
        """One row in its own transaction (after a batch failed, to fail only the bad row)."""
        try:
            conn.execute(_INSERT, row)
        except sqlite3.Error as exc:
            return exc
        return None

    def _settle(self, future: asyncio.Future[None], outcome: BaseException | None) -> None:
        if future.done():
            return
        if outcome is None:
            future.set_result(None)
            return
        error = DeadLetterError(
            f"dead-letter put failed on {str(self.path)!r}: {type(outcome).__name__}: {outcome}"
        )
        error.__cause__ = outcome
        future.set_exception(error)

    async def list(
        self, *, limit: int | None = None, function_name: str | None = None
    ) -> builtins.list[DeadLetterEntry]:
        """Entries, oldest first."""
        if limit is not None and limit < 0:
            raise ConfigurationError(f"limit={limit!r} is invalid: use a number >= 0")
        params = (function_name, -1 if limit is None else limit)

        def select(conn: sqlite3.Connection) -> builtins.list[DeadLetterEntry]:
            return [_row_to_entry(row) for row in conn.execute(_SELECT_MANY, params).fetchall()]

        return await self._run("list", select)

    async def get(self, entry_id: str) -> DeadLetterEntry | None:
        """One entry by id."""

        def select(conn: sqlite3.Connection) -> DeadLetterEntry | None:
            row = conn.execute(_SELECT_ONE, (entry_id,)).fetchone()
            return None if row is None else _row_to_entry(row)

        return await self._run("get", select)

    async def delete(self, entry_id: str) -> bool:
        """Remove one entry."""

        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM dead_letters WHERE id = ?", (entry_id,)).rowcount > 0

        return await self._run("delete", remove)

    async def record_failed_replay(
        self, entry_id: str, *, error: str, error_code: str, at: datetime
    ) -> DeadLetterEntry | None:
        """Increment ``replay_attempts`` and note the replay's error, atomically."""

        def update(conn: sqlite3.Connection) -> DeadLetterEntry | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "UPDATE dead_letters SET replay_attempts = replay_attempts + 1, "
                    "last_failure_at = ?, last_replay_error = ?, last_replay_error_code = ? "
                    "WHERE id = ?",
                    (_iso(at), scrub(error), error_code, entry_id),
                )
                row = conn.execute(_SELECT_ONE, (entry_id,)).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return None if row is None else _row_to_entry(row)

        return await self._run("update", update)

    async def count(self) -> int:
        """How many entries there are."""

        def select(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

        return await self._run("count", select)

    async def purge(self) -> int:
        """Remove every entry."""

        def remove(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM dead_letters").rowcount

        return await self._run("purge", remove)

    async def aclose(self) -> None:
        """Close the connection and stop the worker thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_connection)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> SQLiteDeadLetterSink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
