"""The dead-letter record, the sink protocol, and the rules for what is dead-lettered."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from module_sdk.aws_lambda.redact import redact
from module_sdk.errors import DeadLetterError
from module_sdk.outcomes import DEAD_LETTER_CODES

__all__ = [
    "DEAD_LETTER_CODES",
    "DeadLetterEntry",
    "DeadLetterError",
    "DeadLetterSink",
    "new_entry_id",
    "scrub",
]

ENTRY_FORMAT = 1


def new_entry_id(at: datetime | None = None) -> str:
    """A new entry id: 32 hex digits, 48-bit milliseconds then 80 random bits (sorts by time)."""
    moment = (at or datetime.now(UTC)).timestamp()
    millis = max(0, int(moment * 1000)) & 0xFFFF_FFFF_FFFF
    return f"{millis:012x}{os.urandom(10).hex()}"


def scrub(text: str) -> str:
    """``text`` with AWS key ids, SigV4 credentials/signatures and tokens redacted.

    The same rules as the classification boundary and botocore's log filter
    (:func:`module_sdk.aws_lambda.redact.redact`), so stored records and logs agree.
    """
    return redact(text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 timestamp, not {type(value).__name__}")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One request that finally failed, with everything needed to send it again.

    Attributes:
        id: the entry's id (32 hex digits, sorts by creation time).
        payload: the exact Lambda event that was (or would have been) sent, ``request_id``
            and ``timestamp`` included, so a replay is byte-for-byte the same request.
        function_name: the ``FunctionName`` called (prefix applied; a name or an ARN).
        qualifier: the version or alias, or None.
        region: the region the call went to.
        invocation_type: ``Event`` or ``RequestResponse``.
        module_name: the WaddleBot module that made the call.
        error / error_code: why the original call failed (``error_code`` is an
            :class:`~module_sdk.errors.ErrorCode` value).
        attempts: network attempts the original call made (0 when a policy refused it).
        first_failure_at: when the original call gave up (UTC).
        last_failure_at: the most recent failure, original call or replay (UTC).
        replay_attempts: failed replays so far.
        last_replay_error / last_replay_error_code: why the latest replay failed, if one did.

    No credentials are ever part of an entry; error texts are passed through :func:`scrub`.
    """

    id: str
    payload: Mapping[str, Any]
    function_name: str
    qualifier: str | None
    region: str
    invocation_type: str
    module_name: str
    error: str
    error_code: str
    attempts: int
    first_failure_at: datetime
    last_failure_at: datetime
    replay_attempts: int = 0
    last_replay_error: str | None = None
    last_replay_error_code: str | None = None

    @property
    def request_id(self) -> str | None:
        """The event's ``request_id`` (the WaddleBot session id), if it has one."""
        value = self.payload.get("request_id")
        return value if isinstance(value, str) else None

    @property
    def target(self) -> str:
        """``function_name[:qualifier]`` for display."""
        return f"{self.function_name}:{self.qualifier}" if self.qualifier else self.function_name

    def with_failed_replay(self, *, error: str, error_code: str, at: datetime) -> DeadLetterEntry:
        """A copy recording one more failed replay."""
        return replace(
            self,
            replay_attempts=self.replay_attempts + 1,
            last_failure_at=at,
            last_replay_error=scrub(error),
            last_replay_error_code=error_code,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps as ISO 8601 strings)."""
        return {
            "format": ENTRY_FORMAT,
            "id": self.id,
            "function_name": self.function_name,
            "qualifier": self.qualifier,
            "region": self.region,
            "invocation_type": self.invocation_type,
            "module_name": self.module_name,
            "error": self.error,
            "error_code": self.error_code,
            "attempts": self.attempts,
            "first_failure_at": _iso(self.first_failure_at),
            "last_failure_at": _iso(self.last_failure_at),
            "replay_attempts": self.replay_attempts,
            "last_replay_error": self.last_replay_error,
            "last_replay_error_code": self.last_replay_error_code,
            "request_id": self.request_id,
            "payload": dict(self.payload),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeadLetterEntry:
        """Rebuild an entry from :meth:`to_dict`'s output; ValueError names a bad field."""
        try:
            payload = data["payload"]
            if not isinstance(payload, Mapping):
                raise ValueError("payload must be a JSON object")
            qualifier = data.get("qualifier")
            return cls(
                id=str(data["id"]),
                payload=dict(payload),
                function_name=str(data["function_name"]),
                qualifier=None if qualifier is None else str(qualifier),
                region=str(data["region"]),
                invocation_type=str(data["invocation_type"]),
                module_name=str(data["module_name"]),
                error=str(data["error"]),
                error_code=str(data["error_code"]),
                attempts=int(data["attempts"]),
                first_failure_at=_parse_time(data["first_failure_at"], "first_failure_at"),
                last_failure_at=_parse_time(data["last_failure_at"], "last_failure_at"),
                replay_attempts=int(data.get("replay_attempts") or 0),
                last_replay_error=data.get("last_replay_error"),
                last_replay_error_code=data.get("last_replay_error_code"),
            )
        except KeyError as exc:
            raise ValueError(f"dead-letter entry is missing the field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"dead-letter entry is malformed: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetterEntry:
        """Rebuild an entry from :meth:`to_json`'s output; ValueError when it is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"dead-letter entry is not JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ValueError("dead-letter entry is not a JSON object")
        return cls.from_dict(data)


@runtime_checkable
class DeadLetterSink(Protocol):
    """Where finally-failed requests are kept until they are replayed or purged.

    Every method may be called concurrently from many tasks. ``put`` must have stored the
    entry durably when it returns: the adapter awaits it before ``execute_async`` returns.
    Methods raise :class:`DeadLetterError` when the store fails.
    """

    async def put(self, entry: DeadLetterEntry) -> None:
        """Store ``entry`` (durably, before returning)."""
        ...

    async def list(
        self, *, limit: int | None = None, function_name: str | None = None
    ) -> builtins.list[DeadLetterEntry]:
        """Entries, oldest first: at most ``limit``, only ``function_name``'s if given."""
        ...

    async def get(self, entry_id: str) -> DeadLetterEntry | None:
        """One entry, or None when there is no such id."""
        ...

    async def delete(self, entry_id: str) -> bool:
        """Remove an entry; False when there was no such id."""
        ...

    async def record_failed_replay(
        self, entry_id: str, *, error: str, error_code: str, at: datetime
    ) -> DeadLetterEntry | None:
        """Count one more failed replay of an entry; the updated entry, or None if absent."""
        ...

    async def purge(self) -> int:
        """Remove every entry; how many were removed."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads (idempotent)."""
        ...
