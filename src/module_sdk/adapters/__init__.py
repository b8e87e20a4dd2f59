"""Adapters: modules whose work is done by an external executor."""

from module_sdk.adapters.base_adapter import BaseAdapter, HealthStatus
from module_sdk.adapters.lambda_adapter import LambdaAdapter

__all__ = ["BaseAdapter", "HealthStatus", "LambdaAdapter"]
