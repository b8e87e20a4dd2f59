"""Raw Lambda replies -> ExecuteResponse: the seed's normalization and the original's defects."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from module_sdk.aws_lambda.invoker import InvocationResult
from module_sdk.aws_lambda.response import (
    decode_log_tail,
    normalize_targets,
    parse_function_error,
    parse_invocation,
    parse_reply,
)


def ok(reply: Any) -> InvocationResult:
    """A 200 reply with a JSON body."""
    return InvocationResult(status_code=200, payload=json.dumps(reply).encode())


def test_seed_example() -> None:
    """The seed's response example parses exactly as documented."""
    reply = {
        "success": True,
        "message": "Operation completed",
        "response_type": "text",
        "overlay_data": None,
        "browser_source_url": None,
        "targets": ["discord", "twitch"],
        "custom_field": "custom_value",
    }
    response = parse_invocation(ok(reply), "RequestResponse")
    assert response.success is True
    assert response.message == "Operation completed"
    assert response.data == {
        "response_type": "text",
        "overlay_data": None,
        "browser_source_url": None,
        "targets": ["discord", "twitch"],
        "custom_field": "custom_value",
    }
    assert response.error is None and response.error_code is None
    assert response.targets == [{"type": "discord"}, {"type": "twitch"}]


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ("twitch", [{"type": "twitch"}]),
        (None, []),
        ([], []),
        (
            ["discord", {"type": "slack", "channel_id": "1"}],
            [{"type": "discord"}, {"type": "slack", "channel_id": "1"}],
        ),
        ({"type": "kick"}, [{"type": "kick"}]),
        ([1, None, {"no_type": 1}, "ok"], [{"type": "ok"}]),
        (42, []),
        ("", []),
    ],
    ids=["string", "null", "empty", "mixed", "dict", "junk-elements", "number", "empty-string"],
)
def test_targets(targets: Any, expected: list[dict[str, Any]]) -> None:
    """Targets normalize to dicts; a single string is one target, never one per character."""
    assert normalize_targets(targets) == expected


def test_missing_targets_key() -> None:
    """A reply without targets has none."""
    assert parse_reply({"success": True}).targets == []


def test_junk_targets_warn(caplog: pytest.LogCaptureFixture) -> None:
    """Dropped targets are logged as warnings."""
    with caplog.at_level(logging.WARNING):
        normalize_targets(42)
    assert "dropping targets" in caplog.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("FALSE", False),
        (1, True),
        (0, False),
        (None, False),
        ([], False),
    ],
)
def test_success_coercion(value: Any, expected: bool) -> None:
    """success is coerced to a real bool ("false" is False)."""
    assert parse_reply({"success": value}).success is expected


def test_missing_success() -> None:
    """Without success, a reply is successful unless it carries an error."""
    assert parse_reply({"message": "hi"}).success is True
    failed = parse_reply({"error": "boom"})
    assert failed.success is False and failed.error == "boom"
    assert failed.error_code == "module_error"


def test_business_failure() -> None:
    """success: false is a module_error with the function's error text."""
    response = parse_reply({"success": False, "error": "unknown city", "message": "sorry"})
    assert (response.success, response.error, response.error_code) == (
        False,
        "unknown city",
        "module_error",
    )
    assert response.message == "sorry"
    assert parse_reply({"success": False, "message": "nope"}).error == "nope"


def test_non_string_message_and_error() -> None:
    """Non-string message/error values are kept as JSON text."""
    response = parse_reply({"success": False, "message": {"a": 1}, "error": ["x"]})
    assert response.message == '{"a": 1}'
    assert response.error == '["x"]'


@pytest.mark.parametrize(
    ("reply", "success", "message", "error"),
    [
        (
            {"statusCode": 200, "body": json.dumps({"success": True, "message": "hi"})},
            True,
            "hi",
            None,
        ),
        ({"statusCode": 200, "body": {"success": True, "message": "obj"}}, True, "obj", None),
        ({"statusCode": "201", "body": "plain text"}, True, "plain text", None),
        (
            {"statusCode": 500, "body": json.dumps({"message": "db down"})},
            False,
            "db down",
            "db down",
        ),
        ({"statusCode": 404, "body": "not here"}, False, None, "not here"),
        ({"statusCode": 502, "body": ""}, False, None, "the function answered HTTP 502"),
        (
            {
                "statusCode": 200,
                "isBase64Encoded": True,
                "body": base64.b64encode(b'{"success": true, "message": "b64"}').decode(),
            },
            True,
            "b64",
            None,
        ),
    ],
    ids=["json-string", "object-body", "text-body", "500", "404-text", "502-empty", "base64"],
)
def test_api_gateway_unwrap(
    reply: dict[str, Any], success: bool, message: str | None, error: str | None
) -> None:
    """API-Gateway replies are unwrapped; a non-2xx statusCode is a failure."""
    response = parse_reply(reply)
    assert (response.success, response.message, response.error) == (success, message, error)
    assert response.diagnostics is not None
    assert response.diagnostics.status_code == int(reply["statusCode"])
    assert "status_code" not in (response.data or {})
    assert response.error_code == (None if success else "module_error")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"Hello from Lambda", "not JSON: Hello from Lambda"),
        (b"", "empty reply"),
        (b"\xff\xfe garbage", "not valid UTF-8"),
        (b"[1, 2]", "not a JSON object: [1, 2]"),
        (b'"just text"', "not a JSON object: just text"),
        (b"null", "not a JSON object: null"),
        (b"[" * 100000 + b"]" * 100000, "not JSON"),
    ],
    ids=["text", "empty", "bad-utf8", "list", "string", "null", "deep"],
)
def test_unusable_replies(payload: bytes, fragment: str) -> None:
    """Non-JSON or non-object replies are invalid_response and keep their text."""
    response = parse_invocation(InvocationResult(200, payload), "RequestResponse")
    assert response.success is False
    assert response.error_code == "invalid_response"
    assert response.error is not None and fragment in response.error


