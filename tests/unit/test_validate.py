"""The one set of setting checks, and the settings objects built on it."""

from __future__ import annotations

import math

import pytest

from module_sdk import ConfigurationError
from module_sdk._validate import boolean, integer, number, optional_text
from module_sdk.adapters.health import HealthWindow
from module_sdk.adapters.settings import LambdaSettings
from module_sdk.testing import FakeClock


@pytest.mark.parametrize("bad", [True, False, math.inf, -math.inf, math.nan, "1", None, 0, -1])
def test_number_refuses_bools_non_finite_and_out_of_range(bad: object) -> None:
    """A number is a finite int or float, never a bool, above the minimum."""
    with pytest.raises(ConfigurationError, match=r"^x=.* is invalid: use a finite number > 0$"):
        number("x", bad)


def test_number_bounds_and_messages() -> None:
    """Inclusive and two-sided bounds, the owner in the message, floats out."""
    assert number("x", 3) == 3.0 and isinstance(number("x", 3), float)
    assert number("x", 0, strict_minimum=False) == 0.0
    with pytest.raises(ConfigurationError, match=r"Limit\(burst=0\.5\) is invalid: use a finite "):
        number("burst", 0.5, owner="Limit", minimum=1, strict_minimum=False)
    with pytest.raises(ConfigurationError, match="use seconds from 0 to 3600"):
        number("t", 3601, strict_minimum=False, maximum=3600, unit="seconds")


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (0, False), (True, False), (1.0, False), ("1", False)]
)
def test_integer(value: object, ok: bool) -> None:
    """An integer is an int that is not a bool, within its bounds."""
    if ok:
        assert integer("n", value) == value
    else:
        with pytest.raises(ConfigurationError, match=r"n=.* is invalid: use an integer >= 1"):
            integer("n", value)
    with pytest.raises(ConfigurationError, match="use an integer from 0 to 100"):
        integer("n", 101, minimum=0, maximum=100)


def test_optional_text_never_shows_the_value() -> None:
    """A bad credential is named, never echoed."""
    assert optional_text("key", None) is None and optional_text("key", "k") == "k"
    with pytest.raises(ConfigurationError) as info:
        optional_text("aws_secret_access_key", b"s3cr3t")
    assert "s3cr3t" not in str(info.value)
    assert "aws_secret_access_key is invalid" in str(info.value)


@pytest.mark.parametrize("bad", [True, math.inf, 0])
def test_health_window_max_age_is_a_finite_number(bad: object) -> None:
    """max_age=True or inf is refused (it was accepted before)."""
    with pytest.raises(ConfigurationError, match="max_age="):
        HealthWindow(FakeClock(), max_age=bad)  # type: ignore[arg-type]


def test_lambda_settings_are_frozen_normalized_and_keep_credentials_out_of_repr() -> None:
    """Numbers become floats; the settings cannot change; secrets stay out of repr()."""
    settings = LambdaSettings(
        read_timeout=5,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="very-secret",
    )
    assert settings.read_timeout == 5.0 and isinstance(settings.read_timeout, float)
    assert "very-secret" not in repr(settings) and "AKIDEXAMPLE" not in repr(settings)
    with pytest.raises(AttributeError):
        settings.read_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match="invocation_type='Async' is invalid"):
        LambdaSettings(invocation_type="Async")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, 1, "true", None])
def test_a_boolean_is_true_or_false(bad: object) -> None:
    """A yes/no setting is a bool: no truthy stand-ins, in the settings object too."""
    assert boolean("flag", False) is False
    with pytest.raises(ConfigurationError, match=r"^flag=.* is invalid: use True or False$"):
        boolean("flag", bad)
    with pytest.raises(ConfigurationError, match=r"^retry_on_timeout=.* is invalid"):
        LambdaSettings(retry_on_timeout=bad)  # type: ignore[arg-type]
