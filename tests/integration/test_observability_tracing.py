"""OpenTelemetry spans from the SDK's in-memory exporter, and the ClientContext they send."""

from __future__ import annotations

import base64
import json
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

from module_sdk.adapters import LambdaAdapter
from module_sdk.observability import TracingObserver
from module_sdk.observability.tracing import MAX_CLIENT_CONTEXT_BYTES, merge_client_context
from module_sdk.testing import FakeClock, HandlerInvoker, Reply, ScriptedLambdaServer
from support.observability import BOOM, ROLLED, THROTTLE, in_memory_tracer, make_adapter, request

BASE_ATTRIBUTES = {
    "faas.invoked_name": "dice",
    "faas.invoked_provider": "aws",
    "faas.invoked_region": "us-east-1",
}


def decode(client_context: str | None) -> Any:
    """The JSON inside a base64 ClientContext."""
    assert client_context is not None
    return json.loads(base64.b64decode(client_context))


async def test_throttle_then_success_span(scripted: ScriptedLambdaServer) -> None:
    """One CLIENT span, a retry event with reason and delay, request id, no error status."""
    scripted.script("dice", THROTTLE, ROLLED)
    provider, exporter = in_memory_tracer()
    async with make_adapter(scripted.url, [TracingObserver(provider)], FakeClock()) as adapter:
        response = await adapter.execute_async(request())
    assert response.success is True
    (span,) = exporter.get_finished_spans()
    assert span.name == "dice"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        **BASE_ATTRIBUTES,
        "aws.request_id": "req-2",
        "waddlebot.lambda.attempts": 2,
    }
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "retry",
            {
                "attempt": 1,
                "reason": "TooManyRequestsException",
                "error_code": "throttled",
                "delay_seconds": 2.0,
            },
        )
    ]
    assert span.context is not None
    traceparent = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
    contexts = [decode(i["client_context"]) for i in scripted.invocations]
    assert len(contexts) == 2
    for context in contexts:
        assert list(context) == ["custom"]
        assert list(context["custom"]) == ["traceparent"]
        assert context["custom"]["traceparent"].startswith(traceparent)


async def test_function_error_span(scripted: ScriptedLambdaServer) -> None:
    """A function error sets status ERROR with the message and error.type."""
    scripted.script("dice", BOOM)
    provider, exporter = in_memory_tracer()
    async with make_adapter(scripted.url, [TracingObserver(provider)], FakeClock()) as adapter:
        await adapter.execute_async(request())
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    assert dict(span.attributes or {}) == {
        **BASE_ATTRIBUTES,
        "aws.request_id": "req-1",
        "error.type": "function_error",
    }
    assert span.events == ()


async def test_business_answer_is_not_an_error(scripted: ScriptedLambdaServer) -> None:
    """A ``success: false`` answer (module_error) leaves the status unset."""
    scripted.script("dice", Reply.ok({"success": False, "error": "no such dice"}))
    provider, exporter = in_memory_tracer()
    async with make_adapter(scripted.url, [TracingObserver(provider)], FakeClock()) as adapter:
        response = await adapter.execute_async(request())
    assert response.error_code == "module_error"
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.UNSET
    assert (span.attributes or {})["waddlebot.lambda.outcome"] == "module_error"
    assert "error.type" not in (span.attributes or {})


async def test_event_call_is_a_producer_span_without_client_context(
    scripted: ScriptedLambdaServer,
) -> None:
    """Event calls make PRODUCER spans; Lambda drops ClientContext for them, so none is sent."""
    provider, exporter = in_memory_tracer()
    async with make_adapter(
        scripted.url, [TracingObserver(provider)], FakeClock(), invocation_type="Event"
    ) as adapter:
        response = await adapter.execute_async(request())
    assert response.success is True
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.PRODUCER
    assert dict(span.attributes or {}) == {
        **BASE_ATTRIBUTES,
        "aws.request_id": "req-1",
    }
    assert scripted.invocations[0]["client_context"] is None


async def test_payload_is_the_same_with_tracing(scripted: ScriptedLambdaServer) -> None:
    """Tracing never changes the event: the bodies with and without it are identical."""
    provider, _ = in_memory_tracer()
    async with make_adapter(scripted.url, [], FakeClock()) as plain:
        await plain.execute_async(request())
    async with make_adapter(scripted.url, [TracingObserver(provider)], FakeClock()) as traced:
        await traced.execute_async(request())
    first, second = scripted.invocations
    assert first["body"] == second["body"]
    assert first["client_context"] is None
    assert second["client_context"] is not None


