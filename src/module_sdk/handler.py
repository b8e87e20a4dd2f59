"""Write a WaddleBot module's Lambda function: the event, the reply and a handler decorator.

Standard library only: importing this module inside a Lambda function pulls in neither
aiobotocore, botocore nor aiohttp, so a function's deployment package stays small.

- :class:`Event`: a typed, read-only view of the event the adapter sends (``Event.parse``
  raises :class:`EventError` for anything that is not a WaddleBot event).
- :class:`Reply`: builds the flat JSON reply the adapter parses (text, embed, overlay,
  browser-source, error; targets; extra keys), or its API-Gateway form.
- :class:`ReplyError`: raise it for an answer such as "unknown city": it becomes an error reply.
- :func:`module_handler`: turns ``def handle(event: Event, context) -> Reply`` into a Lambda
  handler that parses the event, answers exceptions with a clean error reply (logged with the
  request id) and never lets out a reply the adapter would reject.

```python
from module_sdk.handler import Event, Reply, ReplyError, module_handler

@module_handler
def handler(event: Event, context: object) -> Reply:
    if not event.args:
        raise ReplyError("usage: !weather CITY")
    return Reply.text(f"Sunny in {' '.join(event.args)}")
```
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias, overload

from module_sdk.aws_lambda.args import split_args
from module_sdk.aws_lambda.limits import MAX_REPLY_DEPTH, too_deep
from module_sdk.aws_lambda.payload import SYNC_PAYLOAD_LIMIT

__all__ = [
    "MAX_REPLY_BYTES",
    "Community",
    "Entity",
    "Event",
    "EventError",
    "Reply",
    "ReplyError",
    "Target",
    "Trigger",
    "User",
    "module_handler",
]

logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = SYNC_PAYLOAD_LIMIT
"""Lambda's limit for a synchronous reply (6 MB): a larger reply never reaches the adapter."""

Target: TypeAlias = "str | Mapping[str, Any]"
"""A reply target: a platform name (``"discord"``) or a dict with a ``type``."""

ResponseType = Literal["text", "embed", "overlay", "browser_source"]


class EventError(ValueError):
    """The event is not a WaddleBot event; the message names the field and what was expected."""


class ReplyError(Exception):
    """An answer that is a failure ("unknown city"): :func:`module_handler` replies with it.

    The message is shown to the chat user as the reply's ``error``; ``data`` adds keys to the
    reply.
    """

    def __init__(self, error: str, **data: Any) -> None:
        super().__init__(error)
        self.error = error
        self.data = data


# -- the event ------------------------------------------------------------------------------


def _section(event: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = event.get(key)
    if not isinstance(value, Mapping):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise EventError(
            f"event[{key!r}] must be an object, but it is {found}: this function expects the "
            "event a WaddleBot LambdaAdapter sends (community, trigger, user, entity, "
            "request_id, timestamp)"
        )
    return value


def _id(section: Mapping[str, Any], path: str, key: str) -> str:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventError(f"event[{path!r}][{key!r}] must be a string, not {_kind(value)}")
    return str(value)


def _optional_text(section: Mapping[str, Any], path: str, key: str) -> str | None:
    value = section.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise EventError(f"event[{path!r}][{key!r}] must be a string or null, not {_kind(value)}")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True, slots=True)
class Community:
    """``event["community"]``: the community (server, channel owner) the command came from."""

    id: str
    name: str | None = None
    is_subscribed: bool = False
    subscription_order_id: str | None = None
    seat_count: int = 0


@dataclass(frozen=True, slots=True)
class Trigger:
    """``event["trigger"]``: a chat command (``!roll 2d6``) or a platform event (a follow)."""

    type: Literal["command", "event"]
    command: str
    context_text: str = ""
    event_type: str | None = None
    event_data: Any = None

    @property
    def args(self) -> tuple[str, ...]:
        """The command's words, split the way the module server splits the router's ``args``."""
        return tuple(split_args(self.context_text))


@dataclass(frozen=True, slots=True)
class User:
    """``event["user"]``: who sent the command."""

    id: str
    username: str | None = None
    platform: str = ""
    platform_user_id: str = ""


