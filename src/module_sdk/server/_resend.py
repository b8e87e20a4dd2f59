"""The re-send guard: one run of a module per (module, session_id), however often it arrives.

WaddleBot's router re-sends the same body with the same ``session_id`` after its own
per-attempt timeout, a connection error or a reply that is not JSON (up to 3 attempts). A
re-send must never run the function again: for ``!raffle draw`` a second run is a wrong
answer. So the first request for a key runs the module (a *flight*); a re-send that arrives
while it runs waits for the same answer; a re-send that arrives after it finished gets the
stored answer for ``ttl`` seconds.

In this process the flights are asyncio tasks owned by the guard (not by the request that
started them, so a router that gave up does not cancel the run) and the stored answers live
in bounded memory (oldest dropped first past ``max_bytes``). With a :class:`RedisResendStore`
the in-flight marker and the stored answer also live in Redis (an atomic set-if-absent), so a
re-send that lands on another replica behaves the same; when Redis cannot be reached the guard
fails open (the module runs, a warning is logged at most every 10 seconds).

Only final answers are stored: a 429 (busy) or 5xx is not, so the router's retry of it runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from module_sdk.errors import ErrorCode
from module_sdk.resilience.clock import Clock, SystemClock

if TYPE_CHECKING:
    from module_sdk.resilience.redis_state import RedisState

__all__ = ["Answer", "Hit", "RedisResendStore", "ResendGuard"]

Hit = Literal["in_flight", "stored"]
"""How a re-send was answered: it joined the running flight, or got the stored answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer of the execute endpoint, as stored for re-sends."""

    status: int
    body: str
    retry_after: bool = False
    module_ms: float | None = field(default=None, compare=False)
    """Milliseconds the module took (for ``Server-Timing``; not stored)."""
    attempts: int | None = field(default=None, compare=False)
    """Lambda calls made for this answer (for the access log; not stored)."""

    @property
    def final(self) -> bool:
        """Stored for re-sends: not a "try again" (429) nor a server failure (5xx)."""
        return self.status != 429 and self.status < 500

    def size(self) -> int:
        """Bytes this answer holds in memory, roughly."""
        return len(self.body) + 64

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps([self.status, self.body, self.retry_after])

    @classmethod
    def from_json(cls, text: str) -> Answer:
        """Parse :meth:`to_json`."""
        status, body, retry_after = json.loads(text)
        return cls(int(status), str(body), bool(retry_after))


# Claim the key if free; else return what it holds. One script: atomic on the server.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v then
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# Delete the key only while it still holds our own in-flight marker.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisResendStore:
    """In-flight markers and stored answers in Redis, shared by every replica.

    Keys: ``{prefix}resend:{module}:{session_id}`` holding ``r:<token>`` while a replica runs
    the module (expiring after ``marker_ttl``, so a replica that died frees the key) and
    ``d:<answer>`` once it answered (expiring after the guard's ``ttl``).

    Args:
        state: the server's :class:`~module_sdk.resilience.redis_state.RedisState`: its client,
            key prefix, error types and rate-limited warning are shared with the policies.
        poll_interval: how often a re-send waiting for another replica looks again (seconds).
    """

    def __init__(self, state: RedisState, *, poll_interval: float = 0.05) -> None:
        self.client = state.client
        self.prefix = state.prefix
        self.poll_interval = poll_interval
        self.errors = state.errors
        self.warner = state.warner
        self._claim = state.client.register_script(_CLAIM)
        self._release = state.client.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"<RedisResendStore prefix={self.prefix!r}>"  # never the URL (a password)

    def key(self, module: str, session_id: str) -> str:
        """The Redis key of one command."""
        return f"{self.prefix}resend:{module}:{session_id}"

    async def claim(self, key: str, token: str, marker_ttl: float) -> str | None:
        """Take the key for a run (returns None) or return what it holds (``r:...``/``d:...``)."""
        raw = await self._claim(keys=[key], args=[f"r:{token}", _ms(marker_ttl)])
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def get(self, key: str) -> str | None:
        """What the key holds now."""
        raw = await self.client.get(key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def store(self, key: str, answer: Answer, ttl: float) -> None:
        """Keep ``answer`` for ``ttl`` seconds."""
        await self.client.set(key, "d:" + answer.to_json(), px=_ms(ttl))

    async def release(self, key: str, token: str) -> None:
        """Free the key (the answer is not to be stored) if it still holds our marker."""
        await self._release(keys=[key], args=[f"r:{token}"])


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class ResendGuard:
    """Single flight per (module, session_id); see the module docstring.

    Args:
        ttl: seconds an answer is kept for re-sends (default 120: the router's three 30 s
            attempts and its 1 s + 2 s sleeps fit in it).
        max_bytes: memory for stored answers in this process; the oldest go first.
        shared: a :class:`RedisResendStore` so that replicas share flights and answers.
        clock: the time seam (tests pass a fake clock).
    """

    def __init__(
        self,
        *,
        ttl: float = 120.0,
        max_bytes: int = 64 * 1024 * 1024,
        shared: RedisResendStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.shared = shared
        self._clock = clock or SystemClock()
        self._flights: dict[tuple[str, str], asyncio.Task[tuple[Answer, Hit | None]]] = {}
        self._stored: OrderedDict[tuple[str, str], tuple[float, Answer]] = OrderedDict()
        self._bytes = 0

    @property
    def stored_bytes(self) -> int:
        """Bytes held by stored answers in this process."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._stored)

    async def run(
        self,
        module: str,
        session_id: str,
        produce: Callable[[], Awaitable[Answer]],
        *,
        wait_limit: float,
    ) -> tuple[Answer, Hit | None]:
        """The answer for this command: from a finished run, a running one, or ``produce()``.

        ``wait_limit`` bounds how long a re-send waits for a run on another replica before it
        is answered 429 (the router then backs off and asks again).

        Returns:
            The answer and how a re-send was served (None: this request ran the module).
        """
        key = (module, session_id)
        self._expire()
        stored = self._stored.get(key)
        if stored is not None:
            return stored[1], "stored"
        flight = self._flights.get(key)
        if flight is not None:
            answer, _ = await asyncio.shield(flight)
            return answer, "in_flight"
        flight = asyncio.get_running_loop().create_task(self._fly(key, produce, wait_limit))
        flight.add_done_callback(_retrieve)  # no "exception never retrieved" if all gave up
        self._flights[key] = flight
        return await asyncio.shield(flight)

    async def cancel(self) -> None:
        """Cancel the runs still going (shutdown, past its grace period) and wait for them."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)

    async def _fly(
        self,
        key: tuple[str, str],
        produce: Callable[[], Awaitable[Answer]],
        wait_limit: float,
    ) -> tuple[Answer, Hit | None]:
        try:
            if self.shared is None:
                answer, hit = await produce(), None
            else:
                answer, hit = await self._shared_flight(self.shared, key, produce, wait_limit)
        finally:
            del self._flights[key]
        if answer.final:
            self._keep(key, answer)
        return answer, hit

    async def _shared_flight(
        self,
        shared: RedisResendStore,
        key: tuple[str, str],
        produce: Callable[[], Awaitable[Answer]],
        wait_limit: float,
    ) -> tuple[Answer, Hit | None]:
        redis_key = shared.key(*key)
        token = secrets.token_hex(8)
        give_up = self._clock.monotonic() + wait_limit
        while True:
            try:
                held = await shared.claim(redis_key, token, wait_limit + self._margin())
            except shared.errors as exc:
                shared.warner.warn("re-send guard check", exc)
                return await produce(), None
            if held is None:
                break  # ours: run it
            if held.startswith("d:"):
                return Answer.from_json(held[2:]), "stored"
            # Another replica runs it: wait for its answer (or for its marker to go away).
            while True:
                left = give_up - self._clock.monotonic()
                if left <= 1e-9:
                    return _busy_elsewhere(key[0]), "in_flight"
                await self._clock.sleep(min(shared.poll_interval, left))
                try:
                    held = await shared.get(redis_key)
                except shared.errors as exc:
                    shared.warner.warn("re-send guard check", exc)
                    return await produce(), None
                if held is None:
                    break  # the other replica died or released it: claim again
                if held.startswith("d:"):
                    return Answer.from_json(held[2:]), "in_flight"
        try:
            answer = await produce()
        except BaseException:
            await self._release(shared, redis_key, token)
            raise
        try:
            if answer.final:
                await shared.store(redis_key, answer, self.ttl)
            else:
                await shared.release(redis_key, token)
        except shared.errors as exc:
            shared.warner.warn("re-send guard update", exc)
        return answer, None

    @staticmethod
    async def _release(shared: RedisResendStore, key: str, token: str) -> None:
        try:
            await shared.release(key, token)
        except shared.errors as exc:
            shared.warner.warn("re-send guard update", exc)

    @staticmethod
    def _margin() -> float:
        return 5.0  # the marker outlives the run a little: the answer replaces it in time

    def _keep(self, key: tuple[str, str], answer: Answer) -> None:
        old = self._stored.pop(key, None)
        if old is not None:
            self._bytes -= old[1].size()
        self._stored[key] = (self._clock.monotonic() + self.ttl, answer)
        self._bytes += answer.size()
        while self._bytes > self.max_bytes and self._stored:
            _, (_, dropped) = self._stored.popitem(last=False)
            self._bytes -= dropped.size()

    def _expire(self) -> None:
        now = self._clock.monotonic()
        # Insertion order is expiry order (one ttl for all): stop at the first live entry.
        while self._stored:
            key, (expires, answer) = next(iter(self._stored.items()))
            if expires > now:
                break
            del self._stored[key]
            self._bytes -= answer.size()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _busy_elsewhere(module: str) -> Answer:
    body = json.dumps(
        {
            "success": False,
            "error": f"module {module!r} is still running this command on another replica: "
            "try again shortly",
            "error_code": ErrorCode.BUSY.value,
        }
    )
    return Answer(429, body, retry_after=True)
