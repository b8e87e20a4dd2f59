"""An open circuit breaker as every exporter reports it (real breaker, real endpoint)."""

from __future__ import annotations

import io
import json
import uuid

from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from module_sdk.observability import EmfObserver, PrometheusMetrics, TracingObserver
from module_sdk.resilience.breaker import CircuitBreakerConfig
from module_sdk.testing import FakeClock, Reply, ScriptedLambdaServer
from support.observability import in_memory_tracer, make_adapter, request


async def test_open_breaker_in_metrics_health_spans_and_emf(
    scripted: ScriptedLambdaServer,
) -> None:
    """Two outages open the breaker; the third call is refused and reported as circuit_open."""
    function = f"obs-{uuid.uuid4().hex[:10]}"  # breakers are shared per function in-process
    outage = Reply.aws_error(500, "ServiceException", "internal")
    scripted.script(function, outage, outage)
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    provider, exporter = in_memory_tracer()
    clock = FakeClock()
    stream = io.StringIO()
    breaker = CircuitBreakerConfig(
        consecutive_failures=2, minimum_calls=2, window_size=4, open_duration=30.0
    )
    async with make_adapter(
        scripted.url,
        [metrics, TracingObserver(provider), EmfObserver(stream, clock=clock)],
        clock,
        function=function,
        max_retries=0,
        circuit_breaker=breaker,
    ) as adapter:
        metrics.watch(adapter)
        codes = [(await adapter.execute_async(request())).error_code for _ in range(3)]
    assert codes == ["service_error", "service_error", "circuit_open"]
    assert scripted.count(function) == 2

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"function": function, **labels})

    assert sample("waddlebot_lambda_invocations_total", outcome="service_error") == 2.0
    assert sample("waddlebot_lambda_invocations_total", outcome="circuit_open") == 1.0
    assert sample("waddlebot_lambda_attempts_total", reason="initial") == 2.0
    assert sample("waddlebot_lambda_circuit_state", state="open") == 1.0
    assert sample("waddlebot_lambda_circuit_state", state="closed") == 0.0
    assert sample("waddlebot_lambda_circuit_state", state="half_open") == 0.0

    status = adapter.get_health_status()
    assert status["circuit_state"] == "open"
    assert status["last_error_code"] == "circuit_open"
    assert status["latency_samples"] == 3

    refused = exporter.get_finished_spans()[-1]
    assert refused.status.status_code == StatusCode.ERROR
    attributes = dict(refused.attributes or {})
    assert attributes["error.type"] == "circuit_open"
    assert attributes["waddlebot.lambda.attempts"] == 0
    assert "aws.request_id" not in attributes

    last = json.loads(stream.getvalue().splitlines()[-1])
    assert (last["Outcome"], last["Errors"], last["Attempts"]) == ("circuit_open", 1, 0)
    assert "RequestId" not in last