@dataclass(frozen=True, slots=True)
class Entity:
    """``event["entity"]``: where it was sent (a channel, a ``guild:channel``)."""

    id: str
    platform: str = ""
    platform_entity_id: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """A typed, read-only view of the event the WaddleBot adapter sends to a function.

    Build it with :meth:`Event.parse`; :meth:`to_dict` gives the event back as received.
    """

    community: Community
    trigger: Trigger
    user: User
    entity: Entity
    request_id: str
    """The chat session id: identical on every delivery of one command (deduplicate on it)."""
    timestamp: str
    """When the adapter built the event: UTC ISO 8601 with milliseconds (``...T19:25:47.123Z``)."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, event: object) -> Event:
        """Check and read an event; raise :class:`EventError` naming the first bad field."""
        if not isinstance(event, Mapping):
            raise EventError(
                f"the event must be a JSON object, not {_kind(event)}: this function expects "
                "the event a WaddleBot LambdaAdapter sends"
            )
        request_id = event.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise EventError(
                f"event['request_id'] must be a non-empty string, not {_kind(request_id)}: "
                "this function expects the event a WaddleBot LambdaAdapter sends"
            )
        timestamp = event.get("timestamp")
        if not isinstance(timestamp, str):
            raise EventError(f"event['timestamp'] must be a string, not {_kind(timestamp)}")
        try:
            datetime.fromisoformat(timestamp)
        except ValueError:
            raise EventError(
                f"event['timestamp']={timestamp[:40]!r} is not an ISO 8601 time "
                "(expected e.g. '2026-11-26T19:25:47.123Z')"
            ) from None
        trigger = _section(event, "trigger")
        trigger_type = trigger.get("type", "command")
        if trigger_type not in ("command", "event"):
            raise EventError(
                f"event['trigger']['type'] must be 'command' or 'event', not {trigger_type!r}"
            )
        command = trigger.get("command")
        if not isinstance(command, str):
            raise EventError(f"event['trigger']['command'] must be a string, not {_kind(command)}")
        community = _section(event, "community")
        user = _section(event, "user")
        entity = _section(event, "entity")
        seat_count = community.get("seat_count") or 0
        if isinstance(seat_count, bool) or not isinstance(seat_count, int):
            raise EventError(
                f"event['community']['seat_count'] must be an integer, not {_kind(seat_count)}"
            )
        user_id = _id(user, "user", "id")
        entity_id = _id(entity, "entity", "id")
        return cls(
            community=Community(
                id=_id(community, "community", "id"),
                name=_optional_text(community, "community", "name"),
                is_subscribed=bool(community.get("is_subscribed", False)),
                subscription_order_id=_optional_text(
                    community, "community", "subscription_order_id"
                ),
                seat_count=seat_count,
            ),
            trigger=Trigger(
                type=trigger_type,
                command=command,
                context_text=_optional_text(trigger, "trigger", "context_text") or "",
                event_type=_optional_text(trigger, "trigger", "event_type"),
                event_data=trigger.get("event_data"),
            ),
            user=User(
                id=user_id,
                username=_optional_text(user, "user", "username"),
                platform=_optional_text(user, "user", "platform") or "",
                platform_user_id=_optional_text(user, "user", "platform_user_id") or user_id,
            ),
            entity=Entity(
                id=entity_id,
                platform=_optional_text(entity, "entity", "platform") or "",
                platform_entity_id=_optional_text(entity, "entity", "platform_entity_id")
                or entity_id,
            ),
            request_id=request_id,
            timestamp=timestamp,
            raw=event,
        )

    @property
    def command(self) -> str:
        """The chat command as typed, prefix and case kept (``"!roll"``)."""
        return self.trigger.command

    @property
    def args(self) -> tuple[str, ...]:
        """The command's words: ``!weather "New York" tomorrow`` -> ``("New York", "tomorrow")``."""
        return self.trigger.args

    @property
    def text(self) -> str:
        """The command's arguments as one string (``trigger.context_text``)."""
        return self.trigger.context_text

    @property
    def is_command(self) -> bool:
        """Whether a chat command triggered the function."""
        return self.trigger.type == "command"

    @property
    def is_event(self) -> bool:
        """Whether a platform event (a follow, a subscription...) triggered the function."""
        return self.trigger.type == "event"

    @property
    def platform(self) -> str:
        """The chat platform (``twitch``, ``discord``...)."""
        return self.user.platform or self.entity.platform

    @property
    def time(self) -> datetime:
        """``timestamp`` as an aware datetime."""
        return datetime.fromisoformat(self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        """The event as received (a shallow copy)."""
        return dict(self.raw)


# -- the reply ------------------------------------------------------------------------------

_BUILT = ("response_type", "overlay_data", "browser_source_url", "embed", "targets")


def _target(value: object) -> str | dict[str, Any]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("type"), str) and value["type"]:
        return dict(value)
    raise ValueError(
        f"a target must be a platform name such as 'discord' or a dict with a 'type' "
        f"(e.g. {{'type': 'discord', 'channel_id': '123'}}), not {value!r:.80}"
    )


