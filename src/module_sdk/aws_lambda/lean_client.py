"""The lean Invoke path's connection: endpoint, credentials, signer and one aiohttp session.

aiobotocore spends about 2 ms of CPU per ``invoke`` in botocore's generic machinery (request
serialization, event hooks, user-agent building, response parsing); the call itself needs a
small fraction of that. A :class:`LeanClient` keeps what matters for correctness from botocore
and does the rest directly:

- the endpoint is resolved once, by botocore's own endpoint ruleset for Lambda (partitions,
  ``AWS_USE_FIPS_ENDPOINT``, ``AWS_USE_DUALSTACK_ENDPOINT``, profile settings), or taken from
  ``endpoint_url`` / ``AWS_ENDPOINT_URL_LAMBDA`` / ``AWS_ENDPOINT_URL``, as botocore takes it;
- credentials come from aiobotocore's credential chain (parameters, environment, profiles, SSO,
  container and instance metadata, assume-role), refreshed before expiry without blocking the
  event loop;
- requests are signed by :class:`~module_sdk.aws_lambda.sigv4.SigV4Signer` (botocore's exact
  signature, about a tenth of the CPU);
- TLS verification (``AWS_CA_BUNDLE`` or the profile's ``ca_bundle``) and proxies
  (``HTTPS_PROXY`` / ``NO_PROXY`` or the profile's proxy settings) as botocore applies them;
- one aiohttp connection pool per (event loop, :class:`ClientSettings`), shared by every adapter
  with the same settings through a :class:`LeanPool`, like the aiobotocore clients.

Error replies are still parsed by botocore's own parser (see :mod:`.lean_invoker`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import platform
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.session import AioSession

from module_sdk.aws_lambda.clients import ClientSettings, _shared_loader
from module_sdk.aws_lambda.pooling import Close, SharedClients
from module_sdk.aws_lambda.sigv4 import SigV4Signer, canonical_host

__all__ = ["LeanClient", "LeanPool", "ResolvedEndpoint", "default_lean_pool", "resolve_endpoint"]

logger = logging.getLogger(__name__)


def _sdk_version() -> str:
    try:
        return importlib.metadata.version("waddlebot-module-sdk")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


USER_AGENT = (
    f"waddlebot-module-sdk/{_sdk_version()} lean-invoke aiohttp/{aiohttp.__version__} "
    f"lang/python#{platform.python_version()} os/{platform.system().lower()}"
)
"""The ``User-Agent`` of every lean-path request: names this SDK and its HTTP stack."""
_KEEPALIVE_TIMEOUT = 12.0  # seconds an idle connection is kept (aiobotocore's default)


@dataclass(frozen=True, slots=True)
class ResolvedEndpoint:
    """Where and how to send Invoke requests for one :class:`ClientSettings`."""

    url: str
    """The endpoint URL (scheme, host, port and any path prefix), without a trailing ``/``."""
    signing_region: str
    signing_name: str
    verify: bool | str
    """True (the system trust store), False, or a CA bundle path (``AWS_CA_BUNDLE``)."""
    proxy: str | None = field(repr=False)  # may hold the proxy's user and password
    proxy_headers: dict[str, str] = field(repr=False)
    service_model: Any = field(repr=False)
    """botocore's Lambda service model, for parsing error replies exactly as botocore does."""


