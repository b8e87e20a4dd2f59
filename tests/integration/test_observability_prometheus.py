"""Prometheus metrics read back from a registry after scripted calls to a real endpoint."""

from __future__ import annotations

import asyncio
import enum
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from module_sdk import ConfigurationError, ExecuteResponse
from module_sdk.adapters import LambdaAdapter
from module_sdk.observability import PrometheusMetrics, render_metrics
from module_sdk.testing import FakeClock, HandlerInvoker, Reply, ScriptedLambdaServer
from support.observability import BOOM, ROLLED, THROTTLE, make_adapter, request

F = {"function": "dice"}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """One sample's value (None when the series does not exist)."""
    return registry.get_sample_value(name, labels)


def series(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` by its sorted label pairs."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def registry() -> CollectorRegistry:
    """A private registry per test."""
    return CollectorRegistry()


async def test_throttle_then_success(
    scripted: ScriptedLambdaServer, registry: CollectorRegistry
) -> None:
    """A 429 then a success: one success, an initial and a throttled attempt, 2.0 s."""
    scripted.script("dice", THROTTLE, ROLLED)
    metrics = PrometheusMetrics(registry)
    async with make_adapter(scripted.url, [metrics], FakeClock()) as adapter:
        response = await adapter.execute_async(request())
    assert response.success is True
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "dice"), ("outcome", "success")): 1.0
    }
    assert series(registry, "waddlebot_lambda_attempts_total") == {
        (("function", "dice"), ("reason", "initial")): 1.0,
        (("function", "dice"), ("reason", "throttled")): 1.0,
    }
    hist = {"function": "dice", "invocation_type": "RequestResponse"}
    assert value(registry, "waddlebot_lambda_duration_seconds_count", **hist) == 1.0
    assert value(registry, "waddlebot_lambda_duration_seconds_sum", **hist) == 2.0
    assert value(registry, "waddlebot_lambda_duration_seconds_bucket", **hist, le="1.0") == 0.0
    assert value(registry, "waddlebot_lambda_duration_seconds_bucket", **hist, le="2.5") == 1.0
    assert value(registry, "waddlebot_lambda_in_flight", **F) == 0.0
    assert scripted.count("dice") == 2


async def test_function_error(scripted: ScriptedLambdaServer, registry: CollectorRegistry) -> None:
    """A function error is counted once under its own outcome and never retried."""
    scripted.script("dice", BOOM)
    metrics = PrometheusMetrics(registry)
    async with make_adapter(scripted.url, [metrics], FakeClock()) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "function_error"
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "dice"), ("outcome", "function_error")): 1.0
    }
    assert series(registry, "waddlebot_lambda_attempts_total") == {
        (("function", "dice"), ("reason", "initial")): 1.0
    }
    hist = {"function": "dice", "invocation_type": "RequestResponse"}
    assert value(registry, "waddlebot_lambda_duration_seconds_sum", **hist) == 0.0
    assert value(registry, "waddlebot_lambda_in_flight", **F) == 0.0


async def test_throttled_until_retries_run_out(
    scripted: ScriptedLambdaServer, registry: CollectorRegistry
) -> None:
    """Three 429s with two retries: outcome throttled, two retried attempts, 4.0 s."""
    scripted.script("dice", THROTTLE, THROTTLE, THROTTLE)
    metrics = PrometheusMetrics(registry)
    async with make_adapter(scripted.url, [metrics], FakeClock(), max_retries=2) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "throttled"
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "dice"), ("outcome", "throttled")): 1.0
    }
    assert series(registry, "waddlebot_lambda_attempts_total") == {
        (("function", "dice"), ("reason", "initial")): 1.0,
        (("function", "dice"), ("reason", "throttled")): 2.0,
    }
    hist = {"function": "dice", "invocation_type": "RequestResponse"}
    assert value(registry, "waddlebot_lambda_duration_seconds_sum", **hist) == 4.0


async def test_label_values_stay_bounded(registry: CollectorRegistry) -> None:
    """Fifty users and sessions leave no trace in the labels: one series per outcome."""
    metrics = PrometheusMetrics(registry)
    invoker = HandlerInvoker(lambda event, context: {"success": True, "message": "ok"})
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", invoker=invoker, observers=[metrics]
    ) as adapter:
        for i in range(50):
            await adapter.execute_async(request(session=f"session-{i}", user=f"user-{i}"))
    label_values = {
        v
        for family in registry.collect()
        for sample in family.samples
        for v in sample.labels.values()
    }
    assert not any(v.startswith(("session-", "user-")) for v in label_values)
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "dice"), ("outcome", "success")): 50.0
    }


class OddCodeAdapter(LambdaAdapter):
    """An adapter whose reply parsing invents its own error codes."""

    def _parse_lambda_response(self, response_data: Any) -> ExecuteResponse:
        return ExecuteResponse(success=False, error="odd", error_code=str(response_data["code"]))


async def test_unknown_error_codes_become_other(registry: CollectorRegistry) -> None:
    """Error codes outside the SDK's vocabulary are counted as ``other``."""
    metrics = PrometheusMetrics(registry)
    codes = iter(["made-up-1", "made-up-2"])
    invoker = HandlerInvoker(lambda event, context: {"code": next(codes)})
    async with OddCodeAdapter(
        "dice", "us-east-1", "dice", invoker=invoker, observers=[metrics]
    ) as adapter:
        await adapter.execute_async(request())
        await adapter.execute_async(request())
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "dice"), ("outcome", "other")): 2.0
    }


async def test_in_flight_counts_running_calls(registry: CollectorRegistry) -> None:
    """The in-flight gauge is 1 while the function runs and 0 afterwards."""
    metrics = PrometheusMetrics(registry)
    seen: list[float | None] = []

    async def handler(event: Any, context: Any) -> dict[str, Any]:
        seen.append(value(registry, "waddlebot_lambda_in_flight", **F))
        return {"success": True}

    async with LambdaAdapter(
        "dice", "us-east-1", "dice", invoker=HandlerInvoker(handler), observers=[metrics]
    ) as adapter:
        await adapter.execute_async(request())
    assert seen == [1.0]
    assert value(registry, "waddlebot_lambda_in_flight", **F) == 0.0


async def test_cancelled_call_leaves_flight_and_is_counted(registry: CollectorRegistry) -> None:
    """Cancelling a call brings in-flight back to 0 and counts it as ``cancelled``."""
    metrics = PrometheusMetrics(registry)
    started = asyncio.Event()
    never = asyncio.Event()

    async def handler(event: Any, context: Any) -> dict[str, Any]:
        started.set()
        await never.wait()
        return {"success": True}

    async with LambdaAdapter(
        "dice", "us-east-1", "dice", invoker=HandlerInvoker(handler), observers=[metrics]
    ) as adapter:
        task = asyncio.create_task(adapter.execute_async(request()))
        await started.wait()
        assert value(registry, "waddlebot_lambda_in_flight", **F) == 1.0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert value(registry, "waddlebot_lambda_in_flight", **F) == 0.0
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "dice"), ("outcome", "cancelled")): 1.0
    }
    assert adapter.get_health_status()["in_flight"] == 0


class State(enum.Enum):
    """A breaker-like state enum."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


def test_circuit_state_gauge_reads_the_callback(registry: CollectorRegistry) -> None:
    """circuit_state is 1 for the current state and 0 for the others, read at each scrape."""
    metrics = PrometheusMetrics(registry)
    current: list[object] = [State.CLOSED]
    metrics.track_circuit("dice", lambda: current[0])
    name = "waddlebot_lambda_circuit_state"
    assert series(registry, name) == {
        (("function", "dice"), ("state", "closed")): 1.0,
        (("function", "dice"), ("state", "half_open")): 0.0,
        (("function", "dice"), ("state", "open")): 0.0,
    }
    current[0] = State.HALF_OPEN
    assert value(registry, name, function="dice", state="half_open") == 1.0
    current[0] = "OPEN"
    assert value(registry, name, function="dice", state="open") == 1.0
    assert value(registry, name, function="dice", state="closed") == 0.0
    current[0] = "forced_open"
    assert value(registry, name, function="dice", state="forced_open") == 1.0
    assert value(registry, name, function="dice", state="open") == 0.0
    metrics.untrack("dice")
    assert series(registry, name) == {}


def test_a_failing_callback_drops_only_its_series(registry: CollectorRegistry) -> None:
    """A callback that raises leaves its series out; the scrape still succeeds."""
    metrics = PrometheusMetrics(registry)

    def broken() -> str:
        raise RuntimeError("breaker store unreachable")

    metrics.track_circuit("broken", broken)
    metrics.track_circuit("dice", lambda: "open")
    assert value(registry, "waddlebot_lambda_circuit_state", function="dice", state="open") == 1.0
    assert not any(
        dict(labels)["function"] == "broken"
        for labels in series(registry, "waddlebot_lambda_circuit_state")
    )


async def test_dead_letter_depth_from_sync_and_async_callbacks(
    registry: CollectorRegistry,
) -> None:
    """Plain callbacks are read at scrape; async ones report what the last refresh got."""
    metrics = PrometheusMetrics(registry)
    depths = {"local": 3, "sqs": 5}

    async def sqs_count() -> int:
        return depths["sqs"]

    async def unreachable() -> int:
        raise OSError("queue unreachable")

    metrics.track_dead_letter("local", lambda: depths["local"])
    metrics.track_dead_letter("sqs", sqs_count)
    metrics.track_dead_letter("down", unreachable)
    name = "waddlebot_lambda_dead_letter_depth"
    assert series(registry, name) == {(("queue", "local"),): 3.0}
    await metrics.refresh()
    assert series(registry, name) == {(("queue", "local"),): 3.0, (("queue", "sqs"),): 5.0}
    depths["sqs"] = 0
    depths["local"] = 4
    await metrics.refresh()
    assert series(registry, name) == {(("queue", "local"),): 4.0, (("queue", "sqs"),): 0.0}


async def test_watch_exports_an_adapters_dead_letter_queue(
    scripted: ScriptedLambdaServer, registry: CollectorRegistry, tmp_path: Path
) -> None:
    """watch(adapter) reports its dead-letter sink's depth (once for a shared sink)."""
    scripted.script("audit", Reply.aws_error(500, "ServiceException"))
    metrics = PrometheusMetrics(registry)
    path = tmp_path / "dlq.sqlite3"
    async with make_adapter(
        scripted.url,
        [metrics],
        FakeClock(),
        function="audit",
        invocation_type="Event",
        max_retries=0,
        dead_letter=str(path),
    ) as adapter:
        metrics.watch(adapter)
        metrics.watch(adapter)
        response = await adapter.execute_async(request())
        assert response.diagnostics is not None
        assert response.diagnostics.dead_letter == "stored"
        await metrics.refresh()
        assert series(registry, "waddlebot_lambda_dead_letter_depth") == {
            (("queue", str(path)),): 1.0
        }
    assert series(registry, "waddlebot_lambda_invocations_total") == {
        (("function", "audit"), ("outcome", "service_error")): 1.0
    }


def test_one_registry_holds_one_set_of_metrics(registry: CollectorRegistry) -> None:
    """Registering twice on a registry is a clear configuration error; a prefix avoids it."""
    PrometheusMetrics(registry)
    with pytest.raises(ConfigurationError, match="one PrometheusMetrics per registry"):
        PrometheusMetrics(registry)
    other = PrometheusMetrics(registry, prefix="second")
    assert other.prefix == "second"


def test_render_metrics_negotiates_the_format(registry: CollectorRegistry) -> None:
    """Prometheus text by default, OpenMetrics when the scraper asks for it."""
    PrometheusMetrics(registry).track_circuit("dice", lambda: "closed")
    body, content_type = render_metrics(registry)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b'waddlebot_lambda_circuit_state{function="dice",state="closed"} 1.0\n' in body
    body, content_type = render_metrics(registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
