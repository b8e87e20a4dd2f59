"""CPU cost of observability: the SDK's own CPU per call with exporters on and off.

Calls go to an in-process handler (:class:`module_sdk.testing.HandlerInvoker`), so there is no
network and no server: what is measured is the SDK's own work per call (event building,
pipeline, parsing, health) plus what the exporters add. Process CPU time
(``time.process_time()``, every thread, so the span exporter's thread counts too) over many
sequential calls; the configurations run interleaved, several rounds, median per call.

Configurations:

- ``disabled``: no exporter (the always-on health window only);
- ``metrics``: :class:`PrometheusMetrics` on a private registry;
- ``tracing``: :class:`TracingObserver` on an SDK ``TracerProvider`` with a
  ``BatchSpanProcessor`` and an exporter that drops spans (trace context propagated);
- ``metrics+tracing``: both (the figure the 1.15x budget applies to);
- ``metrics+tracing 10%``: the same with a ``ParentBased(TraceIdRatioBased(0.1))`` sampler,
  a common production setting (unsampled calls still propagate their trace context);
- ``all``: metrics, tracing and :class:`EmfObserver` writing to a null stream;
- ``bare OTel span``: not the SDK at all: an opentelemetry-sdk span started and ended with
  three attributes on the same provider setup, to show the floor tracing cannot go under.

With ``--http`` a second table runs the same configurations through the real aiobotocore
invoker against ``bench/lambda_stub.py`` (a Lambda-API endpoint in another process, so its
CPU is not counted): the cost per call of a real deployment.

Run: .venv/bin/python bench/bench_observability.py [--calls 3000] [--rounds 5] [--http]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

import lambda_stub
from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.observability import EmfObserver, PrometheusMetrics, TracingObserver
from module_sdk.resilience.pipeline import InvocationObserver
from module_sdk.testing import HandlerInvoker

CREDS: dict[str, Any] = {
    "aws_access_key_id": "AKIDBENCH00000000000",
    "aws_secret_access_key": "bench-secret",
}
REQUEST = ExecuteRequest("!roll", ["2d6"], "u-1", "e-1", "c-1", "sess-1", "twitch")


class DropExporter(SpanExporter):
    """Accepts spans and throws them away (the cost of export itself is not the SDK's)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


class NullStream(io.TextIOBase):
    """A text stream that discards what is written."""

    def write(self, text: str) -> int:
        return len(text)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A trivial module: the SDK's work dominates."""
    return {"success": True, "message": "rolled 7", "targets": ["twitch"]}


def provider(ratio: float = 1.0) -> TracerProvider:
    """An SDK tracer provider with a batch processor and a dropping exporter."""
    sampler = None if ratio >= 1.0 else ParentBased(TraceIdRatioBased(ratio))
    result = TracerProvider(sampler=sampler)
    result.add_span_processor(BatchSpanProcessor(DropExporter()))
    return result


def bare_span_cpu(calls: int) -> float:
    """CPU microseconds of one bare opentelemetry-sdk span (start, three attributes, end)."""
    tracer = provider().get_tracer("bench")
    attributes = {"a": "x", "b": "y", "c": "z"}
    start = time.process_time()
    for _ in range(calls):
        tracer.start_span("dice", kind=SpanKind.CLIENT, attributes=attributes).end()
    return (time.process_time() - start) / calls * 1e6


def configurations() -> dict[str, Callable[[], list[InvocationObserver]]]:
    """Each configuration's observers (fresh registries and providers per adapter)."""

    def tracer(ratio: float = 1.0) -> TracingObserver:
        return TracingObserver(provider(ratio))

    return {
        "disabled": lambda: [],
        "metrics": lambda: [PrometheusMetrics(CollectorRegistry())],
        "tracing": lambda: [tracer()],
        "metrics+tracing": lambda: [PrometheusMetrics(CollectorRegistry()), tracer()],
        "metrics+tracing 10%": lambda: [PrometheusMetrics(CollectorRegistry()), tracer(0.1)],
        "all": lambda: [
            PrometheusMetrics(CollectorRegistry()),
            tracer(),
            EmfObserver(NullStream()),
        ],
    }


async def cpu_per_call(adapter: LambdaAdapter, calls: int) -> float:
    """Process CPU microseconds per call over ``calls`` sequential calls."""
    start = time.process_time()
    for _ in range(calls):
        response = await adapter.execute_async(REQUEST)
        assert response.success, response.error
    return (time.process_time() - start) / calls * 1e6


async def measure(
    title: str, adapters: dict[str, LambdaAdapter], calls: int, rounds: int, bare: bool
) -> None:
    """Warm up, run interleaved rounds, print the table."""
    for adapter in adapters.values():
        await cpu_per_call(adapter, min(calls, 300))
    samples: dict[str, list[float]] = {name: [] for name in adapters}
    if bare:
        samples["bare OTel span"] = []
    for _ in range(rounds):
        for name, adapter in adapters.items():
            samples[name].append(await cpu_per_call(adapter, calls))
        if bare:
            samples["bare OTel span"].append(bare_span_cpu(calls))
    base, base_min = statistics.median(samples["disabled"]), min(samples["disabled"])
    print(f"\n{title}: {calls} calls x {rounds} rounds per configuration")
    print("CPU microseconds per call; ratios against 'disabled' (median, and best round)")
    print(f"{'configuration':<22}{'median':>9}{'min':>9}{'max':>9}{'ratio':>8}{'ratio(min)':>11}")
    for name, values in samples.items():
        median, low = statistics.median(values), min(values)
        ratios = (
            "" if name == "bare OTel span" else f"{median / base:>7.2f}x{low / base_min:>10.2f}x"
        )
        print(f"{name:<22}{median:>9.1f}{low:>9.1f}{max(values):>9.1f}{ratios}")
    for adapter in adapters.values():
        await adapter.aclose()


async def main(calls: int, rounds: int, http: bool) -> None:
    """The in-process table, then (with ``--http``) the real-invoker table."""
    in_process = {
        name: LambdaAdapter(
            "dice", "us-east-1", "dice", invoker=HandlerInvoker(handler), observers=make()
        )
        for name, make in configurations().items()
    }
    await measure("In-process handler (the SDK's own CPU)", in_process, calls, rounds, True)
    if not http:
        return
    with lambda_stub.running() as url:
        over_http = {
            name: LambdaAdapter(
                "dice",
                "us-east-1",
                "dice",
                endpoint_url=url,
                **CREDS,
                observers=make(),
            )
            for name, make in configurations().items()
        }
        await measure(
            "aiobotocore over HTTP to bench/lambda_stub.py (client CPU only)",
            over_http,
            max(1, calls // 5),
            rounds,
            False,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per configuration")
    parser.add_argument("--http", action="store_true", help="also measure the real invoker")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds, args.http))
