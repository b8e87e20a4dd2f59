"""Small pure helpers shared by the observers: bounded labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from module_sdk.errors import ErrorCode

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.resilience.pipeline import Invocation

__all__ = [
    "CANCELLED",
    "OTHER",
    "SUCCESS",
    "function_label",
    "invoked_name",
    "outcome_of",
]

SUCCESS = "success"
"""The outcome label of a successful call."""
CANCELLED = ErrorCode.CANCELLED.value
"""The outcome label of a call whose task was cancelled."""
OTHER = "other"
"""The outcome label of an error code the SDK does not know (keeps label sets bounded)."""

_KNOWN_CODES = frozenset(code.value for code in ErrorCode)


def outcome_of(response: ExecuteResponse) -> str:
    """``success``, an :class:`~module_sdk.errors.ErrorCode` value, ``cancelled`` or ``other``.

    A bounded set whatever a subclass's ``_parse_lambda_response`` puts in ``error_code``.
    """
    if response.success:
        return SUCCESS
    code = response.error_code
    return code if code in _KNOWN_CODES else OTHER


def function_label(invocation: Invocation) -> str:
    """The function as metrics name it: ``name[:qualifier]`` (or the ARN), one per adapter."""
    return invocation.target.display_name


def invoked_name(invocation: Invocation) -> str:
    """The bare function name (the last part of an ARN), as ``faas.invoked_name`` wants it."""
    return invocation.target.function_name.rsplit(":", 1)[-1]
