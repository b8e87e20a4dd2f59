"""Facts of the Lambda Invoke API that the SDK relies on, in one place (pure).

The adapter, the payload encoder, the handler kit and the local runtime read them from here.
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from module_sdk.errors import ConfigurationError

__all__ = [
    "EVENT_PAYLOAD_LIMIT",
    "FUNCTION_RE",
    "INVOCATION_TYPES",
    "LOG_TYPES",
    "MAX_IDENTIFIER",
    "MAX_NAME",
    "MAX_QUALIFIER",
    "OPTIONAL_INVOKE_FIELDS",
    "QUALIFIER_RE",
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

FUNCTION_RE: Final = re.compile(
    r"(?P<arn>arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:)?"
    r"(?:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso(?:[a-z]?)))?-[a-z]+-\d{1}):)?"
    r"(?:(?P<account>\d{12}):)?"
    r"(?P<function>function:)?"
    r"(?P<name>[a-zA-Z0-9\-_\.]+)"
    r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9\-_]+))?"
)
"""The Invoke API's FunctionName pattern (botocore's Lambda model), with named groups; use
``fullmatch``."""
QUALIFIER_RE: Final = re.compile(r"\$(?:LATEST(?:\.PUBLISHED)?)|[a-zA-Z0-9\-_$]+")
"""The Qualifier pattern; use ``fullmatch``."""
MAX_IDENTIFIER: Final = 256
"""The longest FunctionName (a full ARN with its qualifier)."""
MAX_NAME: Final = 64
"""The longest function name."""
MAX_QUALIFIER: Final = 128
"""The longest qualifier (version or alias)."""

SYNC_PAYLOAD_LIMIT: Final = 6 * 1024 * 1024
"""The request payload limit of RequestResponse (and DryRun) calls, in bytes."""
EVENT_PAYLOAD_LIMIT: Final = 1024 * 1024
"""The request payload limit of Event (asynchronous) calls, in bytes."""
RESPONSE_LIMIT: Final = 6 * 1024 * 1024
"""The largest reply of a synchronous call, in bytes."""


OPTIONAL_INVOKE_FIELDS: Final = (
    ("client_context", "ClientContext", "X-Amz-Client-Context"),
    ("durable_execution_name", "DurableExecutionName", "X-Amz-Durable-Execution-Name"),
    ("tenant_id", "TenantId", "X-Amz-Tenant-Id"),
)
"""Invoke's optional inputs sent only when set: the call's field, botocore's parameter and
the HTTP header it becomes."""


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
