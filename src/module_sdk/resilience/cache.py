"""The response cache: answer repeated requests for chosen commands without calling Lambda.

Opt-in per command with a TTL. The key is the function (region, name, qualifier) and the
Lambda event without its per-request fields (``request_id``, ``timestamp``): the same command
with the same args from the same user in the same community hits. Only successful replies of
synchronous (``RequestResponse``) calls are stored, as the function answered them (what the
SDK observed about the call is in ``ExecuteResponse.diagnostics``, which is never stored). A
hit is a fresh object decoded from the stored JSON (no mutable object is ever shared between
hits); the policy marks the invocation (``invocation.cache_hit``), and the adapter reports it
as ``diagnostics.cache_hit``.

In-process entries live in a bounded LRU (cachetools' ``LRUCache``) with a per-entry expiry
checked against the policy's ``now()``; Redis entries expire with their TTL (bound the whole cache
there with the server's ``maxmemory`` / ``allkeys-lru`` policy).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from cachetools import LRUCache

from module_sdk._models import ExecuteResponse
from module_sdk._validate import integer, number
from module_sdk.errors import ConfigurationError

if TYPE_CHECKING:
    from module_sdk.aws_lambda.naming import FunctionTarget
    from module_sdk.resilience.pipeline import Handler, Invocation

__all__ = [
    "EXCLUDED_FIELDS",
    "CacheStore",
    "MemoryCacheStore",
    "ResponseCacheConfig",
    "ResponseCachePolicy",
    "cache_key",
]

logger = logging.getLogger(__name__)

EXCLUDED_FIELDS = frozenset({"request_id", "timestamp"})
"""Event fields left out of the cache key (they differ on every request)."""


@dataclass(frozen=True, slots=True)
class ResponseCacheConfig:
    """Response-cache settings for ``LambdaAdapter(cache=...)``.

    Args:
        commands: command name -> time to live in seconds; only these commands are cached.
        max_entries: the in-process LRU's size (least recently used entries go first).
    """

    commands: Mapping[str, float] = field(default_factory=dict)
    max_entries: int = 1024

    def __post_init__(self) -> None:
        if not isinstance(self.commands, Mapping) or not self.commands:
            raise ConfigurationError(
                "ResponseCacheConfig(commands=...) must map at least one command name to a "
                "TTL in seconds, such as {'help': 300}"
            )
        for command, ttl in self.commands.items():
            if not isinstance(command, str) or not command:
                raise ConfigurationError(
                    f"ResponseCacheConfig(commands=...) has key {command!r}: use command names"
                )
            try:
                number("ttl", ttl)
            except ConfigurationError:
                raise ConfigurationError(
                    f"ResponseCacheConfig(commands={{{command!r}: {ttl!r}}}) is invalid: "
                    "the TTL must be a finite number of seconds > 0"
                ) from None
        object.__setattr__(
            self, "commands", MappingProxyType({c: float(t) for c, t in self.commands.items()})
        )
        integer("max_entries", self.max_entries, owner="ResponseCacheConfig")


def cache_key(target: FunctionTarget, region: str, payload: Mapping[str, Any]) -> str:
    """A SHA-256 hex key over the function and the event minus its per-request fields.

    Keys are not sorted: the event is built in a fixed order, and two equal events built in
    different orders would only miss, never hit wrongly.
    """
    stable = {k: v for k, v in payload.items() if k not in EXCLUDED_FIELDS}
    text = _dumps([region, target.function_name, target.qualifier, stable])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
_dumps_strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_response(response: ExecuteResponse) -> str:
    """The JSON stored for a reply: the function's answer (its diagnostics are per call)."""
    return _dumps_strict(
        {
            "success": response.success,
            "message": response.message,
            "data": response.data,
            "error": response.error,
            "targets": response.targets,
            "error_code": response.error_code,
        }
    )


def decode_hit(text: str | bytes) -> ExecuteResponse:
    """A fresh response from stored JSON."""
    record = json.loads(text)
    return ExecuteResponse(
        success=bool(record.get("success", True)),
        message=record.get("message"),
        data=record.get("data"),
        error=record.get("error"),
        targets=list(record.get("targets") or []),
        error_code=record.get("error_code"),
    )


class CacheStore(Protocol):
    """Where cached replies live (this process, or Redis)."""

    async def get(self, key: str, now: float) -> str | bytes | None:
        """The stored JSON for ``key`` if present and not expired at ``now``."""
        ...

    async def set(self, key: str, value: str, ttl: float, now: float) -> None:
        """Store ``value`` for ``ttl`` seconds from ``now``."""
        ...


class MemoryCacheStore:
    """A bounded in-process LRU (cachetools ``LRUCache``); each entry expires at the time
    given when it was stored plus its TTL.

    An expired entry is dropped when it is next read, or pushed out by newer ones.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: LRUCache[str, tuple[float, str]] = LRUCache(maxsize=max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str, now: float) -> str | None:
        """The stored JSON, or None (expired entries are never returned)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now < entry[0]:
            return entry[1]
        self._entries.pop(key, None)
        return None

    async def set(self, key: str, value: str, ttl: float, now: float) -> None:
        """Store ``value`` until ``now + ttl``."""
        self._entries[key] = (now + ttl, value)


class ResponseCachePolicy:
    """The pipeline step: answer from the cache, or call through and store a success.

    Args:
        config: the cached commands and their TTLs.
        target / region: the function (part of every key).
        store: where replies live (:class:`MemoryCacheStore` or a shared store).
        now: the time given to the store (it must mean the same to every user of the store).
    """

    def __init__(
        self,
        config: ResponseCacheConfig,
        *,
        target: FunctionTarget,
        region: str,
        store: CacheStore,
        now: Callable[[], float],
    ) -> None:
        self.config = config
        self.target = target
        self.region = region
        self.store = store
        self._now = now

    def ttl_for(self, invocation: Invocation) -> float | None:
        """The TTL if this call's reply may be cached, else None."""
        if invocation.invocation_type != "RequestResponse":
            return None
        return self.config.commands.get(invocation.request.command)

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """Serve a hit, or call ``call_next`` and keep a successful reply for its TTL."""
        ttl = self.ttl_for(invocation)
        if ttl is None:
            return await call_next(invocation)
        key = cache_key(self.target, self.region, invocation.payload)
        hit = await self._lookup(key, invocation)
        if hit is not None:
            invocation.cache_hit = True
            return hit
        response = await call_next(invocation)
        if response.success:
            await self._store(key, ttl, response, invocation)
        return response

    async def _lookup(self, key: str, invocation: Invocation) -> ExecuteResponse | None:
        try:
            stored = await self.store.get(key, self._now())
        except Exception:
            logger.warning("reading the response cache failed; calling the function")
            return None
        if stored is None:
            return None
        try:
            return decode_hit(stored)
        except (ValueError, TypeError, AttributeError):
            logger.warning("ignoring an unreadable cache entry for %r", invocation.command)
            return None

    async def _store(
        self, key: str, ttl: float, response: ExecuteResponse, invocation: Invocation
    ) -> None:
        try:
            value = encode_response(response)
        except (TypeError, ValueError):
            logger.warning("reply to %r is not JSON-ready: not cached", invocation.command)
            return
        try:
            await self.store.set(key, value, ttl, self._now())
        except Exception:
            logger.warning("storing a reply in the response cache failed")
