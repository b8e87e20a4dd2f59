"""module_sdk.handler: the typed event, the reply builder and the handler decorator."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.args import join_args, split_args
from module_sdk.aws_lambda.payload import build_payload
from module_sdk.aws_lambda.response import parse_reply
from module_sdk.handler import (
    Event,
    EventError,
    Reply,
    ReplyError,
    module_handler,
)
from module_sdk.testing import HandlerInvoker

README = Path(__file__).resolve().parents[2] / "README.md"
NOW = datetime(2026, 11, 26, 19, 25, 47, 123000, tzinfo=UTC)


def readme_event() -> dict[str, Any]:
    """The event example of the README's "What is sent" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## What is sent: the Lambda event", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    event: dict[str, Any] = json.loads(block.group(1))
    return event


def request(args: list[str], **metadata: Any) -> ExecuteRequest:
    return ExecuteRequest(
        command="!weather",
        args=args,
        user_id="u1",
        entity_id="e1",
        community_id="c1",
        session_id="s-42",
        platform="twitch",
        metadata=metadata,
    )


def event_for(args: list[str], **metadata: Any) -> dict[str, Any]:
    return build_payload(request(args, **metadata), NOW)


# -- importing it is cheap ------------------------------------------------------------------


def test_import_handler_loads_no_aws_or_http_library() -> None:
    """`import module_sdk.handler` (and calling a handler) loads no aiobotocore/botocore/aiohttp."""
    probe = (
        "import sys, module_sdk.handler as h\n"
        "import module_sdk\n"
        "r = h.module_handler(lambda e, c: h.Reply.text(e.command))({'request_id': 'r',"
        " 'timestamp': '2026-01-01T00:00:00.000Z', 'trigger': {'type': 'command',"
        " 'command': '!x'}, 'community': {'id': 'c'}, 'user': {'id': 'u'},"
        " 'entity': {'id': 'e'}}, None)\n"
        "assert r['message'] == '!x', r\n"
        "heavy = ('aiobotocore', 'botocore', 'aiohttp', 'boto3', 'yarl', 'multidict')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_public_names_still_resolve_lazily() -> None:
    """`from module_sdk import LambdaAdapter` still works, and unknown names fail clearly."""
    import module_sdk
    from module_sdk.adapters import LambdaAdapter as Direct

    assert module_sdk.LambdaAdapter is Direct is LambdaAdapter
    assert "LambdaAdapter" in dir(module_sdk)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = module_sdk.Nope


# -- the event ------------------------------------------------------------------------------


def test_readme_event_round_trips() -> None:
    """The README's event parses into the typed view and comes back unchanged."""
    raw = readme_event()
    event = Event.parse(raw)
    assert event.to_dict() == raw
    assert event.command == "!roll" and event.args == ("2d6",) and event.text == "2d6"
    assert event.is_command and not event.is_event
    assert event.request_id == "s-42"
    assert event.time == datetime(2026, 11, 26, 19, 25, 47, 123000, tzinfo=UTC)
    assert event.user.id == "u1" and event.user.platform_user_id == "u1"
    assert event.entity.platform == "twitch" and event.platform == "twitch"
    assert event.community.id == "c1" and event.community.seat_count == 0
    assert not event.community.is_subscribed


def test_event_from_the_adapters_payload() -> None:
    """Every field the adapter fills from metadata shows in the typed view."""
    raw = event_for(
        [],
        is_event=True,
        event_type="follow",
        event_data={"follower": "ann"},
        community={"name": "Penguins", "is_subscribed": True, "seat_count": 5},
        user={"username": "ann", "platform_user_id": "tw-1"},
        entity={"platform_entity_id": "chan-9"},
    )
    event = Event.parse(raw)
    assert event.is_event and event.trigger.event_type == "follow"
    assert event.trigger.event_data == {"follower": "ann"}
    assert event.args == () and event.text == ""
    assert event.community.name == "Penguins" and event.community.is_subscribed
    assert event.community.seat_count == 5
    assert event.user.username == "ann" and event.user.platform_user_id == "tw-1"
    assert event.entity.platform_entity_id == "chan-9"


@pytest.mark.parametrize(
    ("router_args", "expected"),
    [
        ("London", ("London",)),
        ('"New York" tomorrow', ("New York", "tomorrow")),
        ("it's raining", ("it's", "raining")),
        ('say "it\'s" twice', ("say", "it's", "twice")),
        ('"" empty', ("", "empty")),
        ("", ()),
    ],
    ids=["word", "quoted", "apostrophe", "quoted-apostrophe", "empty-word", "nothing"],
)
def test_event_args_are_the_routers_words(router_args: str, expected: tuple[str, ...]) -> None:
    """The function sees the words the module server split from the router's args string."""
    words = split_args(router_args)  # what the module server does
    assert Event.parse(event_for(words)).args == expected


@given(st.lists(st.text()))
def test_any_args_survive_the_event(words: list[str]) -> None:
    """Whatever the args list, the function's Event.args gives exactly it back."""
    assert split_args(join_args(words)) == words
    assert list(Event.parse(event_for(words)).args) == words


def test_plain_args_are_joined_by_one_space() -> None:
    """Args without spaces or quotes travel exactly as before (no quoting added)."""
    assert event_for(["2d6", "+3"])["trigger"]["context_text"] == "2d6 +3"
    assert event_for(["New York"])["trigger"]["context_text"] == '"New York"'


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    raw = readme_event()
    target = raw
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return raw


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw = readme_event()
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "must be a JSON object, not null"),
        (["!roll"], "must be a JSON object, not list"),
        ({}, r"event\['request_id'\] must be a non-empty string"),
        ({"httpMethod": "GET", "path": "/"}, r"event\['request_id'\]"),
        (_without(("trigger",)), r"event\['trigger'\] must be an object, but it is missing"),
        (_with(("trigger",), "!roll"), r"event\['trigger'\] must be an object, but it is a str"),
        (_with(("trigger", "type"), "poll"), "must be 'command' or 'event', not 'poll'"),
        (_with(("trigger", "command"), None), r"\['command'\] must be a string, not null"),
        (_with(("timestamp",), "yesterday"), "is not an ISO 8601 time"),
        (_with(("user", "id"), ["u1"]), r"event\['user'\]\['id'\] must be a string, not list"),
        (_with(("community", "seat_count"), "5"), "seat_count'] must be an integer"),
        (_with(("user", "username"), {"a": 1}), r"\['username'\] must be a string or null"),
    ],
    ids=[
        "null",
        "list",
        "empty",
        "api-gateway-event",
        "no-trigger",
        "trigger-text",
        "bad-type",
        "no-command",
        "bad-timestamp",
        "bad-user-id",
        "bad-seat-count",
        "bad-username",
    ],
)
def test_not_a_waddlebot_event(event: Any, message: str) -> None:
    """Anything but a WaddleBot event is refused with the field and what was expected."""
    with pytest.raises(EventError, match=message):
        Event.parse(event)


