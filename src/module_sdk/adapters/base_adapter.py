"""BaseAdapter: a module whose work is done elsewhere (Lambda, a webhook, ...)."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from types import TracebackType
from typing import Any, Self

from module_sdk._health import HealthStatus
from module_sdk._models import ExecuteRequest, ExecuteResponse
from module_sdk._module import BaseModule, check_module_name
from module_sdk.errors import ConfigurationError

__all__ = ["BaseAdapter", "HealthStatus"]


class BaseAdapter(BaseModule):
    """A module that forwards requests to an external executor and tracks its health.

    Use it as an async context manager (or call :meth:`aclose`) to release its connections.
    """

    def __init__(
        self,
        module_name: str,
        module_version: str = "1.0.0",
        required_scopes: list[str] | None = None,
    ) -> None:
        self.module_name = check_module_name(module_name)
        if not isinstance(module_version, str) or not module_version:
            raise ConfigurationError(
                f"module_version={module_version!r} is invalid: use a non-empty string"
            )
        if required_scopes is not None and (
            not isinstance(required_scopes, list | tuple)
            or not all(isinstance(s, str) for s in required_scopes)
        ):
            raise ConfigurationError(
                f"required_scopes={required_scopes!r} is invalid: use a list of strings"
            )
        self.module_version = module_version
        self.required_scopes: list[str] = list(required_scopes or [])
        self.health = HealthStatus()

    def _required_scopes(self) -> list[str]:
        return list(self.required_scopes)

    def get_module_info(self) -> dict[str, Any]:
        """Name, version and required scopes of this adapter's module."""
        return {
            "name": self.module_name,
            "version": self.module_version,
            "required_scopes": self._required_scopes(),
        }

    @abstractmethod
    async def execute_async(self, request: ExecuteRequest) -> ExecuteResponse:
        """Handle one request. Never raises for a failure of the executor."""

    def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Synchronous :meth:`execute_async`, for synchronous code only.

        Raises:
            RuntimeError: when called from a running event loop (use ``await
                adapter.execute_async(request)`` there instead).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                f"{type(self).__name__}.execute() cannot run inside a running event loop: "
                "use `await adapter.execute_async(request)` instead"
            )
        return asyncio.run(self._execute_then_close(request))

    async def _execute_then_close(self, request: ExecuteRequest) -> ExecuteResponse:
        try:
            return await self.execute_async(request)
        finally:
            await self.aclose()  # connections belong to this short-lived loop

    def is_healthy(self) -> bool:
        """True until three consecutive failures (see :class:`HealthStatus`)."""
        return self.health.is_healthy

    def get_health_status(self) -> dict[str, Any]:
        """The health keys (``is_healthy``, counters, ISO timestamps, ``error_rate``)."""
        return self.health.get_status()

    async def aclose(self) -> None:
        """Release connections and other resources held on the running loop."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
