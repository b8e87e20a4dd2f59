"""HealthStatus: the seed's health state machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["UNHEALTHY_AFTER", "HealthStatus", "health_summary"]

UNHEALTHY_AFTER = 3
"""Consecutive failures after which ``is_healthy`` turns False."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class HealthStatus:
    """Health of the path to one module: success/failure counters and timestamps.

    ``is_healthy`` is True until :data:`UNHEALTHY_AFTER` consecutive failures and becomes
    True again with the next success. Timestamps are timezone-aware (UTC).
    """

    is_healthy: bool = True
    last_success: datetime | None = None
    last_failure: datetime | None = None
    consecutive_failures: int = 0
    total_requests: int = 0
    total_failures: int = 0
    error_rate: float = 0.0

    def record_success(self, now: datetime | None = None) -> None:
        """Count one successful call."""
        self.total_requests += 1
        self.last_success = now or _utcnow()
        self.consecutive_failures = 0
        self.is_healthy = True
        self._update_error_rate()

    def record_failure(self, now: datetime | None = None) -> None:
        """Count one failed call; three in a row mark the module unhealthy."""
        self.total_requests += 1
        self.total_failures += 1
        self.last_failure = now or _utcnow()
        self.consecutive_failures += 1
        if self.consecutive_failures >= UNHEALTHY_AFTER:
            self.is_healthy = False
        self._update_error_rate()

    def _update_error_rate(self) -> None:
        self.error_rate = self.total_failures / self.total_requests if self.total_requests else 0.0

    def get_status(self) -> dict[str, Any]:
        """Return the seven health keys, timestamps as ISO 8601 strings with an offset."""
        return {
            "is_healthy": self.is_healthy,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_failure": self.last_failure.isoformat() if self.last_failure else None,
            "consecutive_failures": self.consecutive_failures,
            "total_requests": self.total_requests,
            "total_failures": self.total_failures,
            "error_rate": self.error_rate,
        }


def health_summary(status: Mapping[str, Any]) -> str:
    """The state in words with the error rate beside it, so that ``healthy`` (which holds
    until three failures in a row) is not read as "working" for a module failing every call:
    ``healthy``, ``healthy, error rate 100% (2 of 2 calls failed)``, ``unhealthy, ...``."""
    state = "healthy" if status.get("is_healthy") else "unhealthy"
    total = int(status.get("total_requests") or 0)
    failed = int(status.get("total_failures") or 0)
    if not failed:
        return state
    rate = float(status.get("error_rate") or 0.0)
    return f"{state}, error rate {rate:.0%} ({failed} of {total} calls failed)"
