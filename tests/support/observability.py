"""Shared pieces of the observability tests: requests, adapters and an in-memory tracer."""

from __future__ import annotations

import random
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from module_sdk import ExecuteRequest
from module_sdk.adapters import LambdaAdapter
from module_sdk.resilience.pipeline import InvocationObserver
from module_sdk.testing import FakeClock, Reply

THROTTLE = Reply.aws_error(429, "TooManyRequestsException", "Rate exceeded", retry_after=2)
"""A 429 asking for 2 s: with initial_retry_delay 0.5 the delay is exactly 2.0 s."""
ROLLED = Reply.ok({"success": True, "message": "rolled 7"})
BOOM = Reply.function_error({"errorMessage": "boom", "errorType": "ValueError"})


def request(session: str = "sess-1", user: str = "u1") -> ExecuteRequest:
    """A chat command request."""
    return ExecuteRequest(
        command="!roll",
        args=["2d6"],
        user_id=user,
        entity_id="e1",
        community_id="c1",
        session_id=session,
        platform="twitch",
    )


def make_adapter(
    url: str,
    observers: list[InvocationObserver],
    clock: FakeClock,
    *,
    function: str = "dice",
    **kwargs: Any,
) -> LambdaAdapter:
    """A LambdaAdapter on ``url`` with a fake clock and a seeded RNG (3 retries by default)."""
    return LambdaAdapter(
        function,
        "us-east-1",
        "dice",
        endpoint_url=url,
        observers=observers,
        clock=clock,
        rng=random.Random(7),
        **kwargs,
    )


def in_memory_tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider exporting finished spans to memory (the global one is untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter
