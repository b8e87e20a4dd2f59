"""Backoff maths: the seed's cap, full jitter under it, Retry-After as a floor."""

from __future__ import annotations

import random

import pytest

from module_sdk.resilience.backoff import backoff_cap, compute_delay


@pytest.mark.parametrize(
    ("retry", "cap"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (200, 30.0)]
)
def test_seed_schedule_is_the_cap(retry: int, cap: float) -> None:
    """min(initial * 2**retry, max), as the seed documents."""
    assert backoff_cap(retry, 0.5, 30.0) == cap


def test_full_jitter_exact_values() -> None:
    """A seeded RNG gives exact, reproducible delays under the cap."""
    rng = random.Random(42)
    delays = [compute_delay(r, initial=0.5, maximum=30.0, rng=rng) for r in range(4)]
    expected_rng = random.Random(42)
    expected = [expected_rng.uniform(0, c) for c in (0.5, 1.0, 2.0, 4.0)]
    assert delays == expected
    assert all(0 <= d <= c for d, c in zip(delays, (0.5, 1.0, 2.0, 4.0), strict=True))


def test_jitter_spreads_delays() -> None:
    """Full jitter uses the whole range (no synchronized retry storms)."""
    rng = random.Random(7)
    delays = [compute_delay(3, initial=0.5, maximum=30.0, rng=rng) for _ in range(2000)]
    assert min(delays) < 0.2 and max(delays) > 3.8
    assert 1.8 < sum(delays) / len(delays) < 2.2


def test_retry_after_is_a_floor_capped_at_max() -> None:
    """Retry-After is waited at least, but never beyond max_retry_delay."""
    rng = random.Random(1)
    assert compute_delay(0, initial=0.5, maximum=30.0, rng=rng, retry_after=2.0) == 2.0
    assert compute_delay(0, initial=0.5, maximum=5.0, rng=rng, retry_after=600.0) == 5.0
    assert compute_delay(0, initial=0.5, maximum=5.0, rng=rng, retry_after=0.0) <= 0.5
