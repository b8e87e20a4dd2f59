"""Prometheus metrics for every invocation (the ``prometheus`` extra: prometheus-client).

::

    from prometheus_client import CollectorRegistry
    from module_sdk.observability.prometheus import PrometheusMetrics, render_metrics

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    adapter = LambdaAdapter("dice", "us-east-1", "dice", observers=[metrics])
    body, content_type = render_metrics(registry)      # what GET /metrics answers

One :class:`PrometheusMetrics` serves any number of adapters (the ``function`` label tells
them apart). Labels stay bounded: the function (one per adapter), the outcome (``success``
or an :class:`~module_sdk.errors.ErrorCode` value), the retry reason (an error code), the
invocation type and the breaker state. Never a user, session or request id.

Metrics (``waddlebot_lambda_`` prefix by default):

- ``invocations_total{function,outcome}`` counter: finished calls.
- ``attempts_total{function,reason}`` counter: network attempts, by why each was made
  (``initial``, or the error code of the failure that caused the retry).
- ``duration_seconds{function,invocation_type}`` histogram: the whole call, retries included.
- ``in_flight{function}`` gauge: calls in progress.
- ``circuit_state{function,state}`` gauge: 1 for the breaker's current state, 0 for the others
  (from the callbacks given to :meth:`PrometheusMetrics.track_circuit`).
- ``dead_letter_depth{queue}`` gauge: entries waiting in a dead-letter queue (from the
  callbacks given to :meth:`PrometheusMetrics.track_dead_letter`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "prometheus needs prometheus-client: pip install 'waddlebot-module-sdk[prometheus]'"
    ) from exc

from module_sdk.errors import ConfigurationError
from module_sdk.observability._common import (
    function_label,
    outcome_of,
)

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.adapters.base_adapter import BaseAdapter
    from module_sdk.errors import InvocationError
    from module_sdk.resilience.pipeline import Invocation

__all__ = [
    "CIRCUIT_STATES",
    "DEFAULT_BUCKETS",
    "DEFAULT_PREFIX",
    "PrometheusMetrics",
    "render_metrics",
    "server_metrics",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "waddlebot_lambda"
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
)  # fmt: skip
"""Lambda calls run from milliseconds to the 900 s maximum timeout."""
CIRCUIT_STATES: tuple[str, ...] = ("closed", "open", "half_open")
"""States always exported by ``circuit_state`` (others appear when a breaker reports them)."""
INITIAL = "initial"
"""The ``reason`` of a call's first attempt."""


def server_metrics() -> PrometheusMetrics:
    """The module server's metrics: a private registry with the invocation metrics plus
    prometheus-client's process, platform and garbage-collector collectors."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return PrometheusMetrics(registry)


def render_metrics(
    registry: CollectorRegistry | None = None, accept: str | None = None
) -> tuple[bytes, str]:
    """The exposition of ``registry`` (default: the global one) and its Content-Type.

    ``accept`` is the scrape's ``Accept`` header: Prometheus's text format by default, the
    OpenMetrics format when the scraper asks for it.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry if registry is not None else REGISTRY), content_type


class _CallbackGauges:
    """A collector reading the breaker states and dead-letter depths at scrape time."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self.circuits: dict[str, Callable[[], object]] = {}
        self.queues: dict[str, Callable[[], float]] = {}
        self.async_queues: dict[str, Callable[[], Awaitable[float]]] = {}
        self.cached_depths: dict[str, float] = {}
        self.sinks: dict[int, str] = {}

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                f"{self._prefix}_circuit_state",
                "Circuit breaker state per function: 1 for the current state, 0 for the others.",
                labels=["function", "state"],
            ),
            GaugeMetricFamily(
                f"{self._prefix}_dead_letter_depth",
                "Invocations waiting in a dead-letter queue.",
                labels=["queue"],
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        circuit, depth = self._families()
        with self._lock:
            circuits = list(self.circuits.items())
            queues = list(self.queues.items())
            cached = dict(self.cached_depths)
        for function, read_state in circuits:
            try:
                state = _state_name(read_state())
            except Exception:
                logger.exception("circuit state callback for %r failed", function)
                continue
            states = CIRCUIT_STATES if state in CIRCUIT_STATES else (*CIRCUIT_STATES, state)
            for name in states:
                circuit.add_metric([function, name], 1.0 if name == state else 0.0)
        for queue, read_depth in queues:
            try:
                value = float(read_depth())
            except Exception:
                logger.exception("dead-letter depth callback for %r failed", queue)
                continue
            depth.add_metric([queue], value)
        for queue, value in sorted(cached.items()):
            depth.add_metric([queue], value)
        return (circuit, depth)


def _state_name(state: object) -> str:
    """``CircuitState.HALF_OPEN`` / ``"half-open"`` / ``"HALF_OPEN"`` -> ``"half_open"``."""
    value = getattr(state, "value", state)
    if not isinstance(value, str):
        value = getattr(state, "name", str(state))
    return str(value).strip().lower().replace("-", "_").replace(" ", "_")


def _queue_name(sink: Any) -> str:
    """A dead-letter sink's label: its SQS queue URL, its SQLite file, or its class."""
    for attribute in ("queue_url", "path"):
        value = getattr(sink, attribute, None)
        if value:
            return str(value)
    return type(sink).__name__


