"""WaddleBot Module SDK: run WaddleBot chat-bot modules on AWS Lambda.

The public API is what ``__all__`` lists; everything else is private or lives in a
documented submodule (``module_sdk.adapters``, ``module_sdk.errors``, ``module_sdk.testing``).
"""

from module_sdk._health import HealthStatus
from module_sdk._models import ExecuteRequest, ExecuteResponse
from module_sdk._module import BaseConfig, BaseModule
from module_sdk.adapters import BaseAdapter, LambdaAdapter
from module_sdk.errors import (
    ConfigurationError,
    ErrorCode,
    InvocationError,
    ModuleSDKError,
    PayloadTooLargeError,
    PolicyRejection,
    RequestError,
)

__version__ = "0.1.0"

__all__ = [
    "BaseAdapter",
    "BaseConfig",
    "BaseModule",
    "ConfigurationError",
    "ErrorCode",
    "ExecuteRequest",
    "ExecuteResponse",
    "HealthStatus",
    "InvocationError",
    "LambdaAdapter",
    "ModuleSDKError",
    "PayloadTooLargeError",
    "PolicyRejection",
    "RequestError",
    "__version__",
]