def resolve_endpoint(settings: ClientSettings) -> ResolvedEndpoint:
    """Resolve the endpoint, TLS and proxy settings with botocore itself (blocking: run it in
    a worker thread).

    A botocore client is created for the settings (with stand-in credentials: resolving an
    endpoint never needs real ones, and looking them up here could wait on instance metadata)
    and asked what it would do for ``Invoke``; it is closed again without sending anything.
    """
    import botocore.session
    from botocore.config import Config
    from botocore.httpsession import ProxyConfiguration

    session = botocore.session.Session(profile=settings.profile_name)
    session.register_component("data_loader", _shared_loader(session))
    client = session.create_client(
        "lambda",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        aws_access_key_id="stand-in",
        aws_secret_access_key="stand-in",  # noqa: S106 - not a credential: never sent
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    try:
        operation = client.meta.service_model.operation_model("Invoke")
        context: dict[str, Any] = {}
        url, _headers, _properties = client._resolve_endpoint_ruleset(
            operation, {"FunctionName": "function"}, context
        )
        signing = context.get("signing", {})
        http = client._endpoint.http_session
        verify = getattr(http, "_verify", True)
        # botocore picks the proxies (HTTPS_PROXY / NO_PROXY or the client config) when it
        # creates the endpoint: the same choice, taken from the same object.
        proxies = getattr(http, "_proxy_config", None) or ProxyConfiguration()
        proxy = proxies.proxy_url_for(url)
        return ResolvedEndpoint(
            url=url.rstrip("/"),
            signing_region=signing.get("region") or client.meta.region_name,
            signing_name=signing.get("signing_name") or client.meta.service_model.signing_name,
            verify=verify if verify is not None else True,
            proxy=proxy,
            proxy_headers=proxies.proxy_headers_for(proxy) if proxy else {},
            service_model=client.meta.service_model,
        )
    finally:
        client.close()


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context botocore would use (blocking: reads the CA bundle)."""
    from botocore.httpsession import create_urllib3_context, get_cert_path

    context: ssl.SSLContext = create_urllib3_context()
    if verify:
        context.check_hostname = True
        ca_certs = get_cert_path(verify)
        if ca_certs:
            context.load_verify_locations(ca_certs, None, None)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class LeanClient:
    """One endpoint, credential source, signer and aiohttp session (per event loop)."""

    __slots__ = (
        "_amz_date",
        "_amz_second",
        "_credentials",
        "endpoint",
        "host",
        "http",
        "path_prefix",
        "settings",
        "signer",
    )

    def __init__(
        self,
        settings: ClientSettings,
        endpoint: ResolvedEndpoint,
        credentials: Any,
        http: aiohttp.ClientSession,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.host = canonical_host(endpoint.url)
        self.path_prefix = urlsplit(endpoint.url).path.rstrip("/")
        self.signer = SigV4Signer(endpoint.signing_region, endpoint.signing_name)
        self._credentials = credentials
        self.http = http
        self._amz_second = -1
        self._amz_date = ""

    def __repr__(self) -> str:
        return f"<LeanClient {self.endpoint.url!r} region={self.endpoint.signing_region!r}>"

    async def credentials(self) -> Any:
        """Frozen credentials (access key, secret key, token), refreshed when near expiry.

        Raises botocore's ``NoCredentialsError`` when the chain found none (classified as
        ``credentials``, like the aiobotocore path).
        """
        if self._credentials is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        return await self._credentials.get_frozen_credentials()

    def url(self, path: str, query: str = "") -> str:
        """The request URL for ``path`` (below the endpoint's own path) and ``query``."""
        return self.endpoint.url + path + (f"?{query}" if query else "")

    def _now_amz(self) -> str:
        """The signing time, ``YYYYMMDDTHHMMSSZ`` (formatted once per second)."""
        second = int(time.time())
        if second != self._amz_second:
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._amz_second = second
        return self._amz_date

    async def sign(
        self, method: str, path: str, query: str, headers: dict[str, str], payload_digest: str
    ) -> dict[str, str]:
        """Add the user agent and the SigV4 headers to ``headers`` for a request to ``path``
        (below the endpoint's own path) whose body has the SHA-256 ``payload_digest``."""
        credentials = await self.credentials()
        headers["User-Agent"] = USER_AGENT
        headers.update(
            self.signer.sign(
                method,
                self.host,
                self.path_prefix + path,
                query,
                headers,
                payload_digest,
                credentials,
                self._now_amz(),
            )
        )
        return headers

    @classmethod
    async def create(cls, settings: ClientSettings) -> LeanClient:
        """Resolve everything once (blocking parts in a worker thread) and open the pool."""
        endpoint = await asyncio.to_thread(resolve_endpoint, settings)
        context = await asyncio.to_thread(_ssl_context, endpoint.verify)
        session = AioSession(profile=settings.profile_name)
        session.register_component("data_loader", _shared_loader(session))
        given = await settings.credential_arguments(session)
        if given["aws_access_key_id"] is not None:  # explicit, or stand-ins for loopback
            session.set_credentials(
                given["aws_access_key_id"],
                given["aws_secret_access_key"],
                given["aws_session_token"],
            )
        credentials = await session.get_credentials()
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections,
            ssl=context,
            keepalive_timeout=_KEEPALIVE_TIMEOUT,
        )
        http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
            ),
            # as aiobotocore: no invented Content-Type, bodies passed through undecoded
            skip_auto_headers={"Content-Type"},
            auto_decompress=False,
        )
        return cls(settings, endpoint, credentials, http)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.close()


class LeanPool(SharedClients[ClientSettings, LeanClient]):
    """Reference-counted :class:`LeanClient` per event loop and :class:`ClientSettings`.

    Adapters with the same settings share one client (one connection pool); it is created on
    first use and closed when its last user releases it.
    """

    async def _open(self, settings: ClientSettings) -> tuple[LeanClient, Close]:
        client = await LeanClient.create(settings)
        logger.debug("created lean Lambda client %r", settings)

        async def close() -> None:
            await client.aclose()
            logger.debug("closed lean Lambda client %r", settings)

        return client, close


default_lean_pool = LeanPool()
"""The process-wide pool of lean clients used by every adapter unless one is given."""
