"""BaseModule, BaseConfig and HealthStatus behave as WaddleBot's do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from module_sdk import BaseConfig, BaseModule, ExecuteRequest, ExecuteResponse, HealthStatus


class Echo(BaseModule):
    """A tiny module."""

    MODULE_NAME = "echo"
    MODULE_VERSION = "2.0.0"
    REQUIRED_SCOPES = ["chat:read", "chat:write"]

    def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Echo the args."""
        return ExecuteResponse(success=True, message=" ".join(request.args))


def test_base_module() -> None:
    """Scopes are checked as a subset; module info has the three keys."""
    module = Echo()
    assert module.validate_scopes(["chat:read", "chat:write", "extra"])
    assert not module.validate_scopes(["chat:read"])
    assert module.get_module_info() == {
        "name": "echo",
        "version": "2.0.0",
        "required_scopes": ["chat:read", "chat:write"],
    }


def test_base_module_is_abstract() -> None:
    """BaseModule cannot be instantiated without execute."""
    with pytest.raises(TypeError):
        BaseModule()  # type: ignore[abstract]


def test_base_config() -> None:
    """Settings are read, set and merged; log_level is normalized."""
    config = BaseConfig(module_name="weather-2", log_level="debug", settings={"a": 1})
    assert config.log_level == "DEBUG" and config.enabled and not config.debug
    assert config.get_setting("a") == 1
    assert config.get_setting("missing", "dflt") == "dflt"
    config.set_setting("b", 2)
    config.update_settings({"a": 3, "c": 4})
    assert config.settings == {"a": 3, "b": 2, "c": 4}


@pytest.mark.parametrize("name", ["", "bad name", "semi;colon", "ünï"])
def test_base_config_rejects_bad_names(name: str) -> None:
    """module_name must be letters, digits, '_' or '-'."""
    with pytest.raises(ValueError, match="module_name"):
        BaseConfig(module_name=name)


def test_base_config_rejects_bad_log_level() -> None:
    """Unknown log levels are refused."""
    with pytest.raises(ValueError, match="log_level"):
        BaseConfig(module_name="x", log_level="LOUD")


def test_health_state_machine() -> None:
    """Unhealthy at three consecutive failures, healthy again after a success."""
    health = HealthStatus()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    states = []
    for _ in range(3):
        health.record_failure(t)
        states.append(health.is_healthy)
    assert states == [True, True, False]
    assert health.consecutive_failures == 3
    health.record_success(t)
    assert health.get_status()["is_healthy"] is True
    assert health.consecutive_failures == 0
    assert health.total_requests == 4 and health.total_failures == 3
    assert health.error_rate == 0.75


def test_health_status_keys() -> None:
    """get_status has the seed's seven keys with ISO timestamps carrying an offset."""
    health = HealthStatus()
    health.record_success(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    status = health.get_status()
    assert list(status) == [
        "is_healthy",
        "last_success",
        "last_failure",
        "consecutive_failures",
        "total_requests",
        "total_failures",
        "error_rate",
    ]
    assert status["last_success"] == "2026-01-01T12:00:00+00:00"
    assert status["last_failure"] is None