def test_router_style_integer_ids_are_text() -> None:
    """A community id sent as a number (the router's int) reads as text."""
    assert Event.parse(_with(("community", "id"), 42)).community.id == "42"


# -- the reply ------------------------------------------------------------------------------


def test_text_reply_is_the_seeds_flat_json() -> None:
    """Reply.text with targets and an extra key is exactly the handler contract's example."""
    reply = Reply.text("Operation completed", custom_field="custom_value").to("discord", "twitch")
    assert reply.to_dict() == {
        "success": True,
        "message": "Operation completed",
        "response_type": "text",
        "overlay_data": None,
        "browser_source_url": None,
        "targets": ["discord", "twitch"],
        "custom_field": "custom_value",
    }
    parsed = parse_reply(reply.to_dict())
    assert parsed.success and parsed.message == "Operation completed"
    assert parsed.targets == [{"type": "discord"}, {"type": "twitch"}]
    assert parsed.data is not None and parsed.data["custom_field"] == "custom_value"


@pytest.mark.parametrize(
    "example",
    [
        {"success": True, "message": "rolled 7", "targets": ["discord"], "dice": [3, 4]},
        {"success": False, "error": "unknown city"},
        {"success": True, "message": "hi", "targets": ["twitch"]},
        {
            "success": True,
            "message": "hi",
            "targets": ["discord", {"type": "slack", "channel_id": "1"}],
        },
        {"success": True, "message": "hi", "targets": []},
        {
            "success": True,
            "message": "Operation completed",
            "response_type": "text",
            "overlay_data": None,
            "browser_source_url": None,
            "targets": ["discord", "twitch"],
            "custom_field": "custom_value",
        },
    ],
    ids=["success", "error", "one-target", "mixed-targets", "no-targets", "seed"],
)
def test_documented_replies_round_trip(example: dict[str, Any]) -> None:
    """Each documented reply reads into Reply and comes back as the same JSON and response."""
    reply = Reply(example)
    assert reply.to_dict() == example
    assert parse_reply(reply.to_dict()) == parse_reply(example)
    gateway = reply.to_api_gateway()
    assert gateway["statusCode"] == 200 and json.loads(gateway["body"]) == example
    unwrapped = parse_reply(gateway)
    assert unwrapped.success == example["success"]
    assert unwrapped.error == example.get("error")
    assert unwrapped.targets == parse_reply(example).targets


