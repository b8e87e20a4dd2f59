"""The optional exporters cost nothing when unused: their libraries are not even imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

import module_sdk.observability as observability

PROBE = """
import sys
from module_sdk import ExecuteRequest
from module_sdk.adapters import LambdaAdapter
from module_sdk.server import ModuleServer
import module_sdk.observability
from module_sdk.observability import EmfObserver, HealthWindow
from module_sdk.testing import HandlerInvoker
import asyncio
adapter = LambdaAdapter("dice", "us-east-1", "dice",
                        invoker=HandlerInvoker(lambda e, c: {"success": True}))
request = ExecuteRequest("!roll", [], "u", "e", "c", "s", "twitch")
assert asyncio.run(adapter.execute_async(request)).success
loaded = sorted(m for m in sys.modules if m.startswith(("prometheus_client", "opentelemetry")))
print(",".join(loaded))
"""


def test_unused_exporters_import_nothing() -> None:
    """An adapter call with no exporter loads neither prometheus_client nor opentelemetry."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("name", ["PrometheusMetrics", "render_metrics", "TracingObserver"])
def test_lazy_names_resolve(name: str) -> None:
    """The optional names load on first use from module_sdk.observability."""
    assert callable(getattr(observability, name))


def test_unknown_names_raise_attribute_error() -> None:
    """A name that does not exist is an AttributeError, not an import attempt."""
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = observability.Nope


def test_all_is_exact() -> None:
    """``__all__`` lists exactly the public names, each resolving to something."""
    # name.isidentifier(): pytest rewrites the asserts of packages that ship a pytest plugin
    # (this one does) and leaves @py_builtins and @pytest_ar in their namespaces.
    public = {n for n in dir(observability) if not n.startswith("_") and n.isidentifier()}
    public -= {"annotations", "importlib", "Any", "TYPE_CHECKING"}
    public -= {"emf", "health", "prometheus", "tracing"}  # the submodules
    assert public | set(observability._LAZY) == set(observability.__all__)
    assert all(getattr(observability, name) is not None for name in observability.__all__)
