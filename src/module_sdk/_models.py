"""The request and response of a module call (WaddleBot's public dataclasses)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ExecuteRequest", "ExecuteResponse"]


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


@dataclass
class ExecuteResponse:
    """A module's normalized answer.

    ``error_code`` is ``None`` on success and one of :class:`module_sdk.errors.ErrorCode`'s
    values on every failure.
    """

    success: bool
    message: str | None = None
    data: dict[str, Any] | None = None
    error: str | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the response as a JSON-ready dict (all six fields)."""
        return asdict(self)