def test_long_text_is_truncated() -> None:
    """Kept text is truncated so a huge reply does not flood logs."""
    response = parse_invocation(InvocationResult(200, b"x" * 50_000), "RequestResponse")
    assert response.error is not None and len(response.error) < 1200
    assert "more]" in response.error


def test_truncated_reply() -> None:
    """A reply cut at the size cap is invalid_response."""
    response = parse_invocation(InvocationResult(200, b"{" * 10, truncated=True), "RequestResponse")
    assert response.error_code == "invalid_response"


def test_unhandled_exception_shape() -> None:
    """The Python runtime's exception shape keeps type, message and stack trace."""
    body = json.dumps(
        {
            "errorMessage": "division by zero",
            "errorType": "ZeroDivisionError",
            "requestId": "abc",
            "stackTrace": ['  File "/var/task/h.py", line 2, in handler\n'],
        }
    ).encode()
    response = parse_function_error(body, "Unhandled")
    assert response.success is False
    assert response.error == "ZeroDivisionError: division by zero"
    assert response.error_code == "function_error"
    assert response.data == {
        "function_error": "Unhandled",
        "stack_trace": ['  File "/var/task/h.py", line 2, in handler\n'],
        "request_id": "abc",
        "error_type": "ZeroDivisionError",
        "error_message": "division by zero",
    }


def test_function_error_mentioning_throttling_is_still_a_function_error() -> None:
    """Classification never looks at message text."""
    body = json.dumps({"errorMessage": "ThrottlingException!", "errorType": "ValueError"})
    response = parse_invocation(
        InvocationResult(200, body.encode(), function_error="Unhandled"), "RequestResponse"
    )
    assert response.error_code == "function_error"


@pytest.mark.parametrize(
    "body",
    [
        {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "RequestId: 1-2 Error: Task timed out after 3.00 seconds",
        },
        {"errorMessage": "2026-01-01T00:00:00.000Z 1-2 Task timed out after 3.00 seconds"},
    ],
    ids=["new-shape", "old-shape"],
)
def test_timeout_shapes(body: dict[str, str]) -> None:
    """Both Lambda timeout shapes are recognized as Sandbox.Timedout."""
    response = parse_function_error(json.dumps(body).encode(), "Unhandled")
    assert response.data is not None
    assert response.data["error_type"] == "Sandbox.Timedout"
    assert response.data["timed_out"] is True
    assert response.data["timeout_seconds"] == 3.0
    assert response.error is not None and response.error.startswith("Sandbox.Timedout: ")


def test_crash_shape() -> None:
    """Runtime.ExitError keeps its type."""
    body = {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: x Error: Runtime exited with error: signal: killed",
    }
    response = parse_function_error(json.dumps(body).encode(), "Unhandled")
    assert (
        response.error
        == "Runtime.ExitError: RequestId: x Error: Runtime exited with error: signal: killed"
    )


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [(b"segfault!", "not JSON: segfault!"), (b'"oops"', "oops"), (b"", "empty reply")],
    ids=["text", "json-string", "empty"],
)
def test_function_error_with_odd_bodies(payload: bytes, fragment: str) -> None:
    """Function errors with non-object bodies keep their text."""
    response = parse_function_error(payload, "Handled")
    assert response.error_code == "function_error"
    assert response.error is not None and fragment in response.error
    assert response.error.startswith("Handled: ")


def test_event_and_dry_run() -> None:
    """Event answers 'queued'; DryRun answers success."""
    queued = parse_invocation(InvocationResult(202), "Event")
    assert (queued.success, queued.message) == (True, "Lambda function queued")
    dry = parse_invocation(InvocationResult(204), "DryRun")
    assert dry.success is True


def test_log_tail_decoding() -> None:
    """X-Amz-Log-Result is base64 text; garbage decodes to None."""
    assert decode_log_tail(base64.b64encode(b"START\nEND\n").decode()) == "START\nEND\n"
    assert decode_log_tail(None) is None
    assert decode_log_tail("***not base64***") is None
