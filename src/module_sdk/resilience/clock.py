"""The one seam for time: a monotonic clock, a wall clock and sleep.

Tests pass :class:`module_sdk.testing.FakeClock` so backoff, breakers and limiters run
without real sleeps.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Monotonic time for durations, wall time for timestamps, and sleep."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (durations, deadlines)."""
        ...

    def utcnow(self) -> datetime:
        """The current UTC time (timestamps only, never durations)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def utcnow(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)