def test_targets_given_loosely_read_as_a_list() -> None:
    """`targets: "twitch"` and `null`, which the adapter accepts, read as lists."""
    assert Reply({"success": True, "targets": "twitch"}).targets == ["twitch"]
    assert Reply({"message": "x", "targets": None}).success
    assert Reply({"error": "nope"}).to_dict()["success"] is False


def test_builders() -> None:
    """Embed, overlay, browser-source and error replies carry their fields where documented."""
    embed = Reply.embed("Weather", "London", fields={"Temp": "12 C"}, color=0x3366FF)
    assert embed.to_dict()["response_type"] == "embed"
    assert embed.to_dict()["embed"] == {
        "title": "Weather",
        "description": "London",
        "fields": [{"name": "Temp", "value": "12 C"}],
        "color": 0x3366FF,
    }
    assert embed.message == "Weather: London"
    overlay = Reply.overlay({"gif": "party.gif"}, message="party!")
    assert overlay.to_dict()["overlay_data"] == {"gif": "party.gif"}
    assert overlay.to_dict()["response_type"] == "overlay"
    browser = Reply.browser_source("https://example.org/wheel")
    assert browser.to_dict()["browser_source_url"] == "https://example.org/wheel"
    failure = Reply.error("unknown city", city="Atlantis")
    assert not failure.success
    parsed = parse_reply(failure.to_dict())
    assert not parsed.success and parsed.error == "unknown city"
    assert parsed.error_code == "module_error"
    assert parsed.data is not None and parsed.data["city"] == "Atlantis"
    targeted = Reply.text("x").to({"type": "discord", "channel_id": "9"}).with_data(n=1)
    assert parse_reply(targeted.to_dict()).targets == [{"type": "discord", "channel_id": "9"}]
    assert targeted.to_dict()["n"] == 1
    assert Reply.text("x") == Reply.text("x") and Reply.text("x") != Reply.text("y")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Reply({"success": "false", "error": "x"}), "must be true or false"),
        (lambda: Reply({"success": False}), "needs an error text"),
        (lambda: Reply({"message": 3}), r"reply\['message'\] must be a string"),
        (lambda: Reply({"error": {"code": 1}}), r"reply\['error'\] must be a string"),
        (lambda: Reply({"targets": 5}), "must be a list"),
        (lambda: Reply.text("x").to(""), "a target must be a platform name"),
        (lambda: Reply.text("x").to({"channel_id": "1"}), "dict with a 'type'"),
        (lambda: Reply.text("x", targets=["discord"]), r"\['targets'\] are reply fields"),
        (lambda: Reply.error(""), "needs the error text"),
    ],
    ids=[
        "string-success",
        "failure-without-error",
        "message-number",
        "error-object",
        "targets-number",
        "empty-target",
        "target-without-type",
        "targets-as-extra",
        "empty-error",
    ],
)
def test_bad_replies_are_refused_with_the_fix(build: Any, message: str) -> None:
    """A reply the contract does not allow is refused, naming the field and the fix."""
    with pytest.raises(ValueError, match=message):
        build()