class Reply:
    """A function's reply in the handler contract's flat JSON (build it with the class methods).

    ``Reply.text("4 and 2")``, ``Reply.embed("Weather", fields={"London": "12 C"})``,
    ``Reply.overlay({"gif": "..."})``, ``Reply.browser_source("https://...")``,
    ``Reply.error("unknown city")``; ``.to("discord", {"type": "slack", "channel_id": "1"})``
    adds targets and ``.with_data(key=value)`` extra keys. :meth:`to_dict` is the JSON the
    adapter parses; :meth:`to_api_gateway` wraps it as ``{"statusCode", "body"}``.

    ``Reply(mapping)`` checks a reply written as a dict: ``success`` a bool (missing: true
    unless ``error`` is set, as the adapter reads it), a failure has an ``error`` text,
    ``message`` and ``error`` are strings, ``targets`` are platform names or dicts with a
    ``type``. Every other key is kept as it is.
    """

    __slots__ = ("_reply",)

    def __init__(self, reply: Mapping[str, Any]) -> None:
        if not isinstance(reply, Mapping):
            raise TypeError(f"a reply is a dict, not {type(reply).__name__}")
        checked = dict(reply)
        error = checked.get("error")
        if error is not None and not isinstance(error, str):
            raise ValueError(f"reply['error'] must be a string, not {type(error).__name__}")
        success = checked.setdefault("success", not error)
        if not isinstance(success, bool):
            raise ValueError(
                f"reply['success'] must be true or false, not {success!r:.40}: the adapter "
                "reads strings such as 'false' loosely, write a bool"
            )
        if not success and not error:
            raise ValueError("a failed reply needs an error text: use Reply.error('...')")
        message = checked.get("message")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"reply['message'] must be a string, not {type(message).__name__}")
        targets = checked.get("targets")
        if targets is not None:
            if isinstance(targets, str | Mapping):
                targets = [targets]
            if not isinstance(targets, list | tuple):
                raise ValueError(f"reply['targets'] must be a list, not {type(targets).__name__}")
            checked["targets"] = [_target(t) for t in targets]
        self._reply = checked

    @classmethod
    def _build(cls, success: bool, message: str | None, response_type: str, **fields: Any) -> Reply:
        extra = fields.pop("data")
        clash = sorted(set(extra) & {"success", "message", "error", *_BUILT})
        if clash:
            raise ValueError(
                f"extra reply keys {clash} are reply fields: pass them as arguments "
                "(targets through .to(...)) instead"
            )
        reply: dict[str, Any] = {
            "success": success,
            "message": message,
            "response_type": response_type,
            "overlay_data": None,
            "browser_source_url": None,
            "targets": [],
        }
        reply.update(fields)
        reply.update(extra)
        return cls(reply)

    @classmethod
    def text(cls, message: str, **data: Any) -> Reply:
        """A chat message (``response_type: "text"``); ``data`` adds keys to the reply."""
        return cls._build(True, message, "text", data=data)

    @classmethod
    def embed(
        cls,
        title: str,
        description: str | None = None,
        *,
        fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        url: str | None = None,
        color: int | None = None,
        image_url: str | None = None,
        message: str | None = None,
        **data: Any,
    ) -> Reply:
        """A rich card (``response_type: "embed"``, the card under ``embed``).

        ``message`` (default: the title and description) is the plain-text form for platforms
        without embeds.
        """
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        card: dict[str, Any] = {
            "title": title,
            "description": description,
            "fields": [{"name": str(name), "value": str(value)} for name, value in pairs],
        }
        for key, value in (("url", url), ("color", color), ("image_url", image_url)):
            if value is not None:
                card[key] = value
        if message is None:
            message = f"{title}: {description}" if description else title
        return cls._build(True, message, "embed", embed=card, data=data)

    @classmethod
    def overlay(cls, overlay_data: Any, *, message: str | None = None, **data: Any) -> Reply:
        """Something for the stream overlay (``response_type: "overlay"``, ``overlay_data``)."""
        return cls._build(True, message, "overlay", overlay_data=overlay_data, data=data)

    @classmethod
    def browser_source(cls, url: str, *, message: str | None = None, **data: Any) -> Reply:
        """A page for the streamer's browser source (``browser_source_url``)."""
        return cls._build(True, message, "browser_source", browser_source_url=url, data=data)

    @classmethod
    def error(cls, error: str, *, message: str | None = None, **data: Any) -> Reply:
        """A failure answer (``success: false``): the adapter reports it as ``module_error``."""
        if not isinstance(error, str) or not error:
            raise ValueError("Reply.error needs the error text to show, e.g. 'unknown city'")
        return cls._build(False, message, "text", error=error, data=data)

    @property
    def success(self) -> bool:
        """Whether the reply is a success."""
        return bool(self._reply["success"])

    @property
    def message(self) -> str | None:
        """The text for the chat."""
        return self._reply.get("message")

    @property
    def targets(self) -> list[str | dict[str, Any]]:
        """Where the reply goes (empty: where the command came from)."""
        return list(self._reply.get("targets") or [])

    def to(self, *targets: Target) -> Reply:
        """A copy with more targets: ``"discord"`` or ``{"type": "slack", "channel_id": "1"}``."""
        added = [_target(t) for t in targets]
        return Reply({**self._reply, "targets": self.targets + added})

    def with_data(self, **data: Any) -> Reply:
        """A copy with more extra keys (the adapter keeps them in ``ExecuteResponse.data``)."""
        return Reply({**self._reply, **data})

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON reply of the handler contract (a copy)."""
        reply = dict(self._reply)
        if "targets" in reply:
            reply["targets"] = [t if isinstance(t, str) else dict(t) for t in reply["targets"]]
        return reply

    def to_api_gateway(self, status_code: int = 200) -> dict[str, Any]:
        """The reply as API Gateway's proxy answer: ``{"statusCode", "headers", "body"}``.

        For a function that also sits behind API Gateway; the adapter unwraps it (a non-2xx
        ``status_code`` is a failure).
        """
        return api_gateway(self._reply, status_code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and self._reply == other._reply

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Reply({self._reply!r:.200})"


def api_gateway(reply: Mapping[str, Any], status_code: int = 200) -> dict[str, Any]:
    """Wrap a flat reply as API Gateway's proxy answer (the body is the reply as JSON text)."""
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(reply, ensure_ascii=False, allow_nan=False),
    }


