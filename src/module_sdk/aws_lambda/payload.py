"""ExecuteRequest -> the seed's Lambda event (and back), and its encoding with size limits
(pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from module_sdk._models import ExecuteRequest
from module_sdk.aws_lambda.api import EVENT_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT, payload_limit
from module_sdk.aws_lambda.args import join_args, split_args
from module_sdk.errors import PayloadTooLargeError, RequestError

__all__ = [
    "EVENT_PAYLOAD_LIMIT",
    "SYNC_PAYLOAD_LIMIT",
    "build_payload",
    "encode_payload",
    "format_timestamp",
    "payload_limit",
    "request_from_payload",
    "validate_request",
]


# Identifiers travel in logs, keys and headers: no control characters there.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ID_FIELDS = ("command", "user_id", "entity_id", "community_id", "session_id", "platform")
MAX_ID_LENGTH = 1024
# Built once: json.dumps with options builds a new encoder on every call.
_CHECK_ENCODER = json.JSONEncoder(allow_nan=False)
_EVENT_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``: ``2026-11-26T19:25:47.123Z``."""
    # isoformat truncates to milliseconds (as ``microsecond // 1000`` would); "+00:00" -> "Z"
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def validate_request(request: object) -> ExecuteRequest:
    """Check an ExecuteRequest's field types; raise RequestError naming the first bad field."""
    if not isinstance(request, ExecuteRequest):
        raise RequestError(
            f"request must be an ExecuteRequest, not {type(request).__name__}: "
            "build one with ExecuteRequest(command=..., args=[...], ...)"
        )
    for name in _ID_FIELDS:
        value = getattr(request, name)
        if not isinstance(value, str):
            raise RequestError(
                f"ExecuteRequest.{name} must be a string, not {type(value).__name__}"
            )
        if len(value) > MAX_ID_LENGTH:
            raise RequestError(
                f"ExecuteRequest.{name} is {len(value)} characters long: "
                f"at most {MAX_ID_LENGTH} are allowed"
            )
        if _CONTROL_RE.search(value):
            raise RequestError(
                f"ExecuteRequest.{name}={value[:60]!r} contains control characters: remove them"
            )
        if not value.isascii():
            _check_unicode(f"ExecuteRequest.{name}", value)
    if not request.command:
        raise RequestError("ExecuteRequest.command must not be empty")
    if not isinstance(request.args, list | tuple) or not all(
        isinstance(a, str) for a in request.args
    ):
        raise RequestError("ExecuteRequest.args must be a list of strings")
    for index, arg in enumerate(request.args):
        if not arg.isascii():
            _check_unicode(f"ExecuteRequest.args[{index}]", arg)
    if not isinstance(request.metadata, Mapping):
        raise RequestError(
            f"ExecuteRequest.metadata must be a dict, not {type(request.metadata).__name__}"
        )
    try:
        if request.metadata or type(request.metadata) is not dict:  # {} always encodes
            _CHECK_ENCODER.encode(request.metadata)
    except (TypeError, ValueError, RecursionError) as exc:
        raise RequestError(
            f"ExecuteRequest.metadata cannot be encoded as JSON ({exc}): metadata values must "
            "be strings, numbers, booleans, None, lists or dicts"
        ) from exc
    if not isinstance(request.scopes, list | tuple) or not all(
        isinstance(s, str) for s in request.scopes
    ):
        raise RequestError("ExecuteRequest.scopes must be a list of strings")
    return request


def _check_unicode(field: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            f"{field} is not valid Unicode ({exc.reason} at position {exc.start}): "
            "remove lone surrogate characters"
        ) from None


def _section(metadata: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = metadata.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError(
            f"ExecuteRequest.metadata[{key!r}] must be a dict, not {type(value).__name__}"
        )
    return value


def build_payload(request: ExecuteRequest, now: datetime) -> dict[str, Any]:
    """Build the seed's Lambda event from a (validated) request.

    ``request_id`` is the request's ``session_id`` and ``timestamp`` is ``now``: the event is
    built once per ``execute_async`` so both stay identical on every retry.
    """
    metadata = request.metadata
    community = _section(metadata, "community")
    user = _section(metadata, "user")
    entity = _section(metadata, "entity")
    is_event = bool(metadata.get("is_event", False))
    return {
        "community": {
            "id": request.community_id,
            "name": community.get("name"),
            "is_subscribed": bool(community.get("is_subscribed", False)),
            "subscription_order_id": community.get("subscription_order_id"),
            "seat_count": community.get("seat_count", 0),
        },
        "trigger": {
            "type": "event" if is_event else "command",
            "command": request.command,
            "context_text": join_args(request.args),
            "event_type": metadata.get("event_type"),
            "event_data": metadata.get("event_data"),
        },
        "user": {
            "id": request.user_id,
            "username": user.get("username"),
            "platform": request.platform,
            "platform_user_id": user.get("platform_user_id", request.user_id),
        },
        "entity": {
            "id": request.entity_id,
            "platform": request.platform,
            "platform_entity_id": entity.get("platform_entity_id", request.entity_id),
        },
        "request_id": request.session_id,
        "timestamp": format_timestamp(now),
    }


def encode_payload(payload: Mapping[str, Any], invocation_type: str) -> bytes:
    """Encode the event as compact UTF-8 JSON, refusing what Lambda would refuse.

    Raises:
        RequestError: a value is not JSON-serializable (or is NaN/Infinity).
        PayloadTooLargeError: the encoded event is over the limit for ``invocation_type``.
    """
    try:
        text = _EVENT_ENCODER.encode(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise RequestError(
            f"the request cannot be encoded as JSON ({exc}): metadata values must be "
            "strings, numbers, booleans, None, lists or dicts"
        ) from exc
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            f"the request contains text that is not valid Unicode ({exc.reason} at position "
            f"{exc.start}): remove lone surrogate characters"
        ) from exc
    limit = payload_limit(invocation_type)
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"the Lambda event is {len(body):,} bytes, over the {limit:,}-byte limit for "
            f"{invocation_type} invocations: send less metadata or args (or pass a reference, "
            "such as an S3 key, instead of the data)",
            size=len(body),
            limit=limit,
        )
    return body


def _stored_section(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def request_from_payload(payload: object) -> ExecuteRequest:
    """The ExecuteRequest a built Lambda event stands for: the inverse of
    :func:`build_payload` (for policies keyed on the request when a stored event is re-sent).

    Only ``request_id`` is required; the event itself is what gets sent, unchanged.

    Raises:
        RequestError: ``payload`` is not a dict, or has no ``request_id``.
    """
    if not isinstance(payload, Mapping):
        raise RequestError(f"payload must be a dict (a Lambda event), not {type(payload).__name__}")
    request_id = payload.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise RequestError(
            "payload['request_id'] must be a non-empty string: it is the id functions use to "
            "recognise a repeated event"
        )
    trigger = _stored_section(payload, "trigger")
    user = _stored_section(payload, "user")
    entity = _stored_section(payload, "entity")
    community = _stored_section(payload, "community")
    context_text = _text(trigger.get("context_text"))
    return ExecuteRequest(
        command=_text(trigger.get("command")) or "replay",
        args=split_args(context_text) if context_text else [],
        user_id=_text(user.get("id")),
        entity_id=_text(entity.get("id")),
        community_id=_text(community.get("id")),
        session_id=request_id,
        platform=_text(user.get("platform") or entity.get("platform")),
        metadata={"is_event": trigger.get("type") == "event"},
    )