async def test_span_nests_under_the_callers_span_and_parents_inner_spans() -> None:
    """The caller's current span is the parent; spans made during the call are children."""
    provider, exporter = in_memory_tracer()
    tracer = provider.get_tracer("test")

    def handler(event: Any, context: Any) -> dict[str, Any]:
        with tracer.start_as_current_span("inner"):
            return {"success": True}

    async with LambdaAdapter(
        "arn:aws:lambda:eu-west-1:123456789012:function:dice:prod",
        "eu-west-1",
        "dice",
        invoker=HandlerInvoker(handler),
        observers=[TracingObserver(provider)],
    ) as adapter:
        with tracer.start_as_current_span("chat-message") as parent:
            await adapter.execute_async(request())
    inner, call, outer = exporter.get_finished_spans()
    assert (inner.name, call.name, outer.name) == ("inner", "dice", "chat-message")
    assert call.parent is not None and call.parent.span_id == parent.get_span_context().span_id
    assert inner.parent is not None and call.context is not None
    assert inner.parent.span_id == call.context.span_id
    attributes = dict(call.attributes or {})
    assert attributes["faas.invoked_name"] == "dice"
    assert attributes["faas.invoked_region"] == "eu-west-1"
    assert attributes["aws.lambda.invoked_arn"] == (
        "arn:aws:lambda:eu-west-1:123456789012:function:dice"
    )
    assert attributes["waddlebot.lambda.qualifier"] == "prod"


def test_merge_keeps_existing_client_context() -> None:
    """Trace fields join the caller's own ``custom`` map; other members are kept."""
    existing = base64.b64encode(
        json.dumps({"client": {"app": "bot"}, "custom": {"tenant": "t1"}}).encode()
    ).decode()
    merged = merge_client_context(existing, {"traceparent": "00-a-b-01"})
    assert decode(merged) == {
        "client": {"app": "bot"},
        "custom": {"tenant": "t1", "traceparent": "00-a-b-01"},
    }


def test_merge_drops_optional_fields_over_the_limit() -> None:
    """A too-large tracestate is dropped; traceparent alone is kept."""
    fields = {"traceparent": "00-a-b-01", "tracestate": "x=" + "y" * 4000}
    merged = merge_client_context(None, fields)
    assert merged is not None
    assert len(merged) <= MAX_CLIENT_CONTEXT_BYTES
    assert decode(merged) == {"custom": {"traceparent": "00-a-b-01"}}


def test_merge_leaves_unusable_client_context_alone() -> None:
    """Non-base64, non-JSON-object and oversize contexts are returned unchanged."""
    assert merge_client_context("not base64!", {"traceparent": "t"}) == "not base64!"
    array = base64.b64encode(b"[1, 2]").decode()
    assert merge_client_context(array, {"traceparent": "t"}) == array
    big = base64.b64encode(json.dumps({"custom": {"k": "v" * 2600}}).encode()).decode()
    assert merge_client_context(big, {"traceparent": "00-" + "a" * 60}) == big
    assert merge_client_context(None, {}) is None


async def test_a_given_propagator_writes_its_own_fields() -> None:
    """With the global propagators, baggage travels in the ClientContext beside traceparent."""
    from opentelemetry import baggage, context, propagate

    calls: list[str | None] = []

    class RecordingInvoker(HandlerInvoker):
        """Keeps each call's ClientContext."""

        async def invoke(self, call: Any) -> Any:
            calls.append(call.client_context)
            return await super().invoke(call)

    provider, exporter = in_memory_tracer()
    observer = TracingObserver(provider, propagator=propagate.get_global_textmap())
    token = context.attach(baggage.set_baggage("tenant", "t1"))
    try:
        async with LambdaAdapter(
            "dice",
            "us-east-1",
            "dice",
            invoker=RecordingInvoker(lambda event, ctx: {"success": True}),
            observers=[observer],
        ) as adapter:
            await adapter.execute_async(request())
    finally:
        context.detach(token)
    (span,) = exporter.get_finished_spans()
    assert span.context is not None
    custom = decode(calls[0])["custom"]
    assert custom["baggage"] == "tenant=t1"
    assert custom["traceparent"].startswith(f"00-{span.context.trace_id:032x}-")
