"""A local runtime speaking the AWS Lambda Invoke API, for development, tests and demos.

Handlers run in warm worker processes (one call at a time each, reused between calls), so a
handler that hangs, crashes or leaks cannot take the runtime down. See ``docs/local-runtime.md``.
"""

from module_sdk.local._config import FunctionConfigError, FunctionSpec, load_functions
from module_sdk.local._faults import FaultDecision, FaultPlan, Faults
from module_sdk.local._reload import ReloadReport
from module_sdk.local._runtime import LocalLambdaRuntime
from module_sdk.local._stats import InvocationRecord, RuntimeStats

__all__ = [
    "FaultDecision",
    "FaultPlan",
    "Faults",
    "FunctionConfigError",
    "FunctionSpec",
    "InvocationRecord",
    "LocalLambdaRuntime",
    "ReloadReport",
    "RuntimeStats",
    "load_functions",
]
