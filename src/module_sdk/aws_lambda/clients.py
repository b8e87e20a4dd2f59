"""Shared aiobotocore Lambda clients: one per (event loop, region, endpoint, credentials, timeouts).

A client costs tens of milliseconds and several MB to build, so adapters with the same settings
share one. Clients are created lazily on first use (never in a constructor), reference-counted,
and closed when the last adapter using them calls ``aclose()``. A client belongs to the event
loop it was created on; a different loop gets its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from module_sdk.aws_lambda.pooling import Close, SharedClients
from module_sdk.aws_lambda.redact import without_userinfo

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "STAND_IN_ACCESS_KEY_ID",
    "ClientPool",
    "ClientSettings",
    "credential_arguments",
    "default_pool",
    "is_loopback",
    "service_endpoint",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 256
"""Default size of each client's connection pool (botocore's own default is 10)."""

_USER_AGENT = "waddlebot-module-sdk"

STAND_IN_ACCESS_KEY_ID = "waddlebot-local-stand-in"
"""The access key id signed with when a loopback endpoint is called without credentials."""
_STAND_IN_SECRET = "waddlebot-local-stand-in"  # noqa: S105 - not a secret: loopback only


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything that makes two clients different. Secrets are kept out of ``repr``."""

    region: str
    endpoint_url: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    service: str = "lambda"
    """The AWS service (``lambda``; the SQS dead-letter sink asks for ``sqs``)."""
    max_attempts: int = 1
    """botocore's attempts per call: 1 for Lambda, whose retries are the adapter's own."""

    def identity(self) -> str:
        """Which credentials these settings call with, safe to show: a digest of the access
        key id (never the secret), a digest of the profile name, or ``default`` (the chain)."""
        if self.aws_access_key_id:
            return "key-" + hashlib.sha256(self.aws_access_key_id.encode()).hexdigest()[:12]
        if self.profile_name:
            return "profile-" + hashlib.sha256(self.profile_name.encode()).hexdigest()[:12]
        return "default"

    async def credential_arguments(
        self, session: AioSession, *, said: set[str] | None = None
    ) -> dict[str, str | None]:
        """:func:`credential_arguments` for these settings."""
        return await credential_arguments(
            session,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            service=self.service,
            said=said,
        )

    def config(self) -> AioConfig:
        """The botocore config: our timeouts, a big pool, and botocore's retries switched off."""
        return AioConfig(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # total_max_attempts counts the first call: 1 means botocore never retries, so the
            # adapter is the only retry layer (no 4 x 5 = 20 invocations for one command).
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            max_pool_connections=self.max_connections,
            user_agent_extra=_USER_AGENT,
            # Load botocore's JSON models in a worker thread, not on the event loop.
            warm_up_loader_caches=True,
        )


def service_endpoint(
    endpoint_url: str | None, service: str = "lambda", environ: Mapping[str, str] | None = None
) -> str | None:
    """The endpoint botocore will call: ``endpoint_url``, else ``AWS_ENDPOINT_URL_<SERVICE>``,
    else ``AWS_ENDPOINT_URL``, else None (AWS's own)."""
    env = os.environ if environ is None else environ
    return (
        endpoint_url
        or env.get(f"AWS_ENDPOINT_URL_{service.upper()}")
        or env.get("AWS_ENDPOINT_URL")
        or None
    )


def is_loopback(url: str | None) -> bool:
    """True for an endpoint on this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if not url:
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def credential_arguments(
    session: AioSession,
    *,
    endpoint_url: str | None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
    service: str = "lambda",
    said: set[str] | None = None,
) -> dict[str, str | None]:
    """The credential arguments for ``session.create_client(...)``.

    Explicit keys are used as given. Otherwise the session's credential chain is used, except
    when the endpoint (``endpoint_url`` or the ``AWS_ENDPOINT_URL*`` variables) is a loopback
    address and the chain finds nothing: a local endpoint (``waddlebot-lambda local``, moto,
    LocalStack) does not check signatures, but botocore refuses to send an unsigned call, so
    stand-in credentials are used and this is said once per endpoint at INFO (``said``
    remembers the endpoints already named). Against AWS, no credentials stay an error at the
    first call (``error_code="credentials"``).
    """
    given: dict[str, str | None] = {
        "aws_access_key_id": aws_access_key_id,
        "aws_secret_access_key": aws_secret_access_key,
        "aws_session_token": aws_session_token,
    }
    if aws_access_key_id:
        return given
    endpoint = service_endpoint(endpoint_url, service)
    if not is_loopback(endpoint) or await session.get_credentials() is not None:
        return given
    assert endpoint is not None
    if said is None or endpoint not in said:
        if said is not None:
            said.add(endpoint)
        logger.info(
            "no AWS credentials found; calling the local endpoint %s with stand-in credentials "
            "(it does not check signatures)",
            without_userinfo(endpoint),
        )
    return {
        "aws_access_key_id": STAND_IN_ACCESS_KEY_ID,
        "aws_secret_access_key": _STAND_IN_SECRET,
        "aws_session_token": None,
    }


async def credentials_missing(
    *,
    endpoint_url: str | None,
    profile_name: str | None = None,
    aws_access_key_id: str | None = None,
    service: str = "lambda",
) -> bool:
    """True when calls to a non-loopback endpoint would have no credentials to sign with."""
    if aws_access_key_id or is_loopback(service_endpoint(endpoint_url, service)):
        return False
    try:
        return await AioSession(profile=profile_name).get_credentials() is None
    except Exception:  # a missing profile and such: the first call names it
        return False


_LOADER: Any = None


def _shared_loader(session: AioSession) -> Any:
    global _LOADER
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    return _LOADER


class ClientPool(SharedClients[ClientSettings, Any]):
    """Reference-counted cache of AWS clients (Lambda, and SQS for the dead-letter sink), per
    event loop and :class:`ClientSettings`."""

    def __init__(self) -> None:
        super().__init__()
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str | None, AioSession]
        ] = weakref.WeakKeyDictionary()
        self._stand_in_said: set[str] = set()

    def _session(self, loop: asyncio.AbstractEventLoop, profile: str | None) -> AioSession:
        per_loop = self._sessions.setdefault(loop, {})
        session = per_loop.get(profile)
        if session is None:
            session = AioSession(profile=profile)
            # botocore's data loader is synchronous, loop-agnostic and caches the parsed JSON
            # models: one per process means the models are read from disk once, not per loop.
            session.register_component("data_loader", _shared_loader(session))
            per_loop[profile] = session
        return session

    async def _open(self, settings: ClientSettings) -> tuple[Any, Close]:
        session = self._session(asyncio.get_running_loop(), settings.profile_name)
        credentials = await settings.credential_arguments(session, said=self._stand_in_said)
        context = session.create_client(
            settings.service,
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            config=settings.config(),
            **credentials,
        )
        client = await context.__aenter__()
        logger.debug("created %s client %r", settings.service, settings)

        async def close() -> None:
            await context.__aexit__(None, None, None)
            logger.debug("closed %s client %r", settings.service, settings)

        return client, close


default_pool = ClientPool()
"""The process-wide pool used by every adapter unless one is given."""