# -- the decorator --------------------------------------------------------------------------


def test_decorated_handler_answers_the_adapter() -> None:
    """A decorated handler gets the typed event and answers the flat JSON."""

    @module_handler
    def handler(event: Event, context: object) -> Reply:
        return Reply.text(f"weather for {', '.join(event.args)}").to(event.platform)

    reply = handler(event_for(["New York", "London"]), None)
    assert reply == Reply.text("weather for New York, London").to("twitch").to_dict()


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("plain text", {"success": True, "message": "plain text"}),
        ({"success": True, "message": "as a dict"}, {"success": True, "message": "as a dict"}),
        ({"success": "true", "message": "loose"}, {"success": "true", "message": "loose"}),
    ],
    ids=["str", "dict", "loose-dict"],
)
def test_plain_results_pass(result: Any, expected: dict[str, Any]) -> None:
    """A str becomes a text reply; a dict is sent as written."""

    def handler(event: Event, context: object) -> Reply | dict[str, Any] | str:
        return result  # type: ignore[no-any-return]

    reply = module_handler(handler)(event_for([]), None)
    assert {k: reply[k] for k in expected} == expected


def test_reply_error_is_the_answer() -> None:
    """ReplyError becomes an error reply with its text and data; nothing is logged as a crash."""

    @module_handler
    def handler(event: Event, context: object) -> Reply:
        raise ReplyError("unknown city", city=event.text)

    reply = handler(event_for(["Atlantis"]), None)
    assert reply["success"] is False and reply["error"] == "unknown city"
    assert reply["city"] == "Atlantis"


def test_exception_is_a_clean_error_logged_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash answers an error without internals; the log has the traceback and request id."""

    @module_handler
    def handler(event: Event, context: object) -> Reply:
        raise RuntimeError("db password=hunter2 at /srv/app/module.py")

    with caplog.at_level(logging.ERROR, logger="module_sdk.handler"):
        reply = handler(event_for([]), None)
    assert reply["success"] is False
    assert reply["error"] == "the module failed: internal error (request s-42)"
    assert "hunter2" not in json.dumps(reply) and "/srv" not in json.dumps(reply)
    record = next(r for r in caplog.records if r.name == "module_sdk.handler")
    assert "s-42" in record.getMessage() and record.exc_info is not None


def test_expose_errors_puts_the_exception_in_the_reply() -> None:
    """With expose_errors=True the reply names the exception (for development)."""

    @module_handler(expose_errors=True)
    def handler(event: Event, context: object) -> Reply:
        raise KeyError("city")

    assert handler(event_for([]), None)["error"] == (
        "the module failed: KeyError: 'city' (request s-42)"
    )


def test_not_a_waddlebot_event_is_an_error_reply(caplog: pytest.LogCaptureFixture) -> None:
    """An event from elsewhere gets an error reply naming the problem, and a warning."""
    handler = module_handler(lambda event, context: "never")
    with caplog.at_level(logging.WARNING, logger="module_sdk.handler"):
        reply = handler({"httpMethod": "GET"}, None)
    assert reply["success"] is False
    assert reply["error"].startswith("not a WaddleBot event: event['request_id']")
    assert any("not a WaddleBot event" in r.getMessage() for r in caplog.records)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ({"success": True, "when": datetime(2026, 1, 1)}, "cannot be encoded as JSON"),
        ({"success": True, "ratio": math.nan}, "cannot be encoded as JSON"),
        ({"success": True, "blob": "x" * 5000}, "over Lambda's 4,096-byte reply limit"),
        ({"success": True, "deep": _nested(150)}, "more than 100 levels deep"),
        (3.5, "internal error"),
    ],
    ids=["datetime", "nan", "too-large", "too-deep", "not-a-reply"],
)
def test_replies_the_adapter_would_reject_never_leave(
    result: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply the adapter would refuse is replaced by an error reply, logged with the id."""
    handler = module_handler(max_reply_bytes=4096)(lambda event, context: result)
    with caplog.at_level(logging.ERROR, logger="module_sdk.handler"):
        reply = handler(event_for([]), None)
    assert reply["success"] is False and reason in reply["error"]
    assert len(json.dumps(reply)) < 4096
    assert any("s-42" in r.getMessage() for r in caplog.records)
    assert parse_reply(reply).error_code == "module_error"


