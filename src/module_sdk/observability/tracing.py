"""OpenTelemetry spans for every invocation (the ``otel`` extra: opentelemetry-api only).

::

    from module_sdk.observability.tracing import TracingObserver

    adapter = LambdaAdapter("dice", "us-east-1", "dice", observers=[TracingObserver()])

Each ``execute_async`` becomes one span following the FaaS client conventions: kind CLIENT
(PRODUCER for ``Event`` calls), ``faas.invoked_name``, ``faas.invoked_provider="aws"``,
``faas.invoked_region`` and, once Lambda answers, ``aws.request_id``. Every retry adds a
``retry`` event with its attempt, reason, error code and delay, and a call that took other
than one attempt says how many (``waddlebot.lambda.attempts``). The status is ERROR with the
error code in ``error.type`` for every failure except a business answer, which is marked
``waddlebot.lambda.outcome="module_error"`` instead.

The span is the current span while the call runs, so spans made below it (an instrumented
HTTP client) become its children. Its context reaches the function through the Invoke
call's ClientContext (``X-Amz-Client-Context``), never through the payload: the propagator's
fields (W3C ``traceparent``/``tracestate`` by default) are put in the ClientContext's
``custom`` map, where a Python function reads them as ``context.client_context.custom``.
Lambda hands a ClientContext to the function on synchronous (``RequestResponse``) calls only,
so it is set for those only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "tracing needs opentelemetry-api: pip install 'waddlebot-module-sdk[otel]'"
    ) from exc

from module_sdk.observability._common import invoked_name, outcome_of
from module_sdk.outcomes import is_error

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.aws_lambda.naming import FunctionTarget
    from module_sdk.errors import InvocationError
    from module_sdk.resilience.pipeline import Invocation

__all__ = ["MAX_CLIENT_CONTEXT_BYTES", "TracingObserver", "merge_client_context"]

logger = logging.getLogger(__name__)

MAX_CLIENT_CONTEXT_BYTES = 3583
"""Lambda's limit on the base64-encoded ClientContext."""

_SPAN_KEY = "module_sdk.observability.span"
_ATTACHED_KEY = "module_sdk.observability.attached_context"
_ESSENTIAL = ("traceparent",)
"""Fields kept when the whole carrier does not fit in the ClientContext."""


