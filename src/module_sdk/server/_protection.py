"""Connection-level protection of the module server against a hostile network.

aiohttp offers an idle timeout (``keepalive_timeout``, which also applies to a fresh
connection) and per-line header limits (``max_line_size``, ``max_field_size``, ``max_headers``);
the server passes tight values of those. aiohttp has no timeout for reading a request head, no
limit on a head's total size, no cap on concurrent connections, and its answer to a malformed
request quotes the offending bytes (header values, the service key among them) in the log and
in the 400 body. This module adds those on a subclass of aiohttp's ``RequestHandler``:

* a **connection cap**: past ``max_connections`` open connections a new one gets a 503 and is
  closed at once, so descriptors never run out;
* a **head timeout** and a **head size limit**: a request head (request line and headers) must
  arrive whole within ``header_timeout`` seconds of its first byte (of the connection's start
  for a new connection) and be at most ``max_head_bytes`` long, else 431 / the connection is
  closed;
* **malformed requests** are answered with a fixed JSON 400 and logged with the error's class
  only, never the bytes;
* log lines a client can trigger are **rate-limited** (:class:`ThrottledLog`): the first per
  interval is written, the rest are counted and the count is written with the next one.

The site (:class:`GuardedSite`) listens with aiohttp's own ``web.Server`` behind this handler;
:func:`install_accept_log_limit` rate-limits asyncio's "socket.accept() out of system resource"
report (asyncio logs one traceback per failed accept, up to 100 per loop iteration).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import json
import logging
import math
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import BaseRequest
from aiohttp.web_runner import BaseRunner, BaseSite

from module_sdk.errors import ConfigurationError
from module_sdk.server.config import ServerConfig

__all__ = [
    "MIN_SERVICE_KEY_LENGTH",
    "AuthFailures",
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedSite",
    "ThrottledLog",
    "check_service_key",
    "install_accept_log_limit",
    "raise_open_files_limit",
]

logger = logging.getLogger("module_sdk.server.protection")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits a client's connection lives under (``[server]`` keys of the same names)."""

    max_connections: int = 1000
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    body_timeout: float = 30.0
    max_head_bytes: int = 32 * 1024
    max_headers: int = 32
    max_field_size: int = 8190
    max_line_size: int = 8190
    log_interval: float = 10.0

    @classmethod
    def from_config(cls, config: ServerConfig) -> ConnectionLimits:
        """The limits a :class:`~module_sdk.server.config.ServerConfig` sets."""
        return cls(
            max_connections=config.max_connections,
            header_timeout=config.header_timeout,
            keepalive_timeout=config.keepalive_timeout,
            body_timeout=config.body_timeout,
            max_head_bytes=config.max_head_bytes,
            max_headers=config.max_headers,
            max_field_size=config.max_field_size,
            max_line_size=config.max_field_size,
        )

    def handler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of aiohttp's ``RequestHandler`` that carry these limits."""
        return {
            "keepalive_timeout": self.keepalive_timeout,
            "max_headers": self.max_headers,
            "max_field_size": self.max_field_size,
            "max_line_size": self.max_line_size,
            # A body the handler never reads (a 401 answer) is drained at most this long.
            "lingering_time": min(self.body_timeout, 5.0),
        }


class ThrottledLog:
    """Writes the first of a kind of log line per ``interval`` seconds and counts the rest.

    The count of lines left out is written with the next line of that kind, so nothing is
    silently lost while one client cannot fill the disk.
    """

    def __init__(self, log: logging.Logger, interval: float, clock: Clock = time.monotonic) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, level: int, kind: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless a ``kind`` line was written within the interval."""
        now = self._clock()
        if now < self._next.get(kind, -1.0):
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return False
        self._next[kind] = now + self._interval
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, skipped, self._interval)
        self._log.log(level, message, *args)
        return True

    def skipped(self, kind: str) -> int:
        """How many ``kind`` lines are counted but not written yet."""
        return self._skipped.get(kind, 0)


def _raw(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"success": False, "error": message, "error_code": code}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ConnectionGuard:
    """The shared state of one server's connections: how many are open, what was refused."""

    def __init__(self, limits: ConnectionLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.head_timeouts = 0
        self.heads_too_large = 0
        self.malformed = 0
        self.draining = False
        self.log = ThrottledLog(logger, limits.log_interval, clock)
        self._peak = 0
        self._trim: asyncio.TimerHandle | None = None
        self._busy = _raw(
            503,
            "Service Unavailable",
            "too_many_connections",
            f"the server has {limits.max_connections} connections open (its max_connections): "
            "try again shortly",
        )
        self._too_large = _raw(
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            f"the request head is over {limits.max_head_bytes} bytes: send fewer or "
            "shorter headers",
        )

    def opened(self) -> None:
        self.open += 1
        self._peak = max(self._peak, self.open)

    def closed(self) -> None:
        """Count a closed connection; after many closed, hand the freed memory back."""
        self.open -= 1
        if self._peak - self.open >= _TRIM_AFTER and self._trim is None and _malloc_trim:
            self._trim = asyncio.get_running_loop().call_later(1.0, self._release_memory)

    def _release_memory(self) -> None:
        # The heads of closed connections are freed, but glibc keeps the pages for reuse: a
        # flood of 800 partial heads would leave the process 40 MB larger for good.
        self._trim = None
        self._peak = self.open
        if _malloc_trim is not None:
            _malloc_trim(0)

    def factory(self, runner: BaseRunner) -> Callable[[], GuardedRequestHandler]:
        """The protocol factory of a listener: aiohttp's server behind the guard."""
        server = runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before making a site")
        loop = asyncio.get_running_loop()
        kwargs = self.limits.handler_kwargs()

        def make() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, self, loop=loop, access_log=None, **kwargs)

        return make


