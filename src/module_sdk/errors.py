"""One exception tree for the whole SDK, and the stable error-code vocabulary.

::

    ModuleSDKError
     ├── ConfigurationError (also ValueError)   a bad adapter / policy / sink setting
     │    ├── ServerConfigError                  the module server's configuration file
     │    └── FunctionConfigError                the local runtime's function definitions
     ├── RequestError (also ValueError)         an ExecuteRequest that cannot be sent
     │    └── PayloadTooLargeError               over Lambda's payload limit
     ├── InvocationError                        a call to Lambda failed (retryable, retry_after)
     ├── PolicyRejection                        a resilience policy refused the call
     │                                            (circuit open, rate limited, deadline, ...)
     └── DeadLetterError                        a dead-letter sink could not store, read or
                                                  remove an entry

Every error carries an ``error_code`` from :class:`ErrorCode`; the same code ends up in
``ExecuteResponse.error_code`` when ``execute_async`` turns the error into a response.
Lower-layer exceptions (botocore, aiohttp) are translated at one boundary
(:func:`module_sdk.aws_lambda.classify.classify_exception`) with ``raise ... from exc``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ConfigurationError",
    "DeadLetterError",
    "ErrorCode",
    "FunctionConfigError",
    "InvocationError",
    "ModuleSDKError",
    "PayloadTooLargeError",
    "PolicyRejection",
    "RequestError",
    "ServerConfigError",
]


class ErrorCode(StrEnum):
    """Machine-readable failure categories found in ``ExecuteResponse.error_code`` and in the
    module server's error answers (``{"success": false, "error": ..., "error_code": ...}``).

    The values are plain strings and stable across releases: compare against them freely.
    """

    THROTTLED = "throttled"
    """Lambda answered 429 (TooManyRequests/Throttling/EC2Throttled) on every attempt."""
    TIMEOUT = "timeout"
    """No reply within ``read_timeout`` (or the connection could not be made in time)."""
    CONNECTION = "connection"
    """The endpoint could not be reached or dropped the connection."""
    SERVICE_ERROR = "service_error"
    """Lambda itself failed (5xx) on every attempt."""
    FUNCTION_ERROR = "function_error"
    """The function raised, crashed or timed out (``X-Amz-Function-Error``); never retried."""
    MODULE_ERROR = "module_error"
    """The function ran and answered ``success: false`` (a business answer, not an outage)."""
    INVALID_RESPONSE = "invalid_response"
    """The function's reply is not a JSON object the SDK understands."""
    NOT_FOUND = "not_found"
    """The function, version or alias does not exist (404)."""
    ACCESS_DENIED = "access_denied"
    """The credentials may not invoke the function, or the request signature was refused."""
    CREDENTIALS = "credentials"
    """No AWS credentials could be found (parameters, environment, profile or role)."""
    INVALID_REQUEST = "invalid_request"
    """The ExecuteRequest or the call was malformed (bad field types, non-JSON metadata, 4xx)."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    """The event is over Lambda's limit (6 MB synchronous, 1 MB Event); refused before sending."""
    CONFIGURATION = "configuration"
    """A configuration problem on the AWS side (KMS, runtime, VPC/ENI, EFS, SnapStart, ...)."""
    CIRCUIT_OPEN = "circuit_open"
    """The function's circuit breaker is open; no call was made."""
    RATE_LIMITED = "rate_limited"
    """The adapter's rate limit refused the call; no call was made."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    """``total_timeout`` ran out across attempts and backoff sleeps."""
    RETRY_BUDGET_EXHAUSTED = "retry_budget_exhausted"
    """A retry was due but the adapter's retry budget was empty."""
    CANCELLED = "cancelled"
    """The caller cancelled the call (observers see it; the caller gets CancelledError)."""
    DUPLICATE_EXECUTION = "duplicate_execution"
    """A durable function's execution with this name was already started (409
    ``DurableExecutionAlreadyStartedException``): a repeat, recognised by Lambda; not retried."""
    INTERNAL = "internal"
    """An unexpected error inside the SDK; please report it."""

    # The module server's own refusals, answered before (or instead of) running a module;
    # ``docs/server.md`` lists the HTTP status of each.
    UNAUTHORIZED = "unauthorized"
    """The request's ``X-Service-Key`` is missing or wrong."""
    TOO_MANY_FAILURES = "too_many_failures"
    """This client address sent too many wrong or missing service keys within a minute."""
    BAD_REQUEST = "bad_request"
    """The HTTP request itself is malformed (request line, headers, chunked encoding)."""
    HEADERS_TOO_LARGE = "headers_too_large"
    """The request head is over the server's ``max_head_bytes``."""
    TOO_MANY_CONNECTIONS = "too_many_connections"
    """The server has ``max_connections`` connections open."""
    BODY_TIMEOUT = "body_timeout"
    """The request body did not arrive within the server's ``body_timeout``."""
    ARGS_TOO_LARGE = "args_too_large"
    """The request's ``args`` are over the server's ``max_args_chars``."""
    UNKNOWN_COMMAND = "unknown_command"
    """No module of the server answers the request's command."""
    UNKNOWN_MODULE = "unknown_module"
    """The server has no module of that name."""
    MISSING_SCOPES = "missing_scopes"
    """The request's ``scopes`` lack some of the module's ``required_scopes``."""
    METHOD_NOT_ALLOWED = "method_not_allowed"
    """The path exists, but not for this HTTP method."""
    HTTP_ERROR = "http_error"
    """Another HTTP-level refusal (the status says which)."""
    BUSY = "busy"
    """The module already has ``max_in_flight`` requests running (or another replica is
    running this command); nothing was sent to the function."""
    DISCONNECTED = "disconnected"
    """The client went away mid-request (nobody reads this answer)."""


