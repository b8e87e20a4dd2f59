"""Shared aiobotocore Lambda clients: one per (event loop, region, endpoint, credentials, timeouts).

A client costs tens of milliseconds and several MB to build, so adapters with the same settings
share one. Clients are created lazily on first use (never in a constructor), reference-counted,
and closed when the last adapter using them calls ``aclose()``. A client belongs to the event
loop it was created on; a different loop gets its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from module_sdk.aws_lambda.redact import install_log_redaction

__all__ = ["DEFAULT_MAX_CONNECTIONS", "ClientPool", "ClientSettings", "default_pool"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 256
"""Default size of each client's connection pool (botocore's own default is 10)."""

_USER_AGENT = "waddlebot-module-sdk"


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

    def identity(self) -> str:
        """Which credentials these settings call with, safe to show: a digest of the access
        key id (never the secret), a digest of the profile name, or ``default`` (the chain)."""
        if self.aws_access_key_id:
            return "key-" + hashlib.sha256(self.aws_access_key_id.encode()).hexdigest()[:12]
        if self.profile_name:
            return "profile-" + hashlib.sha256(self.profile_name.encode()).hexdigest()[:12]
        return "default"

    def config(self) -> AioConfig:
        """The botocore config: our timeouts, a big pool, and botocore's retries switched off."""
        return AioConfig(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # total_max_attempts counts the first call: 1 means botocore never retries, so the
            # adapter is the only retry layer (no 4 x 5 = 20 invocations for one command).
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=self.max_connections,
            user_agent_extra=_USER_AGENT,
            # Load botocore's JSON models in a worker thread, not on the event loop.
            warm_up_loader_caches=True,
        )


_LOADER: Any = None


def _shared_loader(session: AioSession) -> Any:
    global _LOADER
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    return _LOADER


class _Entry:
    __slots__ = ("client", "context", "ready", "refs")

    def __init__(self, ready: asyncio.Future[Any]) -> None:
        self.ready = ready
        self.refs = 0
        self.client: Any = None
        self.context: Any = None


class ClientPool:
    """Reference-counted cache of Lambda clients, per event loop and :class:`ClientSettings`."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[ClientSettings, _Entry]
        ] = weakref.WeakKeyDictionary()
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str | None, AioSession]
        ] = weakref.WeakKeyDictionary()

    def open_clients(self) -> int:
        """How many clients are open (all loops); for tests and diagnostics."""
        return sum(1 for per_loop in self._entries.values() for e in per_loop.values() if e.client)

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

    async def acquire(self, settings: ClientSettings) -> Any:
        """Return the shared client for ``settings`` on the running loop (creating it once)."""
        loop = asyncio.get_running_loop()
        per_loop = self._entries.setdefault(loop, {})
        entry = per_loop.get(settings)
        if entry is None:
            install_log_redaction()  # botocore logs signed requests at DEBUG
            entry = _Entry(loop.create_future())
            per_loop[settings] = entry
            entry.refs += 1
            try:
                context = self._session(loop, settings.profile_name).create_client(
                    "lambda",
                    region_name=settings.region,
                    endpoint_url=settings.endpoint_url,
                    aws_access_key_id=settings.aws_access_key_id,
                    aws_secret_access_key=settings.aws_secret_access_key,
                    aws_session_token=settings.aws_session_token,
                    config=settings.config(),
                )
                client = await context.__aenter__()
            except BaseException as exc:
                per_loop.pop(settings, None)
                entry.ready.set_exception(exc)
                entry.ready.exception()  # mark retrieved: waiters get it re-raised below
                raise
            entry.client, entry.context = client, context
            entry.ready.set_result(client)
            logger.debug("created Lambda client %r", settings)
            return client
        entry.refs += 1
        try:
            return await asyncio.shield(entry.ready)
        except BaseException:
            entry.refs -= 1
            raise

    async def release(self, settings: ClientSettings) -> None:
        """Drop one reference; the last one closes the client."""
        loop = asyncio.get_running_loop()
        per_loop = self._entries.get(loop, {})
        entry = per_loop.get(settings)
        if entry is None:
            return
        entry.refs -= 1
        if entry.refs > 0:
            return
        per_loop.pop(settings, None)
        if entry.context is not None:
            await entry.context.__aexit__(None, None, None)
            logger.debug("closed Lambda client %r", settings)


default_pool = ClientPool()
"""The process-wide pool used by every adapter unless one is given."""