_TRIM_AFTER = 100
"""Closed connections (since the last trim) after which freed memory is handed back."""


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (returns freed heap pages to the system), or None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _load_malloc_trim()


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's request handler plus the connection cap, the head limits and safe 400s."""

    __slots__ = ("_counted", "_guard", "_head_bytes", "_head_timer", "_in_head", "_tail")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._counted = False
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._tail = b""

    # -- connection cap -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open >= guard.limits.max_connections:
            guard.refused += 1
            guard.log(
                logging.WARNING,
                "refused",
                "refused a connection from %s: %d connections open (max_connections)",
                _peer(transport),
                guard.open,
            )
            assert isinstance(transport, asyncio.Transport)
            transport.write(guard._busy)
            transport.close()
            return
        guard.opened()
        self._counted = True
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return  # refused at once: aiohttp never saw it
        self._counted = False
        self._guard.closed()
        self._cancel_head_timer()
        if exc is not None:
            # A client that vanished: nothing to answer, nothing the operator must act on.
            logger.debug("connection from %s lost: %s", _peer(self.transport), type(exc).__name__)
        super().connection_lost(exc)

    # -- the request head -----------------------------------------------------------------

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            loop = asyncio.get_running_loop()
            self._head_timer = loop.call_later(self._guard.limits.header_timeout, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        guard = self._guard
        guard.head_timeouts += 1
        guard.log(
            logging.INFO,
            "head_timeout",
            "closed a connection from %s: no complete request head within %.1f s (header_timeout)",
            _peer(self.transport),
            guard.limits.header_timeout,
        )
        self.force_close()

    def data_received(self, data: bytes) -> None:
        if self._in_head and data:
            self._start_head_timer()
            scan = self._tail + data
            match = _HEAD_END.search(scan)
            end = -1 if match is None else match.end()
            self._head_bytes += len(data) if end < 0 else max(end - len(self._tail), 0)
            if self._head_bytes > self._guard.limits.max_head_bytes:
                self._refuse_head()
                return
            if end < 0:
                self._tail = scan[-2:]
            else:
                self._in_head = False
                self._tail = b""
                self._cancel_head_timer()
        super().data_received(data)

    def _refuse_head(self) -> None:
        guard = self._guard
        guard.heads_too_large += 1
        guard.log(
            logging.WARNING,
            "head_too_large",
            "refused a request from %s: its head is over %d bytes (max_head_bytes)",
            _peer(self.transport),
            guard.limits.max_head_bytes,
        )
        transport = self.transport
        self._cancel_head_timer()
        self._in_head = False
        if transport is not None:
            transport.write(guard._too_large)
        self.force_close()

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if self._guard.draining:
            resp.force_close()  # Connection: close while the server drains
        result = await super().finish_response(request, resp, start_time)
        # The next bytes on this connection start a new request head.
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        return result

    # -- malformed requests ---------------------------------------------------------------

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 and not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # aiohttp's own text quotes the bytes it refused (header values, the service key):
        # only the kind of error is logged and answered.
        guard = self._guard
        guard.malformed += 1
        kind = type(exc).__name__ if exc is not None else "HTTP error"
        guard.log(
            logging.INFO,
            "malformed",
            "refused a malformed HTTP request from %s (%s)",
            request.remote,
            kind,
        )
        body = {
            "success": False,
            "error": f"malformed HTTP request ({kind}): check the client's request line "
            "and headers",
            "error_code": "bad_request",
        }
        resp = web.Response(status=status, text=json.dumps(body), content_type="application/json")
        resp.force_close()
        return resp


# The end of a request head: CRLF CRLF, or the bare line feeds the parser also accepts.
_HEAD_END = re.compile(rb"\n\r?\n")


class GuardedSite(BaseSite):
    """A TCP listener whose connections go through :class:`GuardedRequestHandler`."""

    __slots__ = ("_guard", "_host", "_port", "_reuse_address", "_reuse_port")

    def __init__(
        self,
        runner: BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the real one after ``start()``, also for port 0)."""
        sockets = getattr(self._server, "sockets", None)
        if sockets:
            return int(sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.factory(self._runner),
            self._host or None,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,  # several worker processes on one port
        )


# -- process-level protections ------------------------------------------------------------

_OUT_OF_RESOURCES = "socket.accept() out of system resource"


def install_accept_log_limit(
    loop: asyncio.AbstractEventLoop, throttled: ThrottledLog
) -> Callable[[], None]:
    """Rate-limit asyncio's report of failed accepts (no free descriptor or memory).

    asyncio logs a traceback for every failed ``accept()``, up to 100 per loop iteration;
    a flood of connections at the open-files limit wrote tens of megabytes a minute. This
    handler writes one line per interval with the count and passes every other report on.
    Returns a function that puts the previous handler back (if ours is still installed).
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == _OUT_OF_RESOURCES and isinstance(exc, OSError):
            name = errno.errorcode.get(exc.errno or 0, "error")
            throttled(
                logging.ERROR,
                "accept",
                "cannot accept connections: %s (%s); raise the open-files limit "
                "(ulimit -n) or lower max_connections",
                exc.strerror,
                name,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

    def restore() -> None:
        if loop.get_exception_handler() is handler:
            loop.set_exception_handler(previous)

    return restore


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft open-files limit (RLIMIT_NOFILE) to the hard one; returns (before, after).

    The usual soft limit of 1,024 is what a connection flood exhausts first; the hard limit is
    what the operator allowed. Failure is logged and leaves the limit as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-files limit from %d: %s", soft, exc)
            return soft, soft
        logger.info("open-files limit raised from %d to %d", soft, target)
        return soft, target
    return soft, soft


# -- authentication failures --------------------------------------------------------------

MIN_SERVICE_KEY_LENGTH = 32
"""Shortest service key the server starts with."""


def check_service_key(key: str, source: str) -> None:
    """Refuse a guessable service key, saying how to make a good one.

    Raises:
        ConfigurationError: the key is shorter than :data:`MIN_SERVICE_KEY_LENGTH` characters.
    """
    if len(key) < MIN_SERVICE_KEY_LENGTH:
        raise ConfigurationError(
            f"{source}: service_api_key is {len(key)} characters long: use at least "
            f"{MIN_SERVICE_KEY_LENGTH} random characters, for example the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))', and give the "
            "router the same value"
        )


class AuthFailures:
    """Counts wrong or missing keys per client address; past the limit, the address waits.

    An address with ``limit`` failures within ``window`` seconds is answered 429 (before its key
    is even compared) until the window ends, so guessing the key costs a minute per ``limit``
    tries. At most ``max_addresses`` addresses are remembered (the oldest are forgotten first).
    """

    def __init__(
        self,
        limit: int,
        log: ThrottledLog,
        *,
        window: float = 60.0,
        max_addresses: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._log = log
        self._clock = clock
        self._max = max_addresses
        self._seen: dict[str, tuple[float, int]] = {}

    def retry_after(self, address: str) -> int:
        """Seconds ``address`` must wait (0: it may try)."""
        if self.limit <= 0:
            return 0
        entry = self._seen.get(address)
        if entry is None:
            return 0
        started, count = entry
        left = started + self.window - self._clock()
        if left <= 0:
            del self._seen[address]
            return 0
        return max(1, math.ceil(left)) if count >= self.limit else 0

    def failed(self, address: str, method: str, raw_path: str, missing: bool) -> None:
        """Count one failure and log it (rate-limited; the path as sent, quoted)."""
        self._log(
            logging.WARNING,
            "unauthorized",
            "refused %s %s from %s: %s X-Service-Key header",
            method,
            _quoted(raw_path),
            address,
            "missing" if missing else "wrong",
        )
        if self.limit <= 0:
            return
        now = self._clock()
        started, count = self._seen.pop(address, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        self._seen[address] = (started, count + 1)  # (re)inserted last: the newest
        if count + 1 == self.limit:
            self._log(
                logging.WARNING,
                "auth_limit",
                "%s sent %d wrong or missing keys within %.0f s: it waits until the window ends",
                address,
                self.limit,
                self.window,
            )
        while len(self._seen) > self._max:
            del self._seen[next(iter(self._seen))]


def _quoted(text: str, limit: int = 200) -> str:
    """``text`` as a quoted literal: no line break or control character reaches a log line."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