class _FunctionSeries:
    """The labelled children of one function, cached so a call costs no label lookups."""

    __slots__ = ("attempts", "duration", "function", "in_flight", "outcomes", "retries", "target")

    def __init__(self, metrics: PrometheusMetrics, function: str, target: object) -> None:
        self.function = function
        self.target = target
        self.in_flight = metrics.in_flight.labels(function)
        self.attempts = metrics.attempts.labels(function, INITIAL)
        self.outcomes: dict[str, Counter] = {}
        self.retries: dict[str, Counter] = {}
        self.duration: dict[str, Histogram] = {}


class PrometheusMetrics:
    """An invocation observer recording Prometheus metrics; pass it to ``observers=[...]``.

    Args:
        registry: where the metrics are registered (default: prometheus_client's global
            ``REGISTRY``). Create one ``PrometheusMetrics`` per registry and share it between
            adapters.
        prefix: the metric name prefix.
        buckets: the duration histogram's upper bounds, in seconds.

    Raises:
        ConfigurationError: when the registry already holds metrics with these names.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        prefix: str = DEFAULT_PREFIX,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.registry = registry
        self.prefix = prefix
        self._gauges = _CallbackGauges(prefix)
        try:
            self.invocations = Counter(
                f"{prefix}_invocations",
                "Finished Lambda invocations by function and outcome (success or the error code).",
                ["function", "outcome"],
                registry=None,
            )
            self.attempts = Counter(
                f"{prefix}_attempts",
                "Network attempts by function and why they were made "
                "(initial, or the error code that caused the retry).",
                ["function", "reason"],
                registry=None,
            )
            self.duration = Histogram(
                f"{prefix}_duration_seconds",
                "Duration of whole invocations (retries and backoff included).",
                ["function", "invocation_type"],
                buckets=tuple(buckets),
                registry=None,
            )
            self.in_flight = Gauge(
                f"{prefix}_in_flight",
                "Invocations in progress.",
                ["function"],
                registry=None,
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Prometheus metric settings: {exc}") from exc
        self._series: dict[str, _FunctionSeries] = {}
        self._by_target: dict[int, _FunctionSeries] = {}
        if registry is not None:
            collectors: tuple[Collector, ...] = (
                self.invocations,
                self.attempts,
                self.duration,
                self.in_flight,
                self._gauges,
            )
            registered: list[Collector] = []
            try:
                for collector in collectors:
                    registry.register(collector)
                    registered.append(collector)
            except ValueError as exc:
                for collector in registered:
                    registry.unregister(collector)
                raise ConfigurationError(
                    f"{exc}: this registry already has WaddleBot Lambda metrics; create one "
                    "PrometheusMetrics per registry and pass it to every adapter, or use "
                    "another prefix"
                ) from exc

    def __repr__(self) -> str:
        return f"<PrometheusMetrics prefix={self.prefix!r} functions={sorted(self._series)!r}>"

    # -- gauges read at scrape time -------------------------------------------------------------

    def track_circuit(self, function: str, state: Callable[[], object]) -> None:
        """Export ``circuit_state`` for ``function`` by calling ``state()`` at each scrape.

        ``state`` returns the breaker's state: a string or an enum such as
        ``CircuitState.OPEN`` (its value or name is used, lower-cased, ``-`` as ``_``).
        """
        with self._gauges._lock:
            self._gauges.circuits[function] = state

    def track_dead_letter(
        self, queue: str, depth: Callable[[], float] | Callable[[], Awaitable[float]]
    ) -> None:
        """Export ``dead_letter_depth{queue}`` from ``depth()``.

        A plain function is called at each scrape. An ``async`` one (such as a sink's
        ``count``) is awaited by :meth:`refresh`, and the scrape reports the value it got
        (nothing until the first refresh): the module server refreshes before each
        ``GET /metrics``.
        """
        with self._gauges._lock:
            if inspect.iscoroutinefunction(depth):
                self._gauges.async_queues[queue] = depth
                self._gauges.queues.pop(queue, None)
            else:
                self._gauges.queues[queue] = depth  # type: ignore[assignment]
                self._gauges.async_queues.pop(queue, None)
                self._gauges.cached_depths.pop(queue, None)

    def untrack(self, name: str) -> None:
        """Stop exporting the circuit state of function ``name`` and the depth of queue ``name``."""
        with self._gauges._lock:
            self._gauges.circuits.pop(name, None)
            self._gauges.queues.pop(name, None)
            self._gauges.async_queues.pop(name, None)
            self._gauges.cached_depths.pop(name, None)
            for key, queue in list(self._gauges.sinks.items()):
                if queue == name:
                    del self._gauges.sinks[key]

    async def refresh(self, timeout: float = 2.0) -> None:
        """Await the ``async`` dead-letter depth callbacks (each within ``timeout`` seconds).

        A callback that fails or times out leaves its queue out of the next scrape (a stale
        depth would mislead) and logs why.
        """
        with self._gauges._lock:
            sources = list(self._gauges.async_queues.items())
        for queue, read_depth in sources:
            try:
                async with asyncio.timeout(timeout):
                    value = float(await read_depth())
            except Exception as exc:
                logger.warning("dead-letter depth of %r is unavailable: %s", queue, exc)
                with self._gauges._lock:
                    self._gauges.cached_depths.pop(queue, None)
                continue
            with self._gauges._lock:
                if queue in self._gauges.async_queues:
                    self._gauges.cached_depths[queue] = value

    def watch(self, adapter: BaseAdapter) -> None:
        """Export ``adapter``'s breaker state and dead-letter depth (when it has them).

        Call it once per adapter; adapters sharing one dead-letter sink report it once.
        The invocation metrics themselves need the adapter to be built with
        ``observers=[metrics]``.
        """
        window = getattr(adapter, "health_window", None)
        read_state = getattr(window, "circuit_state", None)
        target = getattr(adapter, "target", None)
        if read_state is not None and target is not None:
            self.track_circuit(target.display_name, read_state)
        sink = getattr(adapter, "dead_letter", None)
        count = getattr(sink, "count", None)
        if sink is None or count is None:
            return
        with self._gauges._lock:
            if id(sink) in self._gauges.sinks:
                return
            queue = _queue_name(sink)
            self._gauges.sinks[id(sink)] = queue
        self.track_dead_letter(queue, count)

    # -- InvocationObserver ---------------------------------------------------------------------

    def _of(self, invocation: Invocation) -> _FunctionSeries:
        # Keyed by the adapter's FunctionTarget object: no label formatting per call.
        target = invocation.target
        series = self._by_target.get(id(target))
        if series is not None and series.target is target:
            return series
        function = function_label(invocation)
        known = self._series.get(function)
        series = _FunctionSeries(self, function, target)
        if known is not None:  # another adapter for the same function shares its children
            series.outcomes, series.retries, series.duration = (
                known.outcomes,
                known.retries,
                known.duration,
            )
        self._series[function] = series
        self._by_target[id(target)] = series
        return series

    def on_start(self, invocation: Invocation) -> None:
        """One more call in flight."""
        self._of(invocation).in_flight.inc()

    def on_attempt(self, invocation: Invocation) -> None:
        """Count the attempt under the reason it was made for."""
        series = self._of(invocation)
        if invocation.attempts <= 1 or not invocation.retries:
            series.attempts.inc()
            return
        reason = invocation.retries[-1].error_code
        child = series.retries.get(reason)
        if child is None:
            child = series.retries[reason] = self.attempts.labels(series.function, reason)
        child.inc()

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Nothing to count yet: the retried attempt is counted when it starts."""

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Count the outcome, observe the duration, one fewer in flight."""
        series = self._of(invocation)
        series.in_flight.dec()
        outcome = outcome_of(response)
        counter = series.outcomes.get(outcome)
        if counter is None:
            counter = series.outcomes[outcome] = self.invocations.labels(series.function, outcome)
        counter.inc()
        histogram = series.duration.get(invocation.invocation_type)
        if histogram is None:
            histogram = series.duration[invocation.invocation_type] = self.duration.labels(
                series.function, invocation.invocation_type
            )
        histogram.observe(duration)
