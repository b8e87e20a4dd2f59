"""The request and response of a module call (WaddleBot's public dataclasses)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Diagnostics", "ExecuteRequest", "ExecuteResponse"]


@dataclass
class ExecuteRequest:
    """A chat command or event on its way to a module.

    ``metadata`` may carry ``community``, ``user`` and ``entity`` dicts, ``is_event``,
    ``event_type`` and ``event_data``; see the README for how they map into the Lambda event.
    """

    command: str
    args: list[str]
    user_id: str
    entity_id: str
    community_id: str
    session_id: str
    platform: str
    metadata: dict[str, Any] = field(default_factory=dict)
    scopes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Diagnostics:
    """What the SDK observed while answering one call, kept apart from the function's reply.

    ``ExecuteResponse.data`` holds only the function's own keys; these facts about the call
    live here, so a function may use any key names (``attempts``, ``cache_hit``...) without
    colliding with the SDK's.

    Attributes:
        attempts: network attempts made (0: answered from the cache or refused before any).
        status_code: the HTTP status of the last Lambda API answer, or the ``statusCode`` of
            an API-Gateway-style reply; None when no answer was received.
        aws_error_code: the AWS error code of a failed Lambda API call
            (``TooManyRequestsException``...).
        log_tail: the decoded last 4 KB of the function's log (``log_type="Tail"``).
        cache_hit: True when the reply came from the response cache.
        dead_letter: ``"stored"`` or ``"failed"`` when the call was dead-lettered.
        dead_letter_id: the dead-letter entry's id, when stored.
        durable_execution_arn: the execution ARN Lambda answered for a durable function
            (``durable_execution=True``), else None.
    """

    attempts: int = 0
    status_code: int | None = None
    aws_error_code: str | None = None
    log_tail: str | None = None
    cache_hit: bool = False
    dead_letter: Literal["stored", "failed"] | None = None
    dead_letter_id: str | None = None
    durable_execution_arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The diagnostics as a JSON-ready dict."""
        return asdict(self)


@dataclass
class ExecuteResponse:
    """A module's normalized answer.

    ``error_code`` is ``None`` on success and one of :class:`module_sdk.errors.ErrorCode`'s
    values on every failure. ``data`` holds the function's own extra keys and nothing else;
    what the SDK observed about the call (attempts, HTTP status, log tail, cache hit,
    dead-letter entry) is in ``diagnostics``, set by the adapter on every response it returns.
    ``diagnostics`` takes no part in equality and is left out of ``repr()`` (a log tail can
    hold the function's internals).
    """

    success: bool
    message: str | None = None
    data: dict[str, Any] | None = None
    error: str | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None
    diagnostics: Diagnostics | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the response as a JSON-ready dict (all seven fields; ``diagnostics`` is a
        dict or None)."""
        return asdict(self)
