"""The one seam to AWS: invoke a function once and return the raw reply.

:class:`AioBotocoreInvoker` is the real one. Anything with the same ``invoke``/``aclose``
methods can stand in (see :class:`module_sdk.testing.HandlerInvoker`).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from module_sdk.aws_lambda.api import OPTIONAL_INVOKE_FIELDS, RESPONSE_LIMIT, InvocationType
from module_sdk.aws_lambda.classify import CLASSIFIED
from module_sdk.aws_lambda.clients import ClientPool, ClientSettings
from module_sdk.aws_lambda.pooling import Lease
from module_sdk.errors import ConfigurationError

__all__ = [
    "MAX_RESPONSE_BYTES",
    "AioBotocoreInvoker",
    "InvocationResult",
    "InvokeCall",
    "Invoker",
    "invoke_params",
    "read_capped",
]

MAX_RESPONSE_BYTES = RESPONSE_LIMIT + 1024
_STREAM_BODY_OVER = 512 * 1024
"""Bodies larger than this are handed to aiohttp as a stream (it refuses big raw bytes)."""
"""Largest reply read from Lambda (its own limit is 6 MB); anything longer is cut there."""


@dataclass(frozen=True, slots=True)
class InvokeCall:
    """One Invoke API call."""

    function_name: str
    payload: bytes
    invocation_type: InvocationType = "RequestResponse"
    qualifier: str | None = None
    log_type: str = "None"
    client_context: str | None = None
    """Base64 JSON for ``X-Amz-Client-Context`` (trace context), or None."""
    tenant_id: str | None = None
    """``X-Amz-Tenant-Id``: the tenant for functions with per-tenant isolation, or None."""
    durable_execution_name: str | None = None
    """``X-Amz-Durable-Execution-Name``: makes the start of a durable function idempotent."""

    def optional_inputs(self) -> list[tuple[str, str, str]]:
        """The optional inputs set on this call: (botocore parameter, HTTP header, value)."""
        return [
            (param, header, value)
            for name, param, header in OPTIONAL_INVOKE_FIELDS
            if (value := getattr(self, name))
        ]


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """What Lambda answered (status 200/202/204 with the headers and body)."""

    status_code: int
    payload: bytes = b""
    function_error: str | None = None
    log_result: str | None = None
    executed_version: str | None = None
    request_id: str | None = None
    truncated: bool = False
    durable_execution_arn: str | None = None
    """``X-Amz-Durable-Execution-Arn`` of a durable function's execution, if any."""


class Invoker(Protocol):
    """Invokes a function once. Raises :class:`InvocationError` (classified) on failure."""

    async def invoke(self, call: InvokeCall) -> InvocationResult:
        """Make one call."""
        ...

    async def aclose(self) -> None:
        """Release what the invoker holds."""
        ...


async def read_capped(
    read: Callable[[int], Awaitable[bytes]], limit: int = MAX_RESPONSE_BYTES
) -> tuple[bytes, bool]:
    """Read a body through ``read(n)`` without blocking the loop: at most ``limit`` bytes,
    and whether more was left unread."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await read(min(65536, limit - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), bool(await read(1))


def invoke_params(call: InvokeCall) -> dict[str, Any]:
    """botocore's parameters for ``call`` (``invoke`` and ``invoke_with_response_stream``)."""
    params: dict[str, Any] = {
        "FunctionName": call.function_name,
        "InvocationType": call.invocation_type,
        "LogType": call.log_type,
        # aiohttp warns (an error under -W error) that a big raw-bytes body may block the
        # loop; a BytesIO is written in chunks. A fresh one per attempt: retries resend it.
        "Payload": (
            io.BytesIO(call.payload) if len(call.payload) > _STREAM_BODY_OVER else call.payload
        ),
    }
    if call.qualifier:
        params["Qualifier"] = call.qualifier
    params.update((param, value) for param, _, value in call.optional_inputs())
    return params


class AioBotocoreInvoker:
    """Invokes through an aiobotocore Lambda client, shared via a :class:`ClientPool`.

    Give either ``settings`` (a pooled client is acquired lazily on first use, per event loop)
    or ``client`` (an aiobotocore Lambda client you own; it is never closed here).
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        pool: ClientPool | None = None,
        client: Any = None,
    ) -> None:
        if (settings is None) == (client is None):
            raise ConfigurationError("give AioBotocoreInvoker exactly one of settings or client")
        from module_sdk.aws_lambda.clients import default_pool

        self._settings = settings
        self._own_client = client
        self._lease = None if settings is None else Lease(pool or default_pool, settings)

    @property
    def settings(self) -> ClientSettings | None:
        """The client settings (None for an injected client)."""
        return self._settings

    async def client(self) -> Any:
        """The aiobotocore client: the injected one, or the pooled one on the running loop
        (acquired on first use)."""
        if self._lease is None:
            return self._own_client
        return await self._lease.get()

    async def invoke(self, call: InvokeCall) -> InvocationResult:
        """Invoke once; botocore does not retry (``total_max_attempts=1``)."""
        with CLASSIFIED:
            client = await self.client()
            response = await client.invoke(**invoke_params(call))
            async with response["Payload"] as stream:
                body, truncated = await read_capped(stream.read)
        metadata = response.get("ResponseMetadata", {})
        return InvocationResult(
            status_code=int(response.get("StatusCode") or metadata.get("HTTPStatusCode") or 0),
            payload=body,
            function_error=response.get("FunctionError"),
            log_result=response.get("LogResult"),
            executed_version=response.get("ExecutedVersion"),
            request_id=metadata.get("RequestId"),
            truncated=truncated,
            durable_execution_arn=response.get("DurableExecutionArn"),
        )

    async def aclose(self) -> None:
        """Release the pooled client on the running loop (the last user closes it)."""
        if self._lease is not None:
            await self._lease.release()
