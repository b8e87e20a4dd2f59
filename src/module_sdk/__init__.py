"""WaddleBot Module SDK: run WaddleBot chat-bot modules on AWS Lambda.

The public API is what ``__all__`` lists; everything else is private or lives in a
documented submodule (``module_sdk.adapters``, ``module_sdk.errors``, ``module_sdk.handler``,
``module_sdk.testing``).

Importing this package loads the standard library only: the adapters (and with them
aiobotocore, botocore and aiohttp) are imported on first use of ``BaseAdapter`` or
``LambdaAdapter``, so ``import module_sdk.handler`` inside a Lambda function stays small.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from module_sdk._health import HealthStatus
from module_sdk._models import Diagnostics, ExecuteRequest, ExecuteResponse
from module_sdk._module import BaseConfig, BaseModule
from module_sdk.errors import (
    ConfigurationError,
    ErrorCode,
    InvocationError,
    ModuleSDKError,
    PayloadTooLargeError,
    PolicyRejection,
    RequestError,
)

if TYPE_CHECKING:
    from module_sdk.adapters import BaseAdapter, LambdaAdapter

__version__ = "0.1.0"

__all__ = [
    "BaseAdapter",
    "BaseConfig",
    "BaseModule",
    "ConfigurationError",
    "Diagnostics",
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

_LAZY = {"BaseAdapter": "module_sdk.adapters", "LambdaAdapter": "module_sdk.adapters"}


def __getattr__(name: str) -> Any:
    """Load the adapters (and the AWS client libraries) on first use (PEP 562)."""
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The public names and the submodules loaded so far (not the helpers imported here)."""
    loaded = {
        name
        for name, value in globals().items()
        if isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}"
    }
    return sorted(set(__all__) | loaded)
