"""Error classification: the one boundary where botocore/aiohttp errors become ours (pure).

Decisions are made on the AWS error code, the HTTP status and the exception class, never on
the text of a message (a function error that mentions "ThrottlingException" is still a
function error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from botocore import exceptions as bce

from module_sdk.aws_lambda.redact import redact
from module_sdk.errors import ErrorCode, InvocationError
from module_sdk.outcomes import RETRIED_CODES

__all__ = [
    "CLASSIFIED",
    "DURABLE_ALREADY_STARTED",
    "THROTTLE_CODES",
    "TRANSIENT_SERVER_CODES",
    "classify_client_error",
    "classify_exception",
]

THROTTLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "EC2ThrottledException",
        "SlowDown",
    }
)
TRANSIENT_SERVER_CODES = frozenset(
    {
        "ServiceException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "ResourceNotReadyException",
        "ENILimitReachedException",
        "EC2UnexpectedException",
    }
)
DURABLE_ALREADY_STARTED = "DurableExecutionAlreadyStartedException"
"""A durable execution with the same name was already started (409)."""
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoPublishedVersionException"})
_ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "RequestExpired",
    }
)
_TOO_LARGE_CODES = frozenset(
    {"RequestTooLargeException", "SerializedRequestEntityTooLargeException"}
)
_INVALID_REQUEST_CODES = frozenset(
    {
        "InvalidParameterValueException",
        "InvalidRequestContentException",
        "UnsupportedMediaTypeException",
        "RecursiveInvocationException",
        "ValidationException",
        "SerializationException",
    }
)


def _retry_after(response: Mapping[str, Any]) -> float | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    raw = headers.get("retry-after") or response.get("retryAfterSeconds")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None  # an HTTP-date Retry-After is not used by Lambda
    return value if value >= 0 else None


def classify_client_error(
    code: str, status: int | None, message: str, response: Mapping[str, Any] | None = None
) -> InvocationError:
    """Map an AWS error reply (code, HTTP status) to an :class:`InvocationError`."""
    response = response or {}
    detail = f"Lambda returned {code or 'an error'}"
    if status:
        detail += f" (HTTP {status})"
    if message:
        detail += f": {redact(message)}"  # AWS may quote the signed request back

    def make(error_code: ErrorCode, hint: str = "") -> InvocationError:
        retryable = error_code in RETRIED_CODES
        return InvocationError(
            detail + hint,
            error_code=error_code,
            retryable=retryable,
            retry_after=_retry_after(response) if retryable else None,
            status_code=status,
            aws_code=code or None,
            reason=code or (f"http_{status}" if status else None),
        )

    if code == DURABLE_ALREADY_STARTED:
        return make(ErrorCode.DUPLICATE_EXECUTION, " (a repeated start: the execution runs once)")
    if code in THROTTLE_CODES or (not code and status == 429):
        return make(ErrorCode.THROTTLED)
    if code in TRANSIENT_SERVER_CODES:
        return make(ErrorCode.SERVICE_ERROR)
    if code in _NOT_FOUND_CODES:
        return make(ErrorCode.NOT_FOUND, " (check the function name, qualifier and region)")
    if code in _ACCESS_CODES:
        return make(
            ErrorCode.ACCESS_DENIED,
            " (check the credentials and that they allow lambda:InvokeFunction)",
        )
    if code in _TOO_LARGE_CODES or status == 413:
        return make(ErrorCode.PAYLOAD_TOO_LARGE)
    if code in _INVALID_REQUEST_CODES or status in (400, 415):
        return make(ErrorCode.INVALID_REQUEST)
    if status == 429:
        return make(ErrorCode.THROTTLED)
    if status is not None and status >= 500:
        # Unknown 5xx codes (a gateway's 502/503/504 has none) are transient; the known
        # permanent 502s (KMS, runtime, zip, subnet, EFS...) are configuration problems.
        if code and code not in TRANSIENT_SERVER_CODES and status == 502:
            return make(ErrorCode.CONFIGURATION)
        return make(ErrorCode.SERVICE_ERROR)
    if status == 403:
        return make(ErrorCode.ACCESS_DENIED)
    if status == 404:
        return make(ErrorCode.NOT_FOUND)
    if code.startswith(("KMS", "EFS", "SnapStart", "S3Files", "CodeArtifact", "EC2", "Invalid")):
        return make(ErrorCode.CONFIGURATION)
    return make(ErrorCode.CONFIGURATION if status else ErrorCode.INVALID_REQUEST)


def classify_exception(exc: BaseException) -> InvocationError:
    """Translate an exception raised while invoking into an :class:`InvocationError`.

    ``asyncio.CancelledError`` is never passed here: cancellation propagates.
    """
    if isinstance(exc, InvocationError):
        return exc
    if isinstance(exc, bce.ClientError):
        response: Mapping[str, Any] = exc.response or {}
        error = response.get("Error", {}) or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return classify_client_error(
            str(error.get("Code", "") or ""), status, str(error.get("Message", "") or ""), response
        )
    name = type(exc).__name__

    def make(error_code: ErrorCode, text: str) -> InvocationError:
        return InvocationError(
            text, error_code=error_code, retryable=error_code in RETRIED_CODES, reason=name
        )

    if isinstance(exc, bce.ReadTimeoutError):
        return make(ErrorCode.TIMEOUT, f"no reply from Lambda within read_timeout ({exc})")
    if isinstance(exc, bce.ConnectTimeoutError):
        return make(ErrorCode.TIMEOUT, f"could not connect within connect_timeout ({exc})")
    if isinstance(
        exc,
        bce.ConnectionError
        | bce.ConnectionClosedError
        | bce.HTTPClientError
        | aiohttp.ClientError
        | ConnectionError,
    ):
        return make(ErrorCode.CONNECTION, f"connection to Lambda failed ({name}: {exc})")
    if isinstance(exc, bce.ResponseStreamingError | bce.IncompleteReadError):
        return make(ErrorCode.CONNECTION, f"the reply was cut off ({name}: {exc})")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return make(ErrorCode.TIMEOUT, "no reply from Lambda within read_timeout")
    if isinstance(
        exc,
        bce.NoCredentialsError
        | bce.PartialCredentialsError
        | bce.CredentialRetrievalError
        | bce.ProfileNotFound
        | bce.UnknownCredentialError,
    ):
        return make(
            ErrorCode.CREDENTIALS,
            f"AWS credentials are missing or unusable ({name}): pass aws_access_key_id and "
            "aws_secret_access_key, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "or run with an IAM role",
        )
    if isinstance(exc, bce.ParamValidationError):
        return make(ErrorCode.INVALID_REQUEST, f"the call was refused locally: {exc}")
    if isinstance(exc, bce.NoRegionError | bce.UnknownEndpointError | bce.InvalidRegionError):
        return make(ErrorCode.CONFIGURATION, f"AWS client configuration error: {exc}")
    if isinstance(exc, OSError):
        return make(ErrorCode.CONNECTION, f"network error ({name}: {exc})")
    return make(ErrorCode.INTERNAL, f"unexpected error while invoking ({name}: {exc})")


class _Classified:
    """``with CLASSIFIED:`` turns an exception raised inside into its classified
    :class:`InvocationError` (:func:`classify_exception`). Cancellation, an error already
    classified and the end of an async iteration pass through unchanged."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, InvocationError | StopAsyncIteration):
            raise classify_exception(exc) from exc


CLASSIFIED = _Classified()
"""The one error boundary of the Invoke paths (see :class:`_Classified`)."""
