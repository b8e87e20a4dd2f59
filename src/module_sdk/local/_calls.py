"""One Invoke call as the runtime handles it, and the AWS-shaped errors it may answer."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from module_sdk.local._config import FunctionSpec
from module_sdk.local._environments import FunctionPool

__all__ = ["AwsError", "Call", "check_tenant", "error_fields"]

_TENANT_RE = re.compile(r"^[a-zA-Z0-9._:/=+\-@ ]{1,256}$")


class AwsError(Exception):
    """An error reply of the Invoke API (status, ``x-amzn-ErrorType``, JSON body)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        outcome: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        message_key: str = "message",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.outcome = outcome
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        self.message_key = message_key


@dataclass(slots=True)
class Call:
    """One parsed Invoke call."""

    function: FunctionPool
    name: str
    qualifier: str | None
    arn: str
    invocation_type: str
    log_tail: bool
    body: bytes
    event_request_id: str | None
    client_context: Any
    request_id: str
    streaming: bool = False
    tenant_id: str | None = None


def check_tenant(tenant: str | None, spec: FunctionSpec) -> str | None:
    """The call's ``X-Amz-Tenant-Id``, checked against the function's tenant isolation."""
    if tenant is not None and not _TENANT_RE.match(tenant):
        raise AwsError(
            400,
            "InvalidParameterValueException",
            "1 validation error detected: Value at 'tenantId' failed to satisfy constraint: "
            "Member must have length between 1 and 256 and match [a-zA-Z0-9._:/=+-@ ]+",
            "invalid_request",
        )
    if spec.tenant_isolation == "PER_TENANT" and tenant is None:
        raise AwsError(
            400,
            "InvalidParameterValueException",
            f"Function {spec.name} uses tenant isolation (PER_TENANT): every call needs a "
            "tenant id (X-Amz-Tenant-Id, TenantId in boto3)",
            "invalid_request",
        )
    if spec.tenant_isolation is None and tenant is not None:
        raise AwsError(
            400,
            "InvalidParameterValueException",
            f"Function {spec.name} does not use tenant isolation: leave out the tenant id, "
            'or set tenant_isolation = "PER_TENANT" for it',
            "invalid_request",
        )
    return tenant


def error_fields(body: bytes) -> tuple[str, str]:
    """``ErrorCode`` and ``ErrorDetails`` of a stream's InvokeComplete, from the error object."""
    try:
        error = json.loads(body)
    except (ValueError, RecursionError):
        error = None
    if not isinstance(error, dict):
        return "Unhandled", body.decode("utf-8", errors="replace")
    return str(error.get("errorType") or "Unhandled"), str(error.get("errorMessage", ""))
