"""Writing failed requests to a sink (the adapter's side) and replaying them (the operator's).

Replaying needs something that sends a stored event (:class:`PayloadInvoker`); the adapters
that do it are built by :class:`module_sdk.adapters.replay.ReplayAdapters`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from module_sdk._models import ExecuteResponse
from module_sdk.errors import ConfigurationError, ErrorCode, ModuleSDKError, RequestError
from module_sdk.resilience.clock import Clock, SystemClock
from module_sdk.resilience.deadletter._entry import (
    DEAD_LETTER_CODES,
    DeadLetterEntry,
    DeadLetterSink,
    new_entry_id,
    scrub,
)
from module_sdk.resilience.deadletter._sqlite import SQLiteDeadLetterSink

if TYPE_CHECKING:
    from module_sdk.resilience.pipeline import Invocation

__all__ = [
    "DeadLetterRecorder",
    "PayloadInvoker",
    "ReplayResult",
    "is_delivered",
    "replay_entries",
]

logger = logging.getLogger(__name__)

_DEAD_LETTER_TYPES = frozenset({"Event", "RequestResponse"})


class DeadLetterRecorder:
    """Decides whether a failed call is dead-lettered, writes it, and marks the response.

    The adapter owns one when ``dead_letter=`` is given and calls :meth:`record` with every
    final response before ``execute_async`` returns.
    """

    def __init__(
        self,
        sink: DeadLetterSink,
        *,
        module_name: str,
        include_sync: bool = False,
        owns_sink: bool = False,
        clock: Clock | None = None,
        codes: frozenset[str] = DEAD_LETTER_CODES,
    ) -> None:
        self.sink = sink
        self.module_name = module_name
        self.include_sync = include_sync
        self.owns_sink = owns_sink
        self.codes = codes
        self._clock: Clock = clock or SystemClock()

    @classmethod
    def create(
        cls,
        dead_letter: DeadLetterSink | str | os.PathLike[str] | None,
        *,
        include_sync: bool,
        module_name: str,
        clock: Clock | None = None,
    ) -> DeadLetterRecorder | None:
        """Build the recorder for the adapter's ``dead_letter=`` / ``dead_letter_sync=``.

        A path (``str`` or ``PathLike``) means a :class:`SQLiteDeadLetterSink` that the
        adapter owns and closes; any object with the sink methods is used as it is.
        """
        if not isinstance(include_sync, bool):
            raise ConfigurationError(
                f"dead_letter_sync={include_sync!r} is invalid: use True or False"
            )
        if dead_letter is None:
            if include_sync:
                raise ConfigurationError(
                    "dead_letter_sync=True needs a sink: pass dead_letter='dlq.sqlite3' (a "
                    "SQLite file) or dead_letter=SQSDeadLetterSink(queue_url)"
                )
            return None
        if isinstance(dead_letter, str) and dead_letter.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"dead_letter={dead_letter!r} looks like a URL: a string is a SQLite file path; "
                "for Amazon SQS pass dead_letter=SQSDeadLetterSink(queue_url, region=...)"
            )
        if isinstance(dead_letter, str | os.PathLike):
            return cls(
                SQLiteDeadLetterSink(dead_letter),
                module_name=module_name,
                include_sync=include_sync,
                owns_sink=True,
                clock=clock,
            )
        if not isinstance(dead_letter, DeadLetterSink):
            raise ConfigurationError(
                f"dead_letter={dead_letter!r} is invalid: use a SQLite file path, a "
                "SQLiteDeadLetterSink/SQSDeadLetterSink, or any object with the DeadLetterSink "
                "methods (put, list, get, delete, record_failed_replay, purge, aclose)"
            )
        return cls(dead_letter, module_name=module_name, include_sync=include_sync, clock=clock)

    def wants(self, invocation_type: str, response: ExecuteResponse) -> bool:
        """Whether this final response is dead-lettered."""
        if response.success or response.error_code not in self.codes:
            return False
        if invocation_type not in _DEAD_LETTER_TYPES:
            return False  # DryRun checks permissions: there is nothing to deliver later
        return invocation_type == "Event" or self.include_sync

    async def record(self, invocation: Invocation, response: ExecuteResponse) -> None:
        """Write ``invocation`` to the sink if ``response`` calls for it; never raises.

        On success the invocation gets ``dead_letter="stored"`` and ``dead_letter_id`` (the
        adapter reports them in ``response.diagnostics``); when the sink fails it gets
        ``dead_letter="failed"`` and the failure is logged. The response is not changed.
        """
        if not self.wants(invocation.invocation_type, response):
            return
        try:
            now = self._clock.utcnow()
            # The exact bytes that were (or would have been) sent, decoded.
            payload = json.loads(invocation.body)
            error_code = response.error_code or ErrorCode.INTERNAL.value
            entry = DeadLetterEntry(
                id=new_entry_id(now),
                payload=payload,
                function_name=invocation.target.function_name,
                qualifier=invocation.target.qualifier,
                region=invocation.region,
                invocation_type=invocation.invocation_type,
                module_name=self.module_name,
                error=scrub(response.error or error_code),
                error_code=error_code,
                attempts=invocation.attempts,
                first_failure_at=now,
                last_failure_at=now,
            )
            await self.sink.put(entry)
        except Exception as exc:
            logger.error(
                "dead-letter write to %r FAILED for request %s to %s (%s): %s; the request "
                "is not stored anywhere",
                self.sink,
                invocation.session_id,
                invocation.target.display_name,
                response.error_code,
                scrub(str(exc)),
            )
            invocation.dead_letter = "failed"
        else:
            logger.warning(
                "request %s to %s failed (%s after %d attempt(s)) and was dead-lettered as %s",
                invocation.session_id,
                invocation.target.display_name,
                error_code,
                invocation.attempts,
                entry.id,
            )
            invocation.dead_letter = "stored"
            invocation.dead_letter_id = entry.id

    async def aclose(self) -> None:
        """Close the sink if it was created from a path."""
        if self.owns_sink:
            await self.sink.aclose()


# -- replay ---------------------------------------------------------------------------------


class PayloadInvoker(Protocol):
    """Anything that can send a stored event (``LambdaAdapter.invoke_payload``)."""

    async def invoke_payload(self, payload: Mapping[str, Any]) -> ExecuteResponse:
        """Send ``payload`` unchanged and return the normalized response."""
        ...


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What happened to one entry during a replay."""

    entry_id: str
    target: str
    delivered: bool
    error_code: str | None = None
    error: str | None = None
    replay_attempts: int = 0
    """Failed replays of this entry so far (after this one)."""


