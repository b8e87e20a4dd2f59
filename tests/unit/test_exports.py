"""The public names and WaddleBot import paths keep working."""

from __future__ import annotations

import module_sdk


def test_waddlebot_import_paths() -> None:
    """Every WaddleBot import path resolves to the same classes."""
    from module_sdk import BaseConfig, BaseModule, ExecuteRequest, ExecuteResponse, HealthStatus
    from module_sdk.adapters import BaseAdapter, LambdaAdapter
    from module_sdk.adapters.base_adapter import BaseAdapter as BaseAdapter2
    from module_sdk.adapters.base_adapter import HealthStatus as HealthStatus2
    from module_sdk.adapters.lambda_adapter import LambdaAdapter as LambdaAdapter2

    assert BaseAdapter is BaseAdapter2
    assert LambdaAdapter is LambdaAdapter2
    assert HealthStatus is HealthStatus2
    assert issubclass(LambdaAdapter, BaseAdapter)
    assert issubclass(BaseAdapter, BaseModule)
    assert {BaseConfig, ExecuteRequest, ExecuteResponse} <= {
        getattr(module_sdk, n) for n in module_sdk.__all__
    }


def test_all_is_exact() -> None:
    """__all__ lists exactly the public names the package defines."""
    public = {name for name in dir(module_sdk) if not name.startswith("_")}
    public -= {
        "adapters",
        "aws_lambda",
        "errors",
        "resilience",
        "testing",
        "cli",
        "local",
        "server",
        "observability",
        "handler",
        "outcomes",
        "pytest_plugin",
    }
    assert public == set(module_sdk.__all__) - {"__version__"}


def test_execute_response_fields() -> None:
    """ExecuteResponse keeps WaddleBot's five fields, in order, then error_code and
    diagnostics (which takes no part in equality)."""
    from dataclasses import fields

    names = [f.name for f in fields(module_sdk.ExecuteResponse)]
    assert names == ["success", "message", "data", "error", "targets", "error_code", "diagnostics"]
    response = module_sdk.ExecuteResponse(success=True)
    assert response.targets == [] and response.error_code is None
    assert response.diagnostics is None
    assert response == module_sdk.ExecuteResponse(True, diagnostics=module_sdk.Diagnostics(2))


def test_error_codes_are_stable_strings() -> None:
    """Error codes compare equal to their documented string values."""
    from module_sdk.errors import ErrorCode

    assert str(ErrorCode.THROTTLED) == "throttled"
    assert ErrorCode("throttled") is ErrorCode.THROTTLED
    expected = {
        "throttled",
        "timeout",
        "connection",
        "service_error",
        "function_error",
        "invalid_response",
        "not_found",
        "access_denied",
        "invalid_request",
        "payload_too_large",
        "configuration",
    }
    assert expected <= {code.value for code in ErrorCode}


def test_one_exception_tree() -> None:
    """Every SDK exception is in errors.py's tree; the old import paths name the same classes."""
    from module_sdk import errors
    from module_sdk.local import FunctionConfigError
    from module_sdk.resilience.deadletter import DeadLetterError
    from module_sdk.server.config import ServerConfigError

    parents = {
        name: [base.__name__ for base in getattr(errors, name).__bases__]
        for name in errors.__all__
        if name != "ErrorCode"
    }
    assert parents == {
        "ModuleSDKError": ["Exception"],
        "ConfigurationError": ["ModuleSDKError", "ValueError"],
        "ServerConfigError": ["ConfigurationError"],
        "FunctionConfigError": ["ConfigurationError"],
        "RequestError": ["ModuleSDKError", "ValueError"],
        "PayloadTooLargeError": ["RequestError"],
        "InvocationError": ["ModuleSDKError"],
        "PolicyRejection": ["ModuleSDKError"],
        "DeadLetterError": ["ModuleSDKError"],
    }
    assert (ServerConfigError, FunctionConfigError, DeadLetterError) == (
        errors.ServerConfigError,
        errors.FunctionConfigError,
        errors.DeadLetterError,
    )


def test_every_diagnostic_is_recorded_on_the_invocation() -> None:
    """The adapter copies each Diagnostics field from the Invocation attribute of that name,
    with the same default, so a new diagnostic needs both and cannot be half added."""
    from dataclasses import fields

    from module_sdk.resilience.pipeline import Invocation

    recorded = {f.name: f.default for f in fields(Invocation)}
    for diagnostic in fields(module_sdk.Diagnostics):
        assert diagnostic.name in recorded, diagnostic.name
        assert recorded[diagnostic.name] == diagnostic.default, diagnostic.name
