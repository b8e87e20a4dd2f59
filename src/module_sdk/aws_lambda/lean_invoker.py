"""The lean invoker: one signed aiohttp POST per Invoke, with botocore's semantics.

It sends what botocore sends for ``Invoke`` (path, ``Qualifier``, the ``X-Amz-*`` headers, the
body, ``amz-sdk-invocation-id`` / ``amz-sdk-request``, ``Accept-Encoding: identity``), signed
with the same SigV4 signature, and reads the reply as aiobotocore hands it over: status,
``X-Amz-Function-Error``, ``X-Amz-Log-Result``, ``X-Amz-Executed-Version``, the request id and
the body (read without blocking, capped at :data:`~.invoker.MAX_RESPONSE_BYTES`).

Error replies (HTTP status 300 and up) are parsed by botocore's own rest-json parser with the
Lambda model (error type header with its ``:`` suffix removed, ``message``/``Message``,
modeled fields such as ``Type``, ``Reason`` and ``Retry-After``, bodies that are not JSON) and
raised as the same ``ClientError``; aiohttp's exceptions become the same botocore exceptions
aiobotocore raises. Everything then goes through the one classification,
:func:`~module_sdk.aws_lambda.classify.classify_exception`, so both paths give the same error
codes. ``tests/integration/test_lean_parity.py`` runs one table of scenarios through both.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import socket
from typing import Any
from urllib.parse import quote

import aiohttp
from botocore import exceptions as bce
from botocore.httpsession import mask_proxy_url
from yarl import URL

from module_sdk.aws_lambda.classify import CLASSIFIED
from module_sdk.aws_lambda.clients import ClientSettings
from module_sdk.aws_lambda.invoker import (
    _STREAM_BODY_OVER,
    MAX_RESPONSE_BYTES,
    InvocationResult,
    InvokeCall,
    read_capped,
)
from module_sdk.aws_lambda.lean_client import LeanClient, LeanPool
from module_sdk.aws_lambda.pooling import Lease
from module_sdk.errors import InvocationError

__all__ = ["LeanInvoker", "invoke_headers", "invoke_target"]

_HASH_IN_THREAD_OVER = 256 * 1024
"""Bodies larger than this are hashed in a worker thread (about 1 ms per 400 KB)."""
_SAFE = "-_.~"  # botocore's percent_encode: everything else in a label is escaped


def invoke_target(function_name: str, qualifier: str | None) -> tuple[str, str]:
    """The path (after any endpoint prefix) and query botocore builds for an Invoke."""
    path = f"/2015-03-31/functions/{quote(function_name, safe=_SAFE)}/invocations"
    return path, f"Qualifier={quote(qualifier, safe=_SAFE)}" if qualifier else ""


def invoke_headers(call: InvokeCall) -> dict[str, str]:
    """The unsigned ``X-Amz-*`` headers botocore sends for ``call``."""
    headers = {
        "X-Amz-Invocation-Type": call.invocation_type,
        "X-Amz-Log-Type": call.log_type,
    }
    headers.update((header, value) for _, header, value in call.optional_inputs())
    return headers


class _Target:
    """One function's path, query and request URL on one client (built once)."""

    __slots__ = ("client", "path", "query", "text", "url")

    def __init__(self, client: LeanClient, function_name: str, qualifier: str | None) -> None:
        self.client = client
        self.path, self.query = invoke_target(function_name, qualifier)
        self.text = client.url(self.path, self.query)
        self.url = URL(self.text, encoded=True)


_TARGETS_KEPT = 256


def _send_error(exc: BaseException, url: str, proxy: str | None = None) -> Any:
    """aiohttp's exception while sending -> the botocore exception aiobotocore raises."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return bce.SSLError(endpoint_url=url, error=exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return bce.ProxyConnectionError(proxy_url=mask_proxy_url(proxy), error=exc)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.BadStatusLine,
    ):
        return bce.ConnectionClosedError(error=exc, request=None, endpoint_url=url)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        if str(exc).lower().startswith("connect"):
            return bce.ConnectTimeoutError(endpoint_url=url, error=exc)
        return bce.ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, aiohttp.ClientConnectionError | socket.gaierror):
        return bce.EndpointConnectionError(endpoint_url=url, error=exc)
    if isinstance(exc, asyncio.TimeoutError):
        return bce.ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, bce.BotoCoreError | InvocationError):
        return exc
    return bce.HTTPClientError(error=exc)


def _stream_error(exc: BaseException, url: str) -> Any:
    """An exception while reading a success body -> what aiobotocore's StreamingBody raises."""
    if isinstance(exc, asyncio.TimeoutError):
        return bce.ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return bce.ResponseStreamingError(error=exc)
    return _send_error(exc, url)