def is_delivered(response: ExecuteResponse) -> bool:
    """A replay counts as delivered when the function got the event: success, or its own
    business answer (``module_error``). Everything else keeps the entry."""
    return response.success or response.error_code == ErrorCode.MODULE_ERROR.value


async def replay_entries(
    sink: DeadLetterSink,
    invoker_for: Callable[[DeadLetterEntry], PayloadInvoker],
    *,
    limit: int | None = None,
    function_name: str | None = None,
    ids: Sequence[str] | None = None,
    clock: Clock | None = None,
) -> list[ReplayResult]:
    """Re-send stored entries, oldest first; remove each only after it was delivered.

    A failed replay keeps the entry and records it (``replay_attempts`` + 1). A sink error
    stops the replay (raises :class:`DeadLetterError`) so nothing is sent twice by a broken
    store; an invoker that cannot be built for an entry counts as a failed replay.
    """
    clock = clock or SystemClock()
    if ids is not None:
        entries: list[DeadLetterEntry] = []
        for entry_id in ids:
            found = await sink.get(entry_id)
            if found is None:
                raise RequestError(f"no dead-letter entry with id {entry_id!r}")
            entries.append(found)
    else:
        entries = await sink.list(limit=limit, function_name=function_name)
    results: list[ReplayResult] = []
    for entry in entries:
        try:
            response = await invoker_for(entry).invoke_payload(entry.payload)
        except ModuleSDKError as exc:
            response = ExecuteResponse(
                success=False, error=exc.message, error_code=exc.error_code.value
            )
        if is_delivered(response):
            await sink.delete(entry.id)
            logger.info("dead-letter entry %s replayed to %s and removed", entry.id, entry.target)
            results.append(ReplayResult(entry.id, entry.target, True, response.error_code))
            continue
        error_code = response.error_code or ErrorCode.INTERNAL.value
        error = scrub(response.error or error_code)
        updated = await sink.record_failed_replay(
            entry.id, error=error, error_code=error_code, at=clock.utcnow()
        )
        logger.warning(
            "replay of dead-letter entry %s to %s failed (%s): kept", entry.id, entry.target, error
        )
        results.append(
            ReplayResult(
                entry.id,
                entry.target,
                False,
                error_code,
                error,
                updated.replay_attempts if updated is not None else entry.replay_attempts + 1,
            )
        )
    return results
