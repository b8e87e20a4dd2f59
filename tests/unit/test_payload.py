"""ExecuteRequest -> the seed's Lambda event, and its encoding limits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from module_sdk import ExecuteRequest
from module_sdk.aws_lambda.payload import (
    EVENT_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    build_payload,
    encode_payload,
    format_timestamp,
    validate_request,
)
from module_sdk.errors import ErrorCode, PayloadTooLargeError, RequestError

NOW = datetime(2026, 11, 26, 19, 25, 47, 123456, tzinfo=UTC)


def make_request(**overrides: Any) -> ExecuteRequest:
    """A realistic chat command."""
    request = ExecuteRequest(
        command="!weather",
        args=["London", "UK"],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id="sess-1",
        platform="twitch",
        metadata={
            "community": {
                "name": "Penguins",
                "is_subscribed": True,
                "subscription_order_id": "ord-9",
                "seat_count": 5,
            },
            "user": {"username": "waddles", "platform_user_id": "tw-77"},
            "entity": {"platform_entity_id": "chan-3"},
        },
        scopes=["chat:read"],
    )
    return replace(request, **overrides)


def test_payload_has_exactly_the_seed_structure() -> None:
    """Every key of the seed's payload, filled from the request and metadata."""
    assert build_payload(make_request(), NOW) == {
        "community": {
            "id": "c-1",
            "name": "Penguins",
            "is_subscribed": True,
            "subscription_order_id": "ord-9",
            "seat_count": 5,
        },
        "trigger": {
            "type": "command",
            "command": "!weather",
            "context_text": "London UK",
            "event_type": None,
            "event_data": None,
        },
        "user": {
            "id": "u-1",
            "username": "waddles",
            "platform": "twitch",
            "platform_user_id": "tw-77",
        },
        "entity": {"id": "e-1", "platform": "twitch", "platform_entity_id": "chan-3"},
        "request_id": "sess-1",
        "timestamp": "2026-11-26T19:25:47.123Z",
    }


def test_event_trigger_and_defaults() -> None:
    """An event request sets trigger.type 'event'; missing metadata gets defaults."""
    request = make_request(
        metadata={"is_event": True, "event_type": "follow", "event_data": {"who": "x"}}
    )
    payload = build_payload(request, NOW)
    assert payload["trigger"]["type"] == "event"
    assert payload["trigger"]["event_type"] == "follow"
    assert payload["trigger"]["event_data"] == {"who": "x"}
    assert payload["community"] == {
        "id": "c-1",
        "name": None,
        "is_subscribed": False,
        "subscription_order_id": None,
        "seat_count": 0,
    }
    assert payload["user"]["platform_user_id"] == "u-1"
    assert payload["entity"]["platform_entity_id"] == "e-1"


def test_timestamp_is_utc_with_z() -> None:
    """Timestamps are converted to UTC and end in Z."""
    plus_two = datetime(2026, 1, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(plus_two) == "2026-01-01T00:00:00.000Z"


def test_metadata_section_must_be_a_dict() -> None:
    """A metadata section of the wrong type is a RequestError naming it."""
    with pytest.raises(RequestError, match=r"metadata\['user'\] must be a dict"):
        build_payload(make_request(metadata={"user": "bob"}), NOW)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"command": 5}, "command must be a string"),
        ({"command": ""}, "command must not be empty"),
        ({"user_id": None}, "user_id must be a string"),
        ({"session_id": "a\x00b"}, "control characters"),
        ({"platform": "x" * 2000}, "at most 1024"),
        ({"args": "one two"}, "args must be a list of strings"),
        ({"args": ["ok", 3]}, "args must be a list of strings"),
        ({"metadata": []}, "metadata must be a dict"),
        ({"scopes": [None]}, "scopes must be a list of strings"),
        ({"user_id": "u\ud800"}, r"ExecuteRequest.user_id is not valid Unicode"),
        ({"args": ["ok", "\udfff"]}, r"ExecuteRequest.args\[1\] is not valid Unicode"),
    ],
    ids=[
        "command-int",
        "command-empty",
        "user-none",
        "nul",
        "huge",
        "args-str",
        "args-int",
        "metadata-list",
        "scopes",
        "surrogate-id",
        "surrogate-arg",
    ],
)
def test_validate_request_rejects(overrides: dict[str, Any], fragment: str) -> None:
    """Wrong field types and control characters are refused with the field's name."""
    with pytest.raises(RequestError, match=fragment) as info:
        validate_request(make_request(**overrides))
    assert info.value.error_code == ErrorCode.INVALID_REQUEST


def test_validate_request_rejects_other_objects() -> None:
    """Only ExecuteRequest objects are accepted."""
    with pytest.raises(RequestError, match="must be an ExecuteRequest"):
        validate_request({"command": "!x"})


def test_encode_is_compact_utf8() -> None:
    """Encoding is compact JSON in UTF-8 (no ASCII escapes)."""
    body = encode_payload({"text": "héllo 🐧"}, "RequestResponse")
    assert body == '{"text":"héllo 🐧"}'.encode()


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, float("nan"), b"bytes"], ids=["object", "set", "nan", "bytes"]
)
def test_encode_rejects_non_json(value: object) -> None:
    """Non-JSON values give invalid_request with a fix."""
    with pytest.raises(RequestError, match="cannot be encoded as JSON") as info:
        encode_payload({"metadata": value}, "RequestResponse")
    assert info.value.error_code == ErrorCode.INVALID_REQUEST


def test_encode_rejects_lone_surrogates() -> None:
    """Text that is not valid Unicode is refused, not sent as broken UTF-8."""
    with pytest.raises(RequestError, match="not valid Unicode"):
        encode_payload({"x": "\ud800"}, "RequestResponse")


@pytest.mark.parametrize(
    ("invocation_type", "limit"),
    [
        ("RequestResponse", SYNC_PAYLOAD_LIMIT),
        ("Event", EVENT_PAYLOAD_LIMIT),
        ("DryRun", SYNC_PAYLOAD_LIMIT),
    ],
)
def test_size_limits(invocation_type: str, limit: int) -> None:
    """Exactly at the limit passes; one byte over is payload_too_large."""
    overhead = len(json.dumps({"x": ""}, separators=(",", ":")))
    assert len(encode_payload({"x": "a" * (limit - overhead)}, invocation_type)) == limit
    with pytest.raises(PayloadTooLargeError) as info:
        encode_payload({"x": "a" * (limit - overhead + 1)}, invocation_type)
    assert info.value.size == limit + 1
    assert info.value.limit == limit
    assert info.value.error_code == ErrorCode.PAYLOAD_TOO_LARGE
    assert f"{limit:,}-byte limit for {invocation_type}" in str(info.value)
