"""Backoff maths (pure): the seed's capped exponential schedule with full jitter under it."""

from __future__ import annotations

import random

__all__ = ["backoff_cap", "compute_delay"]


def backoff_cap(retry: int, initial: float, maximum: float) -> float:
    """The seed's delay cap before retry ``retry`` (0-based): ``min(initial * 2**retry, max)``."""
    if retry >= 64:  # keeps the float maths finite; every real schedule is capped long before
        return maximum
    return min(initial * float(2**retry), maximum)


def compute_delay(
    retry: int,
    *,
    initial: float,
    maximum: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Delay before retry number ``retry`` (0-based).

    Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a uniform draw in
    ``[0, backoff_cap(retry)]``. A server's ``Retry-After`` is honoured as a floor, itself
    capped at ``maximum`` so one reply cannot stall a chat command for minutes.
    """
    delay = rng.uniform(0.0, backoff_cap(retry, initial, maximum))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, maximum))
    return delay
