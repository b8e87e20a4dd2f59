"""Checks for settings: numbers, integers and text, each refused with a ConfigurationError
that names the setting, the bad value and what is allowed (pure).

``owner`` names the class a setting belongs to (``RateLimit(max_wait=-1) is invalid``); without
it the setting is a parameter of the adapter (``max_wait=-1 is invalid``). A bool is never a
number here (``True`` is an ``int`` to Python), and a number must be finite.
"""

from __future__ import annotations

import math

from module_sdk.errors import ConfigurationError

__all__ = ["boolean", "integer", "number", "optional_text", "setting"]


def setting(name: str, value: object, owner: str | None = None) -> str:
    """``name=value`` (or ``Owner(name=value)``), as error messages show a setting."""
    text = f"{name}={value!r}"
    return text if owner is None else f"{owner}({text})"


def _bounds(
    minimum: float | None, maximum: float | None, *, strict_minimum: bool, unit: str
) -> str:
    if minimum is not None and maximum is not None:
        if strict_minimum:
            return f"{unit} > {minimum:g} and <= {maximum:g}"
        return f"{unit} from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"{unit} {'>' if strict_minimum else '>='} {minimum:g}"
    if maximum is not None:
        return f"{unit} <= {maximum:g}"
    return unit


def number(
    name: str,
    value: object,
    *,
    owner: str | None = None,
    minimum: float | None = 0.0,
    strict_minimum: bool = True,
    maximum: float | None = None,
    unit: str = "a finite number",
) -> float:
    """``value`` as a float: a finite int or float (not a bool) within the bounds.

    The defaults ask for a number > 0; ``strict_minimum=False`` allows the minimum itself.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        given = float(value)  # type: ignore[arg-type]
        low_ok = minimum is None or (given > minimum if strict_minimum else given >= minimum)
        if low_ok and (maximum is None or given <= maximum):
            return given
    raise ConfigurationError(
        f"{setting(name, value, owner)} is invalid: use "
        + _bounds(minimum, maximum, strict_minimum=strict_minimum, unit=unit)
    )


def integer(
    name: str,
    value: object,
    *,
    owner: str | None = None,
    minimum: int | None = 1,
    maximum: int | None = None,
) -> int:
    """``value`` as an int (not a bool) from ``minimum`` to ``maximum``."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    ):
        return value
    if minimum is not None and maximum is not None:
        allowed = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        allowed = f"an integer >= {minimum}"
    elif maximum is not None:
        allowed = f"an integer <= {maximum}"
    else:
        allowed = "an integer"
    raise ConfigurationError(f"{setting(name, value, owner)} is invalid: use {allowed}")


def optional_text(name: str, value: object, *, owner: str | None = None) -> str | None:
    """``value`` if it is a non-empty string, None if it is None."""
    if value is None or (isinstance(value, str) and value):
        return value
    where = name if owner is None else f"{owner}({name}=...)"
    # The value is not shown: it may be a credential.
    raise ConfigurationError(f"{where} is invalid: use a non-empty string or None")


def boolean(name: str, value: object, *, owner: str | None = None) -> bool:
    """``value`` if it is True or False (not 0, 1 or a string)."""
    if isinstance(value, bool):
        return value
    raise ConfigurationError(f"{setting(name, value, owner)} is invalid: use True or False")
