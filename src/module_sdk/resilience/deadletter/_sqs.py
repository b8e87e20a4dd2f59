"""The Amazon SQS dead-letter sink: one message per entry, JSON body.

SQS is a queue, not a table: it cannot list, look up or update a message in place. This sink
gives the :class:`~module_sdk.resilience.deadletter.DeadLetterSink` operations on top of
receive / delete with these limits (see ``docs/dead-letter.md``):

- ``list`` / ``get`` / ``delete`` / ``record_failed_replay`` *receive* messages with a
  visibility timeout and then make the ones they do not delete visible again at once. While a
  scan runs, the messages it holds are hidden from other readers, and every scan raises each
  message's receive count: do not give the dead-letter queue a redrive policy of its own.
- ``record_failed_replay`` sends an updated copy and then deletes the old message (a crash in
  between leaves two copies with the same id; ``list`` shows the newest and ``delete`` removes
  both).
- A scan reads at most ``max_scan`` messages; order is SQS's (roughly oldest first on a
  standard queue, exact on a FIFO queue).
- A message is at most the queue's ``MaximumMessageSize`` (1 MiB at most): a bigger entry is
  refused with :class:`DeadLetterError` and the adapter reports ``dead_letter: "failed"``.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from module_sdk._validate import integer
from module_sdk.aws_lambda.clients import ClientPool, ClientSettings, default_pool
from module_sdk.errors import ConfigurationError
from module_sdk.resilience.deadletter._entry import DeadLetterEntry, DeadLetterError

__all__ = ["SQSDeadLetterSink"]

logger = logging.getLogger(__name__)

_REGION_IN_URL = (
    re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"),
    re.compile(r"^([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?$"),
)
_BATCH = 10  # SQS's maximum for receive and the *_batch calls


@dataclass(slots=True)
class _Held:
    entry: DeadLetterEntry | None
    receipt_handle: str
    message_id: str


def _region_from_url(host: str) -> str | None:
    for pattern in _REGION_IN_URL:
        match = pattern.match(host)
        if match:
            return match.group(1)
    return None


class SQSDeadLetterSink:
    """Dead-letter entries as messages in an Amazon SQS queue.

    Args:
        queue_url: the queue's URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``).
        region: the queue's region; read from an AWS queue URL when not given.
        endpoint_url: another SQS endpoint; for a URL that is not on ``amazonaws.com``
            (moto, LocalStack, ElasticMQ) it defaults to the URL's ``scheme://host:port``.
        aws_access_key_id / aws_secret_access_key / aws_session_token / profile_name:
            credentials; the standard AWS chain when absent. Never stored in entries or reprs.
        client: an aiobotocore SQS client you own (used as-is, never closed here).
        pool: the client pool to share the SQS client through (the process-wide one by
            default, as for the adapters).
        visibility_timeout: seconds a scan may hold messages hidden (released early).
        receive_wait_seconds: long-polling wait of each receive (0-20); 1 makes the last,
            empty receive of a scan ask every SQS server instead of a sample.
        max_scan: the most messages one scan reads.
        connect_timeout / read_timeout: per SQS call, in seconds.
    """

    sink_name = "sqs"

    def __init__(
        self,
        queue_url: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        client: Any = None,
        pool: ClientPool | None = None,
        visibility_timeout: int = 30,
        receive_wait_seconds: int = 1,
        max_scan: int = 10_000,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        if not isinstance(queue_url, str) or not queue_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"queue_url={queue_url!r} is invalid: use the queue's URL, such as "
                "'https://sqs.us-east-1.amazonaws.com/123456789012/waddlebot-dlq'"
            )
        parts = urlsplit(queue_url)
        host = parts.hostname or ""
        if not parts.path.strip("/"):
            raise ConfigurationError(
                f"queue_url={queue_url!r} is invalid: it has no queue path (.../ACCOUNT/QUEUE_NAME)"
            )
        on_aws = host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
        if endpoint_url is None and not on_aws:
            endpoint_url = f"{parts.scheme}://{parts.netloc}"
        self.queue_url = queue_url
        self.region = region or _region_from_url(host)
        self.endpoint_url = endpoint_url
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ConfigurationError(
                "aws_access_key_id and aws_secret_access_key must be given together "
                "(or neither, to use the standard AWS credential chain)"
            )
        for name, value, low, high in (
            ("visibility_timeout", visibility_timeout, 1, 43_200),
            ("receive_wait_seconds", receive_wait_seconds, 0, 20),
            ("max_scan", max_scan, 1, 1_000_000),
        ):
            integer(name, value, minimum=low, maximum=high)
        self.visibility_timeout = visibility_timeout
        self.receive_wait_seconds = receive_wait_seconds
        self.max_scan = max_scan
        self.fifo = parts.path.endswith(".fifo")
        # Through the shared client pool, like the adapter's Lambda clients; SQS calls keep
        # botocore's standard retries (3 attempts).
        self._settings = ClientSettings(
            # A local SQS (moto, ElasticMQ) ignores the region; botocore needs one to sign.
            region=self.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            endpoint_url=endpoint_url,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            profile_name=profile_name,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=10,
            service="sqs",
            max_attempts=3,
        )
        self._pool = pool or default_pool
        self._own_client = client
        self._client: Any = client
        self._leased: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<SQSDeadLetterSink queue_url={self.queue_url!r}>"

    async def _sqs(self) -> Any:
        if self._closed:
            raise DeadLetterError(f"the dead-letter sink {self!r} is closed")
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                try:
                    self._client = await self._pool.acquire(self._settings)
                except Exception as exc:
                    raise DeadLetterError(
                        f"cannot create an SQS client for {self.queue_url!r}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                self._leased = asyncio.get_running_loop()
        return self._client

    async def _call(self, operation: str, method: str, **params: Any) -> Any:
        client = await self._sqs()
        try:
            return await getattr(client, method)(QueueUrl=self.queue_url, **params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise DeadLetterError(
                f"dead-letter {operation} failed on {self.queue_url!r}: {type(exc).__name__}: {exc}"
            ) from exc

    # -- scanning -------------------------------------------------------------------------

    async def _scan(
        self, operation: str, stop: Callable[[builtins.list[_Held]], bool] | None = None
    ) -> builtins.list[_Held]:
        """Receive (and hide) messages until the queue looks empty, ``stop`` says so, or
        ``max_scan``; the caller must release or delete every one it gets."""
        held: builtins.list[_Held] = []
        try:
            while len(held) < self.max_scan:
                reply = await self._call(
                    operation,
                    "receive_message",
                    MaxNumberOfMessages=min(_BATCH, self.max_scan - len(held)),
                    VisibilityTimeout=self.visibility_timeout,
                    WaitTimeSeconds=self.receive_wait_seconds,
                )
                messages = reply.get("Messages") or []
                if not messages:
                    break
                for message in messages:
                    try:
                        entry: DeadLetterEntry | None = DeadLetterEntry.from_json(
                            message.get("Body", "")
                        )
                    except ValueError as exc:
                        logger.warning(
                            "SQS message %s on %s is not a dead-letter entry (%s): left in place",
                            message.get("MessageId"),
                            self.queue_url,
                            exc,
                        )
                        entry = None
                    held.append(_Held(entry, message["ReceiptHandle"], message["MessageId"]))
                if stop is not None and stop(held):
                    break
        except BaseException:
            await self._release(held)
            raise
        return held

    async def _release(self, held: builtins.list[_Held]) -> None:
        """Make held messages visible again now."""
        for start in range(0, len(held), _BATCH):
            batch = held[start : start + _BATCH]
            try:
                await self._call(
                    "release",
                    "change_message_visibility_batch",
                    Entries=[
                        {
                            "Id": str(i),
                            "ReceiptHandle": h.receipt_handle,
                            "VisibilityTimeout": 0,
                        }
                        for i, h in enumerate(batch)
                    ],
                )
            except DeadLetterError as exc:
                # They come back by themselves after visibility_timeout.
                logger.warning("could not release %d SQS message(s): %s", len(batch), exc)

    async def _delete(self, operation: str, held: builtins.list[_Held]) -> None:
        for start in range(0, len(held), _BATCH):
            batch = held[start : start + _BATCH]
            reply = await self._call(
                operation,
                "delete_message_batch",
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h.receipt_handle} for i, h in enumerate(batch)
                ],
            )
            failed = reply.get("Failed") or []
            if failed:
                raise DeadLetterError(
                    f"dead-letter {operation} failed on {self.queue_url!r}: "
                    f"{len(failed)} message(s) not deleted ({failed[0].get('Message', '')})"
                )

    @staticmethod
    def _latest(held: builtins.list[_Held]) -> dict[str, _Held]:
        """One message per entry id (the copy with the most replays wins)."""
        latest: dict[str, _Held] = {}
        best: dict[str, int] = {}
        for item in held:
            if item.entry is None:
                continue
            key = item.entry.id
            if key not in best or item.entry.replay_attempts > best[key]:
                latest[key] = item
                best[key] = item.entry.replay_attempts
        return latest

    # -- the sink protocol ------------------------------------------------------------------

    async def put(self, entry: DeadLetterEntry) -> None:
        """Send one message; SQS has stored it (redundantly) when this returns."""
        await self._send("put", entry)

    async def _send(self, operation: str, entry: DeadLetterEntry) -> None:
        params: dict[str, Any] = {"MessageBody": entry.to_json()}
        if self.fifo:
            params["MessageGroupId"] = entry.function_name[:128]
            params["MessageDeduplicationId"] = f"{entry.id}-{entry.replay_attempts}"
        await self._call(operation, "send_message", **params)

    async def list(
        self, *, limit: int | None = None, function_name: str | None = None
    ) -> builtins.list[DeadLetterEntry]:
        """A peek at up to ``limit`` entries (see the module's limits)."""
        if limit is not None and limit < 0:
            raise ConfigurationError(f"limit={limit!r} is invalid: use a number >= 0")
        if limit == 0:
            return []

        def matching(held: builtins.list[_Held]) -> builtins.list[DeadLetterEntry]:
            entries = [h.entry for h in self._latest(held).values() if h.entry is not None]
            if function_name is not None:
                entries = [e for e in entries if e.function_name == function_name]
            return entries

        held = await self._scan(
            "list", None if limit is None else (lambda h: len(matching(h)) >= limit)
        )
        await self._release(held)
        entries = matching(held)
        return entries if limit is None else entries[:limit]

    async def get(self, entry_id: str) -> DeadLetterEntry | None:
        """Scan for one entry."""
        held = await self._scan("get", lambda h: _found(h, entry_id))
        await self._release(held)
        found = self._latest(held).get(entry_id)
        return None if found is None else found.entry

    async def delete(self, entry_id: str) -> bool:
        """Scan for an entry and delete every copy of it that the scan saw."""
        held = await self._scan("delete", lambda h: _found(h, entry_id))
        doomed = [h for h in held if h.entry is not None and h.entry.id == entry_id]
        try:
            await self._delete("delete", doomed)
        finally:
            await self._release([h for h in held if h not in doomed])
        return bool(doomed)

    async def record_failed_replay(
        self, entry_id: str, *, error: str, error_code: str, at: datetime
    ) -> DeadLetterEntry | None:
        """Send the updated entry, then delete the old copy (never loses it)."""
        held = await self._scan("update", lambda h: _found(h, entry_id))
        copies = [h for h in held if h.entry is not None and h.entry.id == entry_id]
        try:
            current = self._latest(copies).get(entry_id)
            if current is None or current.entry is None:
                return None
            updated = current.entry.with_failed_replay(error=error, error_code=error_code, at=at)
            await self._send("update", updated)
            await self._delete("update", copies)
        finally:
            await self._release([h for h in held if h not in copies])
        return updated

    async def purge(self) -> int:
        """Receive and delete every entry message (exact count; no PurgeQueue 60 s limit)."""
        removed = 0
        while True:
            held = await self._scan(
                "purge", lambda h: sum(1 for x in h if x.entry is not None) >= 100
            )
            entries = [h for h in held if h.entry is not None]
            try:
                await self._delete("purge", entries)
            finally:
                await self._release([h for h in held if h.entry is None])
            removed += len(entries)
            if not entries:
                return removed

    async def count(self) -> int:
        """SQS's approximate number of messages (visible + in flight)."""
        reply = await self._call(
            "count",
            "get_queue_attributes",
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attributes = reply.get("Attributes") or {}
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    async def aclose(self) -> None:
        """Release the pooled SQS client (the last user closes it); idempotent."""
        self._closed = True
        leased, self._leased = self._leased, None
        if self._own_client is None:
            self._client = None
        if leased is not None and leased is asyncio.get_running_loop():
            await self._pool.release(self._settings)

    async def __aenter__(self) -> SQSDeadLetterSink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _found(held: builtins.list[_Held], entry_id: str) -> bool:
    return any(h.entry is not None and h.entry.id == entry_id for h in held)
