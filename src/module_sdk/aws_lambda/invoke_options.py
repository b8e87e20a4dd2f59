"""Newer Invoke headers: tenant ids and durable execution names (pure).

- ``X-Amz-Tenant-Id`` (1-256 characters) names the tenant of a function created with
  ``TenancyConfig.TenantIsolationMode=PER_TENANT``; each tenant gets its own execution
  environments and the function sees ``context.tenant_id``.
- ``X-Amz-Durable-Execution-Name`` (1-64 characters of ``[a-zA-Z0-9-_]``) makes the start of a
  durable function idempotent: the same name again answers 409
  ``DurableExecutionAlreadyStartedException``; the reply carries ``X-Amz-Durable-Execution-Arn``.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "DURABLE_NAME_MAX",
    "TENANT_ID_MAX",
    "durable_execution_name",
    "tenant_id_problem",
]

TENANT_ID_MAX = 256
DURABLE_NAME_MAX = 64
_DURABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]+")
_DIGEST_CHARS = 16


def tenant_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be sent as ``X-Amz-Tenant-Id`` (None when it can)."""
    if not isinstance(value, str):
        return f"use a string, not {type(value).__name__}"
    if not 1 <= len(value) <= TENANT_ID_MAX:
        return f"use 1 to {TENANT_ID_MAX} characters (got {len(value)})"
    if not value.isprintable() or not value.isascii():
        return "use printable ASCII characters (it is sent as an HTTP header)"
    return None


def durable_execution_name(session_id: str) -> str:
    """The durable execution name for a WaddleBot session: the same session, the same name.

    A session id that is already a valid name is used as it is. Any other one becomes its
    allowed characters (at most 47) and 16 hex characters of its SHA-256, so two different
    session ids never share a name by being cleaned alike.
    """
    if _DURABLE_NAME.fullmatch(session_id):
        return session_id
    digest = hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    cleaned = _NOT_ALLOWED.sub("-", session_id).strip("-")
    keep = DURABLE_NAME_MAX - _DIGEST_CHARS - 1
    return f"{cleaned[:keep]}-{digest}" if cleaned else digest
