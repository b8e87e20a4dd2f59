"""The one seam for time: a monotonic clock, a wall clock, sleep and deadlines.

Tests pass :class:`module_sdk.testing.FakeClock` so backoff, breakers, limiters and the
request deadline run without real sleeps.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
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

    def timeout_at(self, deadline: float) -> AbstractAsyncContextManager[object]:
        """A scope that cancels its body when :meth:`monotonic` reaches ``deadline``, raising
        ``TimeoutError`` (as ``asyncio.timeout_at`` does on the event loop's clock)."""
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

    def timeout_at(self, deadline: float) -> asyncio.Timeout:
        """``asyncio.timeout_at`` for a ``time.monotonic()`` deadline."""
        loop = asyncio.get_running_loop()
        return asyncio.timeout_at(loop.time() + (deadline - time.monotonic()))
