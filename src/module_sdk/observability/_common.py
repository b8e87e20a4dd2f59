"""Small pure helpers shared by the observers: bounded labels and per-attempt bookkeeping."""

from __future__ import annotations

from typing import TYPE_CHECKING

from module_sdk.errors import ErrorCode

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.errors import InvocationError
    from module_sdk.resilience.pipeline import Invocation

__all__ = [
    "CANCELLED",
    "OTHER",
    "SUCCESS",
    "function_label",
    "invoked_name",
    "note_retry",
    "outcome_of",
    "unretried_error",
]

SUCCESS = "success"
"""The outcome label of a successful call."""
CANCELLED = "cancelled"
"""The outcome label of a call whose task was cancelled."""
OTHER = "other"
"""The outcome label of an error code the SDK does not know (keeps label sets bounded)."""

_KNOWN_CODES = frozenset(code.value for code in ErrorCode) | {CANCELLED}
_RETRIED_KEY = "module_sdk.observability.retried_error"


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


def note_retry(invocation: Invocation, error: InvocationError) -> None:
    """Remember that ``error`` was retried (call from ``on_retry``)."""
    invocation.extras[_RETRIED_KEY] = error


def unretried_error(invocation: Invocation) -> InvocationError | None:
    """The error of the final attempt when it was not retried, else None (for ``on_finish``).

    Failed attempts that were retried are reported through ``on_retry``; this returns the one
    that ended the call (retries exhausted, retry budget empty, deadline too close), so every
    failed attempt is seen exactly once. An error already retried is never returned again,
    even when a later attempt was cut short by the deadline.
    """
    error = invocation.last_error
    if error is None or invocation.extras.get(_RETRIED_KEY) is error:
        return None
    return error