def _encode(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode("ascii")


def merge_client_context(existing: str | None, fields: dict[str, str]) -> str | None:
    """Add ``fields`` to the ``custom`` map of a base64 JSON ClientContext.

    Returns the new ClientContext, or ``existing`` unchanged when it cannot be decoded or
    when even the essential fields (``traceparent``) would not fit in
    :data:`MAX_CLIENT_CONTEXT_BYTES` (optional fields such as ``tracestate`` and ``baggage``
    are dropped first).
    """
    if not fields:
        return existing
    document: dict[str, Any] = {}
    if existing:
        try:
            decoded = json.loads(base64.b64decode(existing, validate=True))
        except (binascii.Error, ValueError):
            logger.debug("the ClientContext is not base64 JSON: trace context not added")
            return existing
        if not isinstance(decoded, dict) or not isinstance(decoded.get("custom", {}), dict):
            logger.debug("the ClientContext has no usable 'custom' map: trace context not added")
            return existing
        document = decoded
    custom = dict(document.get("custom") or {})
    for candidate in (fields, {k: v for k, v in fields.items() if k in _ESSENTIAL}):
        if not candidate:
            break
        encoded = _encode({**document, "custom": {**custom, **candidate}})
        if len(encoded) <= MAX_CLIENT_CONTEXT_BYTES:
            return encoded
    logger.debug("trace context does not fit in the 3,583-byte ClientContext: not added")
    return existing


class TracingObserver:
    """An invocation observer making one OpenTelemetry span per call.

    Args:
        tracer_provider: where spans go (default: the global provider, set by
            ``opentelemetry.trace.set_tracer_provider`` or auto-instrumentation).
        propagate: put the trace context in the ClientContext of synchronous calls.
        propagator: how to write it. By default the W3C ``traceparent`` (and ``tracestate``
            when there is one) is formatted directly, the cheapest way; pass
            ``opentelemetry.propagate.get_global_textmap()`` to use the configured
            propagators instead (baggage, B3, X-Ray...).
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        propagate: bool = True,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        from module_sdk import __version__

        self._tracer = trace.get_tracer("module_sdk", __version__, tracer_provider=tracer_provider)
        self.propagate = propagate
        self._propagator = propagator
        self._static: dict[int, tuple[FunctionTarget, str, str, dict[str, str]]] = {}

    def __repr__(self) -> str:
        return f"<TracingObserver propagate={self.propagate!r}>"

    def _describe(self, invocation: Invocation) -> tuple[str, dict[str, str]]:
        """The span name and start attributes of a function, built once per adapter target."""
        target = invocation.target
        cached = self._static.get(id(target))
        if cached is not None and cached[0] is target and cached[1] == invocation.region:
            return cached[2], cached[3]
        name = invoked_name(invocation)
        attributes = {
            "faas.invoked_name": name,
            "faas.invoked_provider": "aws",
            "faas.invoked_region": invocation.region,
        }
        if target.function_name.startswith("arn:"):
            attributes["aws.lambda.invoked_arn"] = target.function_name
        if target.qualifier:
            attributes["waddlebot.lambda.qualifier"] = target.qualifier
        self._static[id(target)] = (target, invocation.region, name, attributes)
        return name, attributes

    def on_start(self, invocation: Invocation) -> None:
        """Start the span, make it current, and put its context in the ClientContext."""
        name, attributes = self._describe(invocation)
        span = self._tracer.start_span(
            name,
            kind=SpanKind.PRODUCER if invocation.invocation_type == "Event" else SpanKind.CLIENT,
            attributes=attributes,
        )
        invocation.extras[_SPAN_KEY] = span
        ctx = trace.set_span_in_context(span)
        invocation.extras[_ATTACHED_KEY] = otel_context.attach(ctx)
        if not self.propagate or invocation.invocation_type != "RequestResponse":
            return
        if self._propagator is not None:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=ctx)
            invocation.client_context = merge_client_context(invocation.client_context, carrier)
            return
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return
        traceparent = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}"
        )
        state = span_context.trace_state
        if invocation.client_context is None and not state:
            # The common case, without a JSON encoder: the value is plain hex and dashes.
            document = '{"custom":{"traceparent":"' + traceparent + '"}}'
            invocation.client_context = base64.b64encode(document.encode()).decode("ascii")
            return
        fields = {"traceparent": traceparent}
        if state:
            fields["tracestate"] = state.to_header()
        invocation.client_context = merge_client_context(invocation.client_context, fields)

    def on_attempt(self, invocation: Invocation) -> None:
        """Nothing per attempt (retries get an event)."""

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Add a ``retry`` event: which attempt failed, why, and the delay before the next."""
        span = invocation.extras.get(_SPAN_KEY)
        if span is not None:
            span.add_event(
                "retry",
                {
                    "attempt": invocation.attempts,
                    "reason": error.reason,
                    "error_code": error.error_code.value,
                    "delay_seconds": delay,
                },
            )

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Set the request id, attempts and status, then end the span."""
        span = invocation.extras.pop(_SPAN_KEY, None)
        token = invocation.extras.pop(_ATTACHED_KEY, None)
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:
                logger.debug("could not restore the OpenTelemetry context", exc_info=True)
        if span is None:
            return
        # Only what a plain first-attempt success does not already say: each attribute
        # costs microseconds in the SDK, and most calls are plain successes.
        attributes: dict[str, str | int] = {}
        if invocation.aws_request_id:
            attributes["aws.request_id"] = invocation.aws_request_id
        if invocation.attempts != 1:
            attributes["waddlebot.lambda.attempts"] = invocation.attempts
        if not response.success:
            outcome = outcome_of(response)
            if not is_error(outcome):
                attributes["waddlebot.lambda.outcome"] = outcome
            else:
                attributes["error.type"] = outcome
                span.set_status(Status(StatusCode.ERROR, response.error or outcome))
        if attributes:
            span.set_attributes(attributes)
        span.end()
