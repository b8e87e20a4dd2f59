"""Observability: health, Prometheus metrics, OpenTelemetry traces and CloudWatch EMF.

Everything here is an :class:`~module_sdk.resilience.pipeline.InvocationObserver`, passed to
``LambdaAdapter(observers=[...])``:

- :class:`~module_sdk.observability.health.HealthWindow`: always on (every adapter has one);
  its keys appear in ``adapter.get_health_status()``.
- :class:`~module_sdk.observability.prometheus.PrometheusMetrics` and
  :func:`~module_sdk.observability.prometheus.render_metrics`: the ``prometheus`` extra.
- :class:`~module_sdk.observability.tracing.TracingObserver`: the ``otel`` extra.
- :class:`~module_sdk.observability.emf.EmfObserver`: no extra needed.

Importing this package imports neither prometheus-client nor OpenTelemetry: the names from
the optional modules are loaded on first use, so an adapter that does not use them pays
nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from module_sdk.observability._common import outcome_of
from module_sdk.observability.emf import EmfObserver
from module_sdk.observability.health import HealthWindow

if TYPE_CHECKING:
    from module_sdk.observability.prometheus import (
        PrometheusMetrics,
        render_metrics,
        server_metrics,
    )
    from module_sdk.observability.tracing import TracingObserver

__all__ = [
    "EmfObserver",
    "HealthWindow",
    "PrometheusMetrics",
    "TracingObserver",
    "outcome_of",
    "render_metrics",
    "server_metrics",
]

_LAZY = {
    "PrometheusMetrics": ("module_sdk.observability.prometheus", "prometheus"),
    "render_metrics": ("module_sdk.observability.prometheus", "prometheus"),
    "server_metrics": ("module_sdk.observability.prometheus", "prometheus"),
    "TracingObserver": ("module_sdk.observability.tracing", "otel"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, extra = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"{name} needs the {extra!r} extra: pip install 'waddlebot-module-sdk[{extra}]' ({exc})"
        ) from exc
    return getattr(module, name)