# -- the decorator --------------------------------------------------------------------------

Result: TypeAlias = "Reply | Mapping[str, Any] | str"
SyncHandler: TypeAlias = Callable[[Event, Any], Result]
AsyncHandler: TypeAlias = Callable[[Event, Any], Awaitable[Result]]
LambdaHandler: TypeAlias = Callable[[Any, Any], dict[str, Any]]
AsyncLambdaHandler: TypeAlias = Callable[[Any, Any], "dict[str, Any] | Awaitable[dict[str, Any]]"]
"""An async handler's Lambda handler: the reply, or an awaitable of it inside a running loop."""


class _Refused(Exception):
    """The reply cannot leave the function; ``args[0]`` says why (for the log)."""


def _request_id(event: object) -> str:
    if isinstance(event, Mapping) and isinstance(event.get("request_id"), str):
        return str(event["request_id"])[:200]
    return "-"


@dataclass(frozen=True, slots=True)
class _Options:
    api_gateway: bool
    max_reply_bytes: int
    expose_errors: bool
    log: logging.Logger


def _finish(options: _Options, request_id: str, result: object) -> dict[str, Any]:
    """Turn what the handler returned into the reply that leaves the function."""
    if isinstance(result, Reply):
        reply = result.to_dict()
    elif isinstance(result, str):
        reply = Reply.text(result).to_dict()
    elif isinstance(result, Mapping):
        reply = dict(result)  # passed as written: the adapter reads dicts loosely
    else:
        options.log.error(
            "handler returned %s for request %s: return a Reply, a dict or a str",
            type(result).__name__,
            request_id,
        )
        return _wrap(options, _internal(options, request_id, None))
    try:
        _check(reply, options.max_reply_bytes)
    except _Refused as exc:
        options.log.error("reply refused for request %s: %s", request_id, exc)
        refused = Reply.error(f"the module's reply was refused ({exc}) (request {request_id})")
        return _wrap(options, refused.to_dict())
    return _wrap(options, reply)