def test_default_limit_is_lambdas_six_megabytes() -> None:
    """Just under 6 MB passes; just over is refused."""
    room = 6 * 1024 * 1024 - len(json.dumps({"success": True, "blob": ""}))
    ok = module_handler(lambda event, context: {"success": True, "blob": "x" * room})
    assert ok(event_for([]), None)["success"] is True
    over = module_handler(lambda event, context: {"success": True, "blob": "x" * (room + 1)})
    assert over(event_for([]), None)["success"] is False


def test_api_gateway_variant() -> None:
    """With api_gateway=True every answer, errors included, is an API Gateway proxy reply."""

    @module_handler(api_gateway=True)
    def handler(event: Event, context: object) -> Reply:
        if not event.args:
            raise ReplyError("usage: !weather CITY")
        return Reply.text("sunny")

    ok = handler(event_for(["Paris"]), None)
    assert ok["statusCode"] == 200 and json.loads(ok["body"])["message"] == "sunny"
    assert parse_reply(ok).message == "sunny"
    failed = parse_reply(handler(event_for([]), None))
    assert not failed.success and failed.error == "usage: !weather CITY"


async def test_async_handler_through_the_adapter() -> None:
    """An async def handler, called by the real adapter, answers a normalized response."""

    @module_handler
    async def handler(event: Event, context: object) -> Reply:
        return Reply.text(f"{event.command} {event.args[0]}", city=event.args[0])

    adapter = LambdaAdapter("weather", "us-east-1", "weather", invoker=HandlerInvoker(handler))
    response = await adapter.execute_async(request(["New York"]))
    assert response.success and response.message == "!weather New York"
    assert response.data is not None and response.data["city"] == "New York"


def test_async_handler_called_like_aws_does() -> None:
    """Called without a running loop (AWS's Python runtime), an async handler returns the reply."""
    loops: list[object] = []

    @module_handler
    async def handler(event: Event, context: object) -> Reply:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        if event.args == ("boom",):
            raise RuntimeError("boom")
        return Reply.text(event.text)

    first = handler(event_for(["hi"]), None)
    assert isinstance(first, dict) and first["message"] == "hi"
    crashed = handler(event_for(["boom"]), None)
    assert isinstance(crashed, dict) and crashed["error"].startswith("the module failed")
    assert len(loops) == 2 and all(loop.is_closed() for loop in loops)  # type: ignore[attr-defined]


def test_decorator_options_are_checked() -> None:
    """A non-positive reply limit is refused at decoration time."""
    with pytest.raises(ValueError, match="max_reply_bytes must be positive"):
        module_handler(max_reply_bytes=0)
