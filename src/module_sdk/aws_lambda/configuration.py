"""``read_timeout="auto"``: wait as long as the function may run, read from its configuration.

:class:`FunctionTimeout` reads the function's ``Timeout`` with GetFunctionConfiguration once
(the first call waits for that one small GET), keeps it, and refreshes it in the background
every ``refresh`` seconds, so the hot path never waits for it again. When the configuration
cannot be read (no permission, an endpoint without the control plane), Lambda's largest
timeout is assumed, so a run is never given up while it may still be going, and the read is
tried again later.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

__all__ = [
    "AUTO_CEILING",
    "FunctionTimeout",
    "auto_margin",
    "read_configured_timeout",
]

logger = logging.getLogger("module_sdk.aws_lambda")

MAX_FUNCTION_TIMEOUT = 900.0
"""Lambda's largest function timeout, in seconds."""
REFRESH = 600.0
RETRY_FAILED = 60.0


def auto_margin(timeout: float) -> float:
    """What ``auto`` waits beyond the function's timeout: 10 s (a cold start's init phase, up
    to 10 s on Lambda, is not part of the timeout) plus 10 % for the network and the queue."""
    return 10.0 + 0.1 * timeout


AUTO_CEILING = MAX_FUNCTION_TIMEOUT + auto_margin(MAX_FUNCTION_TIMEOUT)
"""The HTTP read timeout of an ``auto`` adapter's client; the real limit is set per call."""


class FunctionTimeout:
    """The function's configured timeout, read once, cached, refreshed in the background."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[float | None]],
        monotonic: Callable[[], float],
        *,
        name: str,
        refresh: float = REFRESH,
    ) -> None:
        self._fetch = fetch
        self._monotonic = monotonic
        self._name = name
        self._refresh = refresh
        self.configured: float | None = None
        """The function's ``Timeout`` as last read (None until read)."""
        self._expires = 0.0
        self._tried = False
        self._loading: asyncio.Future[None] | None = None
        self._warned = False

    @property
    def limit(self) -> float:
        """Seconds to wait for one attempt: the timeout plus :func:`auto_margin`."""
        timeout = MAX_FUNCTION_TIMEOUT if self.configured is None else self.configured
        return timeout + auto_margin(timeout)

    async def get(self) -> float:
        """The limit for the next attempt (only the very first call waits for a read)."""
        if self._monotonic() >= self._expires and self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        if not self._tried and self._loading is not None:
            await asyncio.shield(self._loading)
        return self.limit

    async def _load(self) -> None:
        try:
            value = await self._fetch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            value = None
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "no configuration"
        finally:
            self._loading = None
            self._tried = True
        now = self._monotonic()
        if value is None:
            self._expires = now + RETRY_FAILED
            if not self._warned:
                self._warned = True
                logger.warning(
                    "read_timeout='auto': the configuration of %s could not be read (%s): "
                    "waiting up to %g s per attempt until it can",
                    self._name,
                    reason,
                    self.limit,
                )
            return
        self.configured = float(value)
        self._expires = now + self._refresh


async def read_configured_timeout(
    invoker: Any, function_name: str, qualifier: str | None
) -> float | None:
    """GetFunctionConfiguration's ``Timeout`` through the adapter's own HTTP path, or None
    for an invoker that has no control-plane client."""
    from module_sdk.aws_lambda.invoker import AioBotocoreInvoker
    from module_sdk.aws_lambda.lean_invoker import LeanInvoker

    if isinstance(invoker, AioBotocoreInvoker):
        client = await invoker.client()
        params: dict[str, Any] = {"FunctionName": function_name}
        if qualifier:
            params["Qualifier"] = qualifier
        reply = await client.get_function_configuration(**params)
        return float(reply["Timeout"])
    if isinstance(invoker, LeanInvoker):
        return await _lean_read(invoker, function_name, qualifier)
    return None


async def _lean_read(invoker: Any, function_name: str, qualifier: str | None) -> float | None:
    from yarl import URL

    from module_sdk.aws_lambda.lean_invoker import _client_error

    client = await invoker.client()
    path = f"/2015-03-31/functions/{quote(function_name, safe='-_.~')}/configuration"
    query = f"Qualifier={quote(qualifier, safe='-_.~')}" if qualifier else ""
    headers = await client.sign("GET", path, query, {}, hashlib.sha256(b"").hexdigest())
    url = client.url(path, query)
    async with client.http.get(
        URL(url, encoded=True),
        headers=headers,
        proxy=client.endpoint.proxy,
        proxy_headers=client.endpoint.proxy_headers or None,
    ) as response:
        body = await response.read()
        if response.status >= 300:
            raise _client_error(client, response.status, response.headers, body)
    return float(json.loads(body)["Timeout"])
