"""LambdaAdapter configuration: validation, secrets, module info, no I/O in the constructor."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from module_sdk import ConfigurationError, LambdaAdapter

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN"


def make(**kwargs: Any) -> LambdaAdapter:
    """An adapter with defaults for the three required arguments."""
    params: dict[str, Any] = {
        "function_identifier": "dice",
        "region": "us-east-1",
        "module_name": "dice",
    }
    params.update(kwargs)
    return LambdaAdapter(**params)


def test_original_positional_order() -> None:
    """The original constructor's positional order still works."""
    adapter = LambdaAdapter(
        "dice", "us-east-1", "dice", "waddlebot-", "Event", 2, 0.1, 5.0, 1.0, 2.0
    )
    assert adapter.function_name == "waddlebot-dice"
    assert adapter.invocation_type == "Event"
    assert (adapter.max_retries, adapter.initial_retry_delay, adapter.max_retry_delay) == (
        2,
        0.1,
        5.0,
    )
    assert (adapter.connect_timeout, adapter.read_timeout) == (1.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"function_identifier": ""}, "function_identifier=''"),
        ({"region": ""}, "region=''"),
        ({"module_name": "bad name"}, "module_name='bad name'"),
        (
            {"invocation_type": "Async"},
            "invocation_type='Async' is invalid: use one of RequestResponse, Event, DryRun",
        ),
        ({"max_retries": -1}, "max_retries=-1"),
        ({"max_retries": True}, "max_retries=True"),
        ({"max_retries": 1.5}, "max_retries=1.5"),
        ({"initial_retry_delay": 0}, "initial_retry_delay=0"),
        ({"max_retry_delay": -2}, "max_retry_delay=-2"),
        ({"connect_timeout": 0}, "connect_timeout=0"),
        ({"read_timeout": float("inf")}, "read_timeout=inf"),
        ({"read_timeout": "30"}, "read_timeout='30'"),
        ({"total_timeout": 0}, "total_timeout=0"),
        ({"log_type": "All"}, "log_type='All'"),
        ({"max_connections": 0}, "max_connections=0"),
        ({"endpoint_url": "localhost:3001"}, "endpoint_url='localhost:3001'"),
        ({"qualifier": "bad qualifier"}, "qualifier='bad qualifier'"),
        ({"module_version": ""}, "module_version=''"),
        ({"required_scopes": "chat:read"}, "required_scopes='chat:read'"),
        ({"aws_access_key_id": "AKIA123"}, "must be given together"),
        ({"aws_session_token": TOKEN}, "aws_session_token needs"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_validation(kwargs: dict[str, Any], fragment: str) -> None:
    """Each bad setting raises ValueError naming the parameter and the allowed values."""
    with pytest.raises(ValueError, match=r"invalid|together|needs") as info:
        make(**kwargs)
    assert fragment in str(info.value)


def test_validation_error_type() -> None:
    """Configuration errors are ConfigurationError, a ValueError."""
    with pytest.raises(ConfigurationError):
        make(invocation_type="Nope")


def test_secrets_never_in_repr_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Credentials stay out of repr, module info, logs and validation errors."""
    with caplog.at_level(logging.DEBUG):
        adapter = make(
            aws_access_key_id="AKIAEXAMPLEKEYID0000",
            aws_secret_access_key=SECRET,
            aws_session_token=TOKEN,
        )
        with pytest.raises(ValueError, match="together") as info:
            make(aws_secret_access_key=SECRET)
    texts = [repr(adapter), str(adapter.get_module_info()), caplog.text, str(info.value)]
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text
    assert "function='dice'" in repr(adapter)


def test_arn_region_wins_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A full ARN's region is where calls go; a differing region= is warned about."""
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:dice"
    with caplog.at_level(logging.WARNING):
        adapter = make(function_identifier=arn, region="us-east-1", function_prefix="waddlebot-")
    assert adapter.invoke_region == "eu-west-1"
    assert adapter.function_name == arn
    assert "eu-west-1" in caplog.text


def test_constructor_makes_no_network_call() -> None:
    """Building an adapter opens no client (clients are created lazily)."""
    from module_sdk.aws_lambda.clients import ClientPool

    pool = ClientPool()
    for i in range(50):
        LambdaAdapter(f"fn-{i}", "us-east-1", "m", endpoint_url="http://127.0.0.1:9", pool=pool)
    assert pool.open_clients() == 0


def test_module_info() -> None:
    """get_module_info has WaddleBot's keys plus the Lambda settings and health."""
    adapter = make(
        function_prefix="waddlebot-",
        qualifier="prod",
        required_scopes=["chat:write"],
        module_version="1.2.3",
    )
    info = adapter.get_module_info()
    assert info["name"] == "dice"
    assert info["version"] == "1.2.3"
    assert info["required_scopes"] == ["chat:write"]
    assert info["type"] == "lambda_adapter"
    assert info["function_name"] == "waddlebot-dice"
    assert info["qualifier"] == "prod"
    assert info["region"] == "us-east-1"
    assert info["invocation_type"] == "RequestResponse"
    assert info["max_retries"] == 3
    assert info["read_timeout"] == 30.0
    assert info["health"]["is_healthy"] is True
    assert adapter.validate_scopes(["chat:write", "x"])
    assert not adapter.validate_scopes([])
