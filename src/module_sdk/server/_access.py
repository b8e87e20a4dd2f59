"""One access-log line per request, plain or JSON, on the ``module_sdk.server.access`` logger.

Fields: method, path, status, duration (ms), and for the execute routes the session id,
module, command, Lambda attempts and how a re-send was answered. Never the service key, any
other header, credentials or the body. Every value is escaped (JSON strings), so chat text
cannot forge a second line.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

__all__ = ["ACCESS_LOGGER", "AccessLog", "ExecuteFacts"]

ACCESS_LOGGER = "module_sdk.server.access"


@dataclass(slots=True)
class ExecuteFacts:
    """What an execute request adds to its access-log line."""

    session_id: str | None = None
    module: str | None = None
    command: str | None = None
    attempts: int | None = None
    resend: str | None = None


_CURRENT: ContextVar[ExecuteFacts | None] = ContextVar("module_sdk_access", default=None)


def begin() -> tuple[ExecuteFacts, Token[ExecuteFacts | None]]:
    """Start the facts of the request being handled in this task (the middleware calls it)."""
    found = ExecuteFacts()
    return found, _CURRENT.set(found)


def end(token: Token[ExecuteFacts | None]) -> None:
    """Forget them again."""
    _CURRENT.reset(token)


def facts() -> ExecuteFacts:
    """The facts of the request being handled (a throwaway object outside one)."""
    return _CURRENT.get() or ExecuteFacts()


class AccessLog:
    """Writes the lines; ``style`` is ``"plain"`` or ``"json"``."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.logger = logging.getLogger(ACCESS_LOGGER)

    def log(self, method: str, path: str, status: int, seconds: float, found: ExecuteFacts) -> None:
        """Log one finished request."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        if found.session_id is not None:
            fields.update(
                session_id=found.session_id,
                module=found.module,
                command=found.command,
                attempts=found.attempts,
                resend=found.resend,
            )
        if self.style == "json":
            self.logger.info("%s", json.dumps(fields, ensure_ascii=True))
            return
        words = []
        for key, value in fields.items():
            if value is None:
                continue
            text = str(value) if isinstance(value, int | float) else json.dumps(value)
            words.append(f"{key}={text}")
        self.logger.info("%s", " ".join(words))