class ModuleSDKError(Exception):
    """Base class of every exception the SDK raises."""

    error_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, error_code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code


class ConfigurationError(ModuleSDKError, ValueError):
    """A setting is invalid. The message names the parameter, the bad value and what is allowed."""

    error_code = ErrorCode.CONFIGURATION


class RequestError(ModuleSDKError, ValueError):
    """An ExecuteRequest cannot be turned into a Lambda event. Nothing was sent."""

    error_code = ErrorCode.INVALID_REQUEST


class PayloadTooLargeError(RequestError):
    """The encoded event is over Lambda's payload limit. Nothing was sent."""

    error_code = ErrorCode.PAYLOAD_TOO_LARGE

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class InvocationError(ModuleSDKError):
    """A call to the Lambda API failed.

    Attributes:
        retryable: whether trying again may succeed (throttling, 5xx, network, read timeout).
        retry_after: seconds the server asked us to wait (a 429's ``Retry-After``), if any.
        status_code: the HTTP status, when a reply was received.
        aws_code: the AWS error code (``TooManyRequestsException``...), when there was one.
        reason: a short token for metrics and logs (the AWS code or the exception class).
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: ErrorCode,
        retryable: bool,
        retry_after: float | None = None,
        status_code: int | None = None,
        aws_code: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status_code = status_code
        self.aws_code = aws_code
        self.reason = reason or aws_code or error_code.value


class PolicyRejection(ModuleSDKError):
    """A resilience policy refused the call before (or instead of) invoking the function."""

    def __init__(
        self, message: str, *, error_code: ErrorCode, retry_after: float | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.retry_after = retry_after


class ServerConfigError(ConfigurationError):
    """The server's configuration is invalid: the message names the file, the key and the fix."""


class FunctionConfigError(ConfigurationError):
    """A function definition is invalid; the message names the file, the key and the fix."""


class DeadLetterError(ModuleSDKError):
    """A dead-letter sink could not store, read or remove an entry."""
