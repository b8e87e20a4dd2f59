"""A test client that calls a module exactly like WaddleBot's router does.

Written from the router's behaviour (``docs/server.md``, "How the router calls a module"):

- ``POST {module_url}/api/v1/execute`` with exactly seven fields: ``command`` (the first word,
  prefix and case kept), ``args`` (ONE string, the rest of the message with its inner spacing),
  ``user_id``, ``entity_id``, ``community_id`` (an int), ``session_id`` (``sess_`` + 32 hex)
  and ``message``; no ``platform``, ``metadata`` or ``scopes``.
- ``X-Service-Key`` only when the router has a key (none at all when it is empty).
- Up to 3 attempts, each with its own timeout (``ROUTER_REQUEST_TIMEOUT``):
  200 -> ``response.json()`` (a non-JSON content type raises and is retried like any
  exception; a falsy body is "Module did not respond"); 429 -> sleep ``2 ** attempt``
  (1, 2, 4 s, ``Retry-After`` ignored) and retry, dropped after the third; any other status ->
  "Module did not respond", no retry; a timeout, a connection error or any other exception ->
  sleep ``2 ** attempt`` before the next attempt (1 s, 2 s), re-sending the SAME body with the
  SAME session_id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = ["RouterClient", "RouterOutcome", "router_body"]

ATTEMPTS = 3


def router_body(
    message: str,
    *,
    user_id: str = "123456789",
    entity_id: str = "987654321:555",
    community_id: int = 1,
    session_id: str | None = None,
) -> dict[str, Any]:
    """The body the router builds for a chat ``message`` (``"!roll 2d6"``)."""
    parts = message.split(maxsplit=1)
    return {
        "command": parts[0],
        "args": parts[1] if len(parts) > 1 else "",
        "user_id": user_id,
        "entity_id": entity_id,
        "community_id": community_id,
        "session_id": session_id or f"sess_{uuid.uuid4().hex}",
        "message": message,
    }


@dataclass
class RouterOutcome:
    """What the router ended with for one command, and what each attempt saw."""

    response: dict[str, Any] | None
    """The module's JSON answer, or None ("Module did not respond" / dropped)."""
    attempts: list[str] = field(default_factory=list)
    """Per attempt: ``"200"``, ``"429"``, ``"timeout"``, ``"connection"``, ``"not_json"``..."""
    sleeps: list[float] = field(default_factory=list)
    """The router's sleeps between attempts, in seconds."""


class RouterClient:
    """Sends chat commands to a module the way the router does (see the module docstring).

    Args:
        session: the aiohttp session to send with (the router's own is an aiohttp session).
        timeout: the router's per-attempt timeout (``ROUTER_REQUEST_TIMEOUT``, 30 s).
        service_key: the router's ``SERVICE_API_KEY``; empty or None sends no header at all.
        sleep: the router's backoff sleep (``asyncio.sleep``); tests may record or shorten it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 30.0,
        service_key: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._key = service_key
        self._sleep = sleep

    async def execute(self, module_url: str, body: dict[str, Any]) -> RouterOutcome:
        """Run one command: up to three attempts with the same ``body``."""
        headers = {"X-Service-Key": self._key} if self._key else {}
        outcome = RouterOutcome(response=None)
        url = module_url.rstrip("/") + "/api/v1/execute"
        for attempt in range(ATTEMPTS):
            try:
                async with self._session.post(
                    url,
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                ) as reply:
                    outcome.attempts.append(str(reply.status))
                    if reply.status == 200:
                        try:
                            result = await reply.json()  # raises on a non-JSON content type
                        except (aiohttp.ContentTypeError, json.JSONDecodeError):
                            outcome.attempts[-1] = "not_json"
                            raise
                        outcome.response = result or None  # {} / null: "did not respond"
                        return outcome
                    if reply.status == 429:
                        delay = float(2**attempt)  # Retry-After is ignored
                        outcome.sleeps.append(delay)
                        await self._sleep(delay)
                        continue
                    return outcome  # any other status: "Module did not respond", no retry
            except TimeoutError:
                outcome.attempts.append("timeout")
            except aiohttp.ClientConnectionError:
                outcome.attempts.append("connection")
            except Exception:  # the router retries every exception (a non-JSON reply too)
                if not outcome.attempts or outcome.attempts[-1] != "not_json":
                    outcome.attempts.append("error")
            if attempt < ATTEMPTS - 1:
                delay = float(2**attempt)
                outcome.sleeps.append(delay)
                await self._sleep(delay)
        return outcome


class FlakyProxy:
    """A TCP front (a load balancer, possibly gone wrong) between the router and module servers.

    Each request is forwarded to the next of ``upstreams`` in turn (round robin: a re-send
    lands on another replica). For the first ``faults`` requests the upstream answer is not
    passed on: ``mode="drop"`` closes the connection without a reply (the router sees a
    connection error), ``mode="html"`` answers ``200 text/html`` (the router sees a non-JSON
    reply). Either way the module already ran the command. ``mode="pass"`` never interferes.
    """

    def __init__(self, *upstreams: str, mode: str, faults: int = 1) -> None:
        if mode not in ("drop", "html", "pass"):
            raise ValueError(f"mode must be 'drop', 'html' or 'pass', not {mode!r}")
        if not upstreams:
            raise ValueError("give at least one upstream URL")
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.mode = mode
        self.faults = faults
        self.forwarded = 0
        self.received = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FlakyProxy:
        self._session = aiohttp.ClientSession()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._session is not None
        self._server.close()
        await self._server.wait_closed()
        await self._session.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip()] = value.strip()
                length = int(headers.get("Content-Length", "0"))
                data = await reader.readexactly(length)
                forward = {
                    k: v
                    for k, v in headers.items()
                    if k.lower() in ("content-type", "x-service-key")
                }
                assert self._session is not None
                upstream = self.upstreams[self.received % len(self.upstreams)]
                self.received += 1
                async with self._session.request(
                    method, upstream + path, data=data, headers=forward
                ) as reply:
                    body = await reply.read()
                    status, reason = reply.status, reply.reason or ""
                    content_type = reply.headers.get("Content-Type", "application/json")
                self.forwarded += 1
                if self.mode != "pass" and self.forwarded <= self.faults:
                    if self.mode == "drop":
                        writer.transport.abort()
                        return
                    content_type, body = "text/html", b"<html><body>Bad gateway</body></html>"
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