async def _read_reply(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The body, at most MAX_RESPONSE_BYTES, and whether more was left unread."""
    length = response.content_length
    if length is not None and length <= MAX_RESPONSE_BYTES:
        return await response.read(), False
    return await read_capped(response.content.read)


def _client_error(client: LeanClient, status: int, headers: Any, body: bytes) -> bce.ClientError:
    """Parse an error reply exactly as botocore does and build its ``ClientError``."""
    from botocore.awsrequest import HeadersDict
    from botocore.parsers import create_parser

    model = client.endpoint.service_model
    operation = model.operation_model("Invoke")
    parser = create_parser(model.metadata["protocol"])
    response = {
        # aiobotocore lowercases header names (the last of repeated ones wins)
        "headers": HeadersDict({k.lower(): v for k, v in headers.items()}),
        "status_code": status,
        "context": {"operation_name": "Invoke"},
        "body": body,
    }
    parsed = parser.parse(response, operation.output_shape)
    code = parsed.get("Error", {}).get("Code")
    shape = model.shape_for_error_code(code) if code else None
    if shape is not None:
        parsed.update(parser.parse(response, shape))
    return bce.ClientError(parsed, "Invoke")


class LeanInvoker:
    """Invokes with the SDK's own signed HTTP request through a shared :class:`LeanClient`.

    The client for ``settings`` is acquired from ``pool`` on first use, per event loop, and
    released by :meth:`aclose` (the last user closes it).
    """

    def __init__(self, settings: ClientSettings, *, pool: LeanPool | None = None) -> None:
        from module_sdk.aws_lambda.lean_client import default_lean_pool

        self._settings = settings
        self._lease = Lease(pool or default_lean_pool, settings)
        self._targets: dict[tuple[str, str | None], _Target] = {}
        self._rng = random.Random()

    def _invocation_id(self) -> str:
        """A random version-4 UUID for ``amz-sdk-invocation-id`` (a tracing id, not a secret:
        drawn from a seeded PRNG, a tenth of ``uuid.uuid4()``'s cost)."""
        bits = self._rng.getrandbits(128)
        bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    @property
    def settings(self) -> ClientSettings:
        """The client settings."""
        return self._settings

    async def client(self) -> LeanClient:
        """The pooled client on the running loop (acquired on first use)."""
        return await self._lease.get()

    async def signed_headers(
        self, client: LeanClient, call: InvokeCall, path: str, query: str
    ) -> dict[str, str]:
        """The headers botocore sends for ``call`` to ``path`` and ``query``, signed."""
        headers = invoke_headers(call)
        body = call.payload
        if len(body) > _HASH_IN_THREAD_OVER:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        else:
            digest = hashlib.sha256(body).hexdigest()
        await client.sign("POST", path, query, headers, digest)
        headers["amz-sdk-invocation-id"] = self._invocation_id()
        headers["amz-sdk-request"] = "attempt=1"
        return headers

    async def invoke(self, call: InvokeCall) -> InvocationResult:
        """Invoke once (never retried here: the adapter's retry policy decides)."""
        url = ""
        with CLASSIFIED:
            client = await self._lease.get()
            key = (call.function_name, call.qualifier)
            target = self._targets.get(key)
            if target is None or target.client is not client:
                if len(self._targets) >= _TARGETS_KEPT:
                    self._targets.clear()
                target = self._targets[key] = _Target(client, *key)
            headers = await self.signed_headers(client, call, target.path, target.query)
            body = call.payload
            headers["Accept-Encoding"] = "identity"
            url = target.text
            data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > _STREAM_BODY_OVER else body
            endpoint = client.endpoint
            try:
                response = await client.http.post(
                    target.url,
                    headers=headers,
                    data=data,
                    proxy=endpoint.proxy,
                    proxy_headers=endpoint.proxy_headers or None,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise _send_error(exc, url, endpoint.proxy) from exc
            async with response:
                status = response.status
                reply_headers = response.headers
                if status >= 300:
                    try:
                        raw = await response.read()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        raise _send_error(exc, url) from exc
                    raise _client_error(client, status, reply_headers, raw)
                try:
                    payload, truncated = await _read_reply(response)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise _stream_error(exc, url) from exc
        request_id = reply_headers.get("x-amzn-RequestId") or reply_headers.get("x-amz-request-id")
        return InvocationResult(
            status_code=status,
            payload=payload,
            function_error=reply_headers.get("X-Amz-Function-Error"),
            log_result=reply_headers.get("X-Amz-Log-Result"),
            executed_version=reply_headers.get("X-Amz-Executed-Version"),
            request_id=request_id,
            truncated=truncated,
            durable_execution_arn=reply_headers.get("X-Amz-Durable-Execution-Arn"),
        )

    async def aclose(self) -> None:
        """Release the pooled client on the running loop (the last user closes it)."""
        await self._lease.release()
