"""BaseModule and BaseConfig: WaddleBot's module contract."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from module_sdk._models import ExecuteRequest, ExecuteResponse

__all__ = ["MODULE_NAME_PATTERN", "BaseConfig", "BaseModule"]

MODULE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_module_name(value: object, parameter: str = "module_name") -> str:
    """Return ``value`` if it is a valid module name, else raise ValueError naming it."""
    from module_sdk.errors import ConfigurationError

    if not isinstance(value, str) or not MODULE_NAME_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{parameter}={value!r} is invalid: use one or more letters, digits, '_' or '-'"
        )
    return value


class BaseModule(ABC):
    """A WaddleBot module: a name, a version, the scopes it needs and an ``execute`` method."""

    MODULE_NAME: ClassVar[str] = "base_module"
    MODULE_VERSION: ClassVar[str] = "1.0.0"
    REQUIRED_SCOPES: ClassVar[list[str]] = []

    @abstractmethod
    def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Handle one request synchronously."""

    def validate_scopes(self, granted: Iterable[str]) -> bool:
        """True when every required scope is among ``granted``."""
        return set(self._required_scopes()).issubset(set(granted))

    def _required_scopes(self) -> list[str]:
        return list(self.REQUIRED_SCOPES)

    def get_module_info(self) -> dict[str, Any]:
        """Name, version and required scopes of this module."""
        return {
            "name": self.MODULE_NAME,
            "version": self.MODULE_VERSION,
            "required_scopes": self._required_scopes(),
        }


@dataclass
class BaseConfig:
    """Common module settings (WaddleBot's ``BaseConfig``), validated on creation."""

    module_name: str
    enabled: bool = True
    debug: bool = False
    log_level: str = "INFO"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from module_sdk.errors import ConfigurationError

        check_module_name(self.module_name)
        if not isinstance(self.log_level, str) or self.log_level.upper() not in _LOG_LEVELS:
            raise ConfigurationError(
                f"log_level={self.log_level!r} is invalid: use one of {', '.join(_LOG_LEVELS)}"
            )
        self.log_level = self.log_level.upper()

    def get_setting(self, key: str, default: Any = None) -> Any:
        """Return one setting, or ``default`` when it is not set."""
        return self.settings.get(key, default)

    def set_setting(self, key: str, value: Any) -> None:
        """Set one setting."""
        self.settings[key] = value

    def update_settings(self, settings: Mapping[str, Any]) -> None:
        """Merge several settings."""
        self.settings.update(settings)
