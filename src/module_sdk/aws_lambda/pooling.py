"""Shared clients: one per event loop and settings, counted by reference, and one user's lease.

Both HTTP paths keep their clients this way: :class:`~module_sdk.aws_lambda.clients.ClientPool`
(aiobotocore clients) and :class:`~module_sdk.aws_lambda.lean_client.LeanPool` (lean clients)
say only how to open one; an invoker holds a :class:`Lease` on its pool.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from module_sdk.aws_lambda.redact import install_log_redaction

__all__ = ["Lease", "SharedClients"]

S = TypeVar("S", bound=Hashable)
C = TypeVar("C")

Close = Callable[[], Awaitable[object]]


class _Entry(Generic[C]):
    __slots__ = ("client", "close", "ready", "refs")

    def __init__(self, ready: asyncio.Future[C]) -> None:
        self.ready = ready
        self.refs = 0
        self.client: C | None = None
        self.close: Close | None = None


class SharedClients(Generic[S, C]):
    """Reference-counted clients per event loop and settings.

    The first :meth:`acquire` for some settings on a loop opens the client (callers arriving
    meanwhile wait for the same one); the last :meth:`release` closes it. Subclasses say how
    to open one in :meth:`_open`.
    """

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[S, _Entry[C]]] = (
            weakref.WeakKeyDictionary()
        )

    async def _open(self, settings: S) -> tuple[C, Close]:
        """Open a client for ``settings``; return it and how to close it."""
        raise NotImplementedError

    def open_clients(self) -> int:
        """How many clients are open (all loops); for tests and diagnostics."""
        return sum(1 for per_loop in self._entries.values() for e in per_loop.values() if e.client)

    async def acquire(self, settings: S) -> C:
        """Return the shared client for ``settings`` on the running loop (opening it once)."""
        loop = asyncio.get_running_loop()
        per_loop = self._entries.setdefault(loop, {})
        entry = per_loop.get(settings)
        if entry is None:
            install_log_redaction()  # botocore logs signed requests and credentials at DEBUG
            entry = _Entry(loop.create_future())
            per_loop[settings] = entry
            entry.refs += 1
            try:
                client, close = await self._open(settings)
            except BaseException as exc:
                per_loop.pop(settings, None)
                entry.ready.set_exception(exc)
                entry.ready.exception()  # mark retrieved: waiters get it re-raised below
                raise
            entry.client, entry.close = client, close
            entry.ready.set_result(client)
            return client
        entry.refs += 1
        try:
            return await asyncio.shield(entry.ready)
        except BaseException:
            entry.refs -= 1
            raise

    async def release(self, settings: S) -> None:
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
        if entry.close is not None:
            await entry.close()


class Lease(Generic[S, C]):
    """One user's share of a pooled client, per event loop.

    :meth:`get` acquires it on first use on each loop (concurrent first calls wait for the same
    acquisition, so the user holds one reference per loop); :meth:`release` gives back the
    running loop's reference.
    """

    def __init__(self, pool: SharedClients[S, C], settings: S) -> None:
        self.pool = pool
        self.settings = settings
        self._held: dict[asyncio.AbstractEventLoop, C] = {}
        self._acquiring: dict[asyncio.AbstractEventLoop, asyncio.Future[C]] = {}

    async def get(self) -> C:
        """The client on the running loop, acquired from the pool on first use."""
        loop = asyncio.get_running_loop()
        client = self._held.get(loop)
        if client is not None:
            return client
        pending = self._acquiring.get(loop)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = loop.create_future()
        self._acquiring[loop] = pending
        try:
            client = await self.pool.acquire(self.settings)
        except BaseException as exc:
            del self._acquiring[loop]
            pending.set_exception(exc)
            pending.exception()
            raise
        self._held[loop] = client
        del self._acquiring[loop]
        pending.set_result(client)
        return client

    def held(self) -> list[C]:
        """The clients held now (one per loop that used this lease)."""
        return list(self._held.values())

    async def release(self) -> None:
        """Give back the running loop's client (the pool closes it after its last user)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._held.pop(loop, None) is not None:
            await self.pool.release(self.settings)