def _check(reply: dict[str, Any], limit: int) -> None:
    """Raise _Refused for a reply the adapter would turn into ``invalid_response``."""
    try:
        # What the Lambda runtime sends (its json.dumps escapes non-ASCII, the larger form).
        text = json.dumps(reply, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Refused(f"it cannot be encoded as JSON: {exc}") from None
    size = len(text)
    if size > limit:
        raise _Refused(f"it is {size:,} bytes, over Lambda's {limit:,}-byte reply limit")
    if text.count("[") + text.count("{") > MAX_REPLY_DEPTH and too_deep(json.loads(text)):
        raise _Refused(f"it nests lists or objects more than {MAX_REPLY_DEPTH} levels deep")


def _wrap(options: _Options, reply: dict[str, Any]) -> dict[str, Any]:
    return api_gateway(reply) if options.api_gateway else reply


def _internal(options: _Options, request_id: str, exc: BaseException | None) -> dict[str, Any]:
    detail = f"{type(exc).__name__}: {exc}" if options.expose_errors and exc else "internal error"
    return Reply.error(f"the module failed: {detail} (request {request_id})").to_dict()


def _answer_exception(options: _Options, request_id: str, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ReplyError):
        return _finish(options, request_id, Reply.error(exc.error, **exc.data))
    if isinstance(exc, EventError):
        options.log.warning("not a WaddleBot event (request %s): %s", request_id, exc)
        return _wrap(options, Reply.error(f"not a WaddleBot event: {exc}").to_dict())
    options.log.exception("handler failed for request %s", request_id)
    return _wrap(options, _internal(options, request_id, exc))


@overload
def module_handler(func: AsyncHandler, /) -> AsyncLambdaHandler: ...
@overload
def module_handler(func: SyncHandler, /) -> LambdaHandler: ...
@overload
def module_handler(
    *,
    api_gateway: bool = False,
    max_reply_bytes: int = MAX_REPLY_BYTES,
    expose_errors: bool = False,
    log: logging.Logger | None = None,
) -> Callable[[Any], Any]: ...


def module_handler(
    func: Any = None,
    /,
    *,
    api_gateway: bool = False,
    max_reply_bytes: int = MAX_REPLY_BYTES,
    expose_errors: bool = False,
    log: logging.Logger | None = None,
) -> Any:
    """Make ``func(event: Event, context) -> Reply | dict | str`` a Lambda handler.

    The handler it returns (for an ``async def`` too, a plain function, as AWS's Python
    runtime needs: it runs the coroutine with ``asyncio.run``, or returns it to a caller
    that is itself running an event loop):

    - parses the event into :class:`Event` (not a WaddleBot event: an error reply, logged);
    - turns :class:`ReplyError` into ``Reply.error(...)`` and any other exception into the error
      reply ``"the module failed: internal error (request <id>)"``, logged with its traceback
      and the request id (``expose_errors=True`` puts the exception's type and text in the
      reply; off by default, as they may hold file paths or secrets);
    - refuses a reply the adapter would reject (not JSON-serializable, NaN, over
      ``max_reply_bytes``, nested too deep), answering an error reply instead;
    - answers the flat JSON, or API Gateway's ``{"statusCode", "body"}`` with
      ``api_gateway=True``.

    Use it bare (``@module_handler``) or with options (``@module_handler(api_gateway=True)``).
    """
    if max_reply_bytes <= 0:
        raise ValueError(f"max_reply_bytes must be positive, not {max_reply_bytes}")
    options = _Options(api_gateway, max_reply_bytes, expose_errors, log or logger)

    def decorate(fn: Any) -> Any:
        if inspect.iscoroutinefunction(fn):
            return _async_handler(fn, options)

        @functools.wraps(fn)
        def handler(event: Any, context: Any) -> dict[str, Any]:
            request_id = _request_id(event)
            try:
                result = fn(Event.parse(event), context)
            except Exception as exc:
                return _answer_exception(options, request_id, exc)
            return _finish(options, request_id, result)

        return handler

    return decorate if func is None else decorate(func)


def _async_handler(fn: AsyncHandler, options: _Options) -> AsyncLambdaHandler:
    """The handler of an ``async def``: it runs the coroutine itself where nothing awaits it.

    AWS's Python runtime calls a handler and sends what it returns, so without a running
    event loop the call runs to completion with ``asyncio.run`` (a fresh loop per call: open
    async clients inside the call). Called from a running loop (an in-process test,
    ``HandlerInvoker``, anything that awaits handlers), it returns the awaitable instead.
    """
    import asyncio  # a cold start pays for asyncio only when a handler is async

    async def answer(event: Any, context: Any) -> dict[str, Any]:
        request_id = _request_id(event)
        try:
            result = await fn(Event.parse(event), context)
        except Exception as exc:
            return _answer_exception(options, request_id, exc)
        return _finish(options, request_id, result)

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(answer(event, context))
        return answer(event, context)

    return handler
