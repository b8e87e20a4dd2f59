"""Who may call the local runtime: AWS clients on this machine, not web pages in its browser.

The runtime runs any function for any caller that reaches it. A web page open in the
developer's browser can reach 127.0.0.1 too: a ``text/plain`` POST needs no preflight, and
DNS rebinding lets a page read the answers. Two checks keep pages out:

* every call carries a SigV4-shaped ``Authorization`` header (every AWS SDK and the CLI sign
  each request; a page cannot send that header without a CORS preflight, which the runtime
  never answers). The signature itself is not verified: any credentials do locally.
* while the runtime listens on a loopback address, the ``Host`` header must name a loopback
  host (``localhost``, ``127.x.x.x``, ``[::1]``): a rebound name (``evil.example``) is refused.
  A runtime bound elsewhere on purpose (``--host 0.0.0.0``) skips this check.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["caller_check", "is_loopback"]

_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/\s,]+/\d{8}/[A-Za-z0-9-]+/[A-Za-z0-9-]+/aws4_request,"
    r"\s*SignedHeaders=[A-Za-z0-9;-]+,\s*Signature=[0-9a-fA-F]{64}"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` names and loopback addresses (brackets and ports allowed)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refuse(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"message": message, "Type": "User"}).encode(),
        headers={"x-amzn-ErrorType": code, "Content-Type": "application/json"},
    )


def caller_check(bind_host: str) -> Middleware:
    """The runtime's middleware: refuse unsigned calls, and foreign Host values on loopback."""
    check_host = is_loopback(bind_host)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if check_host and not is_loopback(request.headers.get("Host", "")):
            return _refuse(
                403,
                "AccessDeniedException",
                "The local runtime answers only requests addressed to a loopback host "
                "(localhost, 127.0.0.1, [::1]); start it with --host to serve other names.",
            )
        if not _SIGV4.match(request.headers.get("Authorization", "")):
            return _refuse(
                403,
                "IncompleteSignatureException",
                "The local runtime answers only AWS-signed requests (any credentials will do "
                "locally): call it with an AWS SDK or the AWS CLI, not a plain HTTP client.",
            )
        return await handler(request)

    return middleware
