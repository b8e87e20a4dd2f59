"""Error classification by AWS code, HTTP status and exception class, never by text."""

from __future__ import annotations

import aiohttp
import pytest
from botocore import exceptions as bce

from module_sdk.aws_lambda.classify import classify_client_error, classify_exception
from module_sdk.errors import ErrorCode, InvocationError


@pytest.mark.parametrize(
    ("code", "status", "error_code", "retryable"),
    [
        ("TooManyRequestsException", 429, ErrorCode.THROTTLED, True),
        ("ThrottlingException", 400, ErrorCode.THROTTLED, True),
        ("EC2ThrottledException", 502, ErrorCode.THROTTLED, True),
        ("ServiceException", 500, ErrorCode.SERVICE_ERROR, True),
        ("ServiceUnavailableException", 503, ErrorCode.SERVICE_ERROR, True),
        ("", 504, ErrorCode.SERVICE_ERROR, True),
        ("", 503, ErrorCode.SERVICE_ERROR, True),
        ("ResourceNotReadyException", 502, ErrorCode.SERVICE_ERROR, True),
        ("ENILimitReachedException", 502, ErrorCode.SERVICE_ERROR, True),
        ("EC2UnexpectedException", 502, ErrorCode.SERVICE_ERROR, True),
        ("KMSDisabledException", 502, ErrorCode.CONFIGURATION, False),
        ("InvalidRuntimeException", 502, ErrorCode.CONFIGURATION, False),
        ("InvalidZipFileException", 502, ErrorCode.CONFIGURATION, False),
        ("SubnetIPAddressLimitReachedException", 502, ErrorCode.CONFIGURATION, False),
        ("ResourceNotFoundException", 404, ErrorCode.NOT_FOUND, False),
        ("AccessDeniedException", 403, ErrorCode.ACCESS_DENIED, False),
        ("UnrecognizedClientException", 403, ErrorCode.ACCESS_DENIED, False),
        ("InvalidSignatureException", 403, ErrorCode.ACCESS_DENIED, False),
        ("ExpiredTokenException", 403, ErrorCode.ACCESS_DENIED, False),
        ("EFSMountFailureException", 403, ErrorCode.ACCESS_DENIED, False),
        ("RequestTooLargeException", 413, ErrorCode.PAYLOAD_TOO_LARGE, False),
        ("InvalidParameterValueException", 400, ErrorCode.INVALID_REQUEST, False),
        ("InvalidRequestContentException", 400, ErrorCode.INVALID_REQUEST, False),
        ("UnsupportedMediaTypeException", 415, ErrorCode.INVALID_REQUEST, False),
        ("RecursiveInvocationException", 400, ErrorCode.INVALID_REQUEST, False),
        ("ResourceConflictException", 409, ErrorCode.CONFIGURATION, False),
        ("SnapStartTimeoutException", 408, ErrorCode.CONFIGURATION, False),
    ],
)
def test_client_error_codes(code: str, status: int, error_code: ErrorCode, retryable: bool) -> None:
    """Each AWS error code maps to one category and a retry decision."""
    error = classify_client_error(code, status, "msg")
    assert (error.error_code, error.retryable) == (error_code, retryable)
    assert error.status_code == status


def test_message_text_is_ignored() -> None:
    """A permanent code whose message mentions throttling is still permanent."""
    error = classify_client_error(
        "AccessDeniedException", 403, "ThrottlingException ServiceUnavailable timeout"
    )
    assert error.retryable is False


def _client_error(code: str, status: int, headers: dict[str, str]) -> bce.ClientError:
    return bce.ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        },
        "Invoke",
    )


def test_retry_after_header_is_read() -> None:
    """A 429's Retry-After header becomes retry_after (botocore ignores it)."""
    error = classify_exception(
        _client_error("TooManyRequestsException", 429, {"retry-after": "2.5"})
    )
    assert error.retry_after == 2.5
    assert error.reason == "TooManyRequestsException"


@pytest.mark.parametrize("value", ["soon", "-1", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_unusable_retry_after_is_ignored(value: str) -> None:
    """A Retry-After that is not a non-negative number is ignored."""
    error = classify_exception(
        _client_error("TooManyRequestsException", 429, {"retry-after": value})
    )
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("exc", "error_code", "retryable"),
    [
        (bce.ReadTimeoutError(endpoint_url="http://x"), ErrorCode.TIMEOUT, True),
        (bce.ConnectTimeoutError(endpoint_url="http://x"), ErrorCode.TIMEOUT, True),
        (bce.EndpointConnectionError(endpoint_url="http://x"), ErrorCode.CONNECTION, True),
        (bce.ConnectionClosedError(endpoint_url="http://x"), ErrorCode.CONNECTION, True),
        (aiohttp.ServerDisconnectedError(), ErrorCode.CONNECTION, True),
        (ConnectionResetError(), ErrorCode.CONNECTION, True),
        (TimeoutError(), ErrorCode.TIMEOUT, True),
        (bce.NoCredentialsError(), ErrorCode.CREDENTIALS, False),
        (
            bce.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            ErrorCode.CREDENTIALS,
            False,
        ),
        (bce.ProfileNotFound(profile="nope"), ErrorCode.CREDENTIALS, False),
        (bce.ParamValidationError(report="bad"), ErrorCode.INVALID_REQUEST, False),
        (bce.NoRegionError(), ErrorCode.CONFIGURATION, False),
        (RuntimeError("surprise"), ErrorCode.INTERNAL, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_exception_classes(exc: BaseException, error_code: ErrorCode, retryable: bool) -> None:
    """Exceptions are classified by class: missing credentials are never retried."""
    error = classify_exception(exc)
    assert isinstance(error, InvocationError)
    assert (error.error_code, error.retryable) == (error_code, retryable)


def test_credentials_message_names_the_fix() -> None:
    """The credentials error tells the user how to provide them."""
    error = classify_exception(bce.NoCredentialsError())
    assert "AWS_ACCESS_KEY_ID" in error.message and "IAM role" in error.message


def test_invocation_error_passes_through() -> None:
    """An already-classified error is returned unchanged."""
    original = InvocationError("x", error_code=ErrorCode.THROTTLED, retryable=True)
    assert classify_exception(original) is original
