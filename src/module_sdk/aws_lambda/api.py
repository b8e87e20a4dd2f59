"""Facts of the Lambda Invoke API that the SDK relies on, in one place (pure).

The adapter, the payload encoder, the handler kit and the local runtime read them from here.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from module_sdk.errors import ConfigurationError

__all__ = [
    "EVENT_PAYLOAD_LIMIT",
    "INVOCATION_TYPES",
    "LOG_TYPES",
    "RESPONSE_LIMIT",
    "SYNC_PAYLOAD_LIMIT",
    "InvocationType",
    "LogType",
    "invocation_type",
    "payload_limit",
]

InvocationType = Literal["RequestResponse", "Event", "DryRun"]
"""``X-Amz-Invocation-Type``: wait for the answer, queue the event, or only check access."""
INVOCATION_TYPES: Final[tuple[InvocationType, ...]] = get_args(InvocationType)

LogType = Literal["None", "Tail"]
"""``X-Amz-Log-Type``: ``Tail`` returns the last 4 KB of the function's log."""
LOG_TYPES: Final[tuple[LogType, ...]] = get_args(LogType)

SYNC_PAYLOAD_LIMIT: Final = 6 * 1024 * 1024
"""The request payload limit of RequestResponse (and DryRun) calls, in bytes."""
EVENT_PAYLOAD_LIMIT: Final = 1024 * 1024
"""The request payload limit of Event (asynchronous) calls, in bytes."""
RESPONSE_LIMIT: Final = 6 * 1024 * 1024
"""The largest reply of a synchronous call, in bytes."""


def invocation_type(value: object) -> InvocationType:
    """``value`` if it is an invocation type.

    Raises:
        ConfigurationError: it is not; the message lists the three.
    """
    for known in INVOCATION_TYPES:
        if value == known:
            return known
    raise ConfigurationError(
        f"invocation_type={value!r} is invalid: use one of " + ", ".join(INVOCATION_TYPES)
    )


def payload_limit(invocation_type: str) -> int:
    """The request payload limit in bytes for an invocation type."""
    return EVENT_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
