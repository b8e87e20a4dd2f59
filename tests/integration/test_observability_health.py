"""The always-on health keys beside the seed's seven, for scripted calls."""

from __future__ import annotations

import pytest

from module_sdk import ConfigurationError
from module_sdk.adapters import LambdaAdapter
from module_sdk.observability import HealthWindow
from module_sdk.observability.health import percentile
from module_sdk.testing import FakeClock, HandlerInvoker, Reply, ScriptedLambdaServer
from support.observability import BOOM, ROLLED, THROTTLE, make_adapter, request

SEED_KEYS = [
    "is_healthy",
    "last_success",
    "last_failure",
    "consecutive_failures",
    "total_requests",
    "total_failures",
    "error_rate",
]


async def test_throttle_then_success_health(scripted: ScriptedLambdaServer) -> None:
    """A 429 then a success: the seed's keys first, then latency 2.0 s and one throttle."""
    scripted.script("dice", THROTTLE, ROLLED)
    async with make_adapter(scripted.url, [], FakeClock()) as adapter:
        await adapter.execute_async(request())
    status = adapter.get_health_status()
    assert list(status)[:7] == SEED_KEYS
    assert status == {
        "is_healthy": True,
        "last_success": "2026-01-01T00:00:02+00:00",
        "last_failure": None,
        "consecutive_failures": 0,
        "total_requests": 1,
        "total_failures": 0,
        "error_rate": 0.0,
        "latency_p50_seconds": 2.0,
        "latency_p95_seconds": 2.0,
        "latency_p99_seconds": 2.0,
        "latency_samples": 1,
        "last_error": None,
        "last_error_code": None,
        "last_error_at": None,
        "throttle_count": 1,
        "retry_count": 1,
        "in_flight": 0,
        "circuit_state": None,
    }


async def test_function_error_health(scripted: ScriptedLambdaServer) -> None:
    """A function error becomes the last error, with its code and time."""
    scripted.script("dice", ROLLED, BOOM)
    clock = FakeClock()
    async with make_adapter(scripted.url, [], clock) as adapter:
        await adapter.execute_async(request())
        clock.advance(5)
        await adapter.execute_async(request())
    status = adapter.get_health_status()
    assert {key: status[key] for key in list(status)[7:]} == {
        "latency_p50_seconds": 0.0,
        "latency_p95_seconds": 0.0,
        "latency_p99_seconds": 0.0,
        "latency_samples": 2,
        "last_error": "ValueError: boom",
        "last_error_code": "function_error",
        "last_error_at": "2026-01-01T00:00:05+00:00",
        "throttle_count": 0,
        "retry_count": 0,
        "in_flight": 0,
        "circuit_state": None,
    }
    assert status["total_failures"] == 1


async def test_throttles_count_every_throttled_attempt(scripted: ScriptedLambdaServer) -> None:
    """Throttled on all three attempts: throttle_count 3, retry_count 2."""
    scripted.script("dice", THROTTLE, THROTTLE, THROTTLE)
    async with make_adapter(scripted.url, [], FakeClock(), max_retries=2) as adapter:
        await adapter.execute_async(request())
    status = adapter.get_health_status()
    assert (status["throttle_count"], status["retry_count"]) == (3, 2)
    assert status["last_error_code"] == "throttled"
    assert status["latency_p50_seconds"] == 4.0


async def test_business_answer_is_not_the_last_error(scripted: ScriptedLambdaServer) -> None:
    """``success: false`` from the function (module_error) is an answer, not an error."""
    scripted.script("dice", Reply.ok({"success": False, "error": "no such dice"}))
    async with make_adapter(scripted.url, [], FakeClock()) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "module_error"
    assert adapter.get_health_status()["last_error"] is None


def test_percentiles_use_the_nearest_rank() -> None:
    """p50/p95/p99 of 1..100 are 50/95/99; of one value, that value; of none, None."""
    ordered = [float(i) for i in range(1, 101)]
    assert [percentile(ordered, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([0.25], 99) == 0.25
    assert percentile([], 50) is None


async def test_window_keeps_recent_calls_only() -> None:
    """At most ``window`` calls, none older than ``max_age``, feed the percentiles."""
    clock = FakeClock()
    window = HealthWindow(clock, window=3, max_age=60.0)
    seconds = iter([0.1, 0.2, 0.3, 0.4])

    async def handler(event: object, context: object) -> dict[str, bool]:
        clock.advance(next(seconds))
        return {"success": True}

    async with LambdaAdapter(
        "dice", "us-east-1", "dice", invoker=HandlerInvoker(handler), clock=clock,
        observers=[window],
    ) as adapter:  # fmt: skip
        for _ in range(4):
            await adapter.execute_async(request())
    assert window.latencies() == pytest.approx([0.2, 0.3, 0.4])
    clock.advance(61.0)
    assert window.latencies() == []
    assert window.get_status()["latency_p50_seconds"] is None


def test_circuit_state_comes_from_the_callback() -> None:
    """The breaker state is read when asked; a failing callback reads as ``unknown``."""
    states = ["open"]
    window = HealthWindow(FakeClock(), circuit_state=lambda: states[0])
    assert window.get_status()["circuit_state"] == "open"
    states[0] = "half_open"
    assert window.get_status()["circuit_state"] == "half_open"

    def broken() -> str:
        raise RuntimeError("store down")

    window.circuit_state = broken
    assert window.get_status()["circuit_state"] == "unknown"


@pytest.mark.parametrize(
    ("window", "max_age"),
    [pytest.param(0, 1.0, id="empty-window"), pytest.param(10, 0, id="zero-age")],
)
def test_bad_window_settings_are_refused(window: int, max_age: float) -> None:
    """A window under one call or a non-positive age is a configuration error."""
    with pytest.raises(ConfigurationError, match="invalid"):
        HealthWindow(FakeClock(), window=window, max_age=max_age)
