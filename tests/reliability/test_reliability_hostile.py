"""Hostile input: whatever a function replies, and whatever a caller sends, nothing crashes.

Replies go through the parser (``parse_invocation`` on an ``InvocationResult``) with
hypothesis-generated bodies: any JSON value, invalid UTF-8, huge and deeply nested bodies, wrong
types in every known field, with and without ``X-Amz-Function-Error``. Requests with a hostile
value in any ``ExecuteRequest`` field are refused with a clear error and no network call.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from module_sdk import ExecuteRequest, ExecuteResponse
from module_sdk.adapters import LambdaAdapter
from module_sdk.aws_lambda.invoker import InvocationResult
from module_sdk.aws_lambda.response import parse_invocation
from module_sdk.errors import ErrorCode
from module_sdk.testing import Reply, ScriptedLambdaServer

ERROR_CODES = frozenset(code.value for code in ErrorCode)
KNOWN_KEYS = (
    "success",
    "message",
    "error",
    "targets",
    "response_type",
    "statusCode",
    "body",
    "isBase64Encoded",
    "errorType",
    "errorMessage",
    "stackTrace",
    "requestId",
)


def assert_valid(response: object) -> None:
    """The ExecuteResponse contract every answer must keep, whatever the reply was."""
    assert isinstance(response, ExecuteResponse)
    assert type(response.success) is bool
    assert response.message is None or isinstance(response.message, str)
    assert response.error is None or isinstance(response.error, str)
    assert response.data is None or isinstance(response.data, dict)
    assert isinstance(response.targets, list)
    assert all(isinstance(t, dict) and isinstance(t.get("type"), str) for t in response.targets)
    assert (response.error_code is None) == response.success
    assert response.error_code is None or response.error_code in ERROR_CODES
    if not response.success:
        assert response.error  # a failure always says what went wrong
    json.dumps(response.to_dict())  # the module server can always send it on


# -- what a function may send back -------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**300), max_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=20,
)
# Objects shaped like replies: the known keys with values of any type.
reply_objects = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=8)
api_gateway = st.fixed_dictionaries(
    {"statusCode": json_values, "body": json_values | st.text().map(json.dumps)},
    optional={"isBase64Encoded": json_values},
)
function_errors = st.none() | st.sampled_from(["Unhandled", "Handled"]) | st.text(max_size=12)


def encode(value: Any) -> bytes:
    """What a Python handler's reply looks like on the wire (NaN/Infinity included)."""
    return json.dumps(value).encode()


def nested(depth: int, kind: str) -> str:
    """A JSON text nested ``depth`` levels deep."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def parse(body: bytes, function_error: str | None = None, truncated: bool = False) -> Any:
    """Parse one raw reply like the adapter does for a RequestResponse call."""
    result = InvocationResult(
        status_code=200, payload=body, function_error=function_error, truncated=truncated
    )
    return parse_invocation(result, "RequestResponse")


@settings(max_examples=120, deadline=None)
@given(value=json_values | reply_objects | api_gateway, function_error=function_errors)
def test_any_json_reply_gives_a_valid_response(value: Any, function_error: str | None) -> None:
    """Any JSON value as the reply, with or without a function error, parses validly."""
    assert_valid(parse(encode(value), function_error))


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=300) | st.text(max_size=100).map(str.encode),
    function_error=function_errors,
)
def test_any_bytes_give_a_valid_response(body: bytes, function_error: str | None) -> None:
    """Arbitrary bytes (invalid UTF-8, truncated JSON, garbage) parse validly."""
    assert_valid(parse(body, function_error))


@settings(max_examples=100, deadline=None)
@given(
    inner=json_values,
    api_status=st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=8),
    wrap_body=st.booleans(),
)
def test_api_gateway_wrappers_with_any_types(inner: Any, api_status: Any, wrap_body: bool) -> None:
    """API-Gateway replies with any statusCode and any body (string or not) parse validly."""
    body: Any = json.dumps(inner) if wrap_body else inner
    assert_valid(parse(encode({"statusCode": api_status, "body": body})))


@pytest.mark.parametrize(
    "text",
    [
        '{"statusCode": Infinity, "body": "{}"}',
        '{"statusCode": -Infinity, "body": "x"}',
        '{"statusCode": NaN, "body": "x"}',
        '{"statusCode": 1e400, "body": "{\\"success\\": true}"}',
    ],
    ids=["inf", "-inf", "nan", "1e400"],
)
def test_non_finite_api_gateway_status(text: str) -> None:
    """A non-finite statusCode (Python's json.dumps writes Infinity) is not a crash."""
    response = parse(text.encode())
    assert_valid(response)
    assert response.error_code is None or response.error_code in ERROR_CODES


@pytest.mark.parametrize(
    "message",
    [
        "Task timed out after ... seconds",
        "Task timed out after 1.2.3 seconds",
        "2026-11-26T10:00:00Z abc Task timed out after . seconds",
    ],
)
def test_malformed_timeout_messages(message: str) -> None:
    """A function error whose text looks like a timeout but has no number is still parsed."""
    response = parse(encode({"errorMessage": message}), "Unhandled")
    assert_valid(response)
    assert response.error_code == "function_error"
    assert response.data is not None and response.data["timed_out"] is True


@pytest.mark.parametrize("depth", [50, 500, 990, 1200, 100_000], ids=lambda d: f"depth{d}")
@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize(
    "where",
    ["whole", "targets", "data", "error", "message", "api_body", "error_message", "stack"],
)
def test_deep_nesting(depth: int, kind: str, where: str) -> None:
    """Replies nested up to 100,000 levels, anywhere, parse validly (and re-encode)."""
    deep = nested(depth, kind)
    text, function_error = {
        "whole": (deep, None),
        "targets": (f'{{"success": true, "targets": [{deep}]}}', None),
        "data": (f'{{"success": true, "extra": {deep}}}', None),
        "error": (f'{{"success": false, "error": {deep}}}', None),
        "message": (f'{{"success": true, "message": {deep}}}', None),
        "api_body": (json.dumps({"statusCode": 200, "body": deep}), None),
        "error_message": (f'{{"errorMessage": {deep}, "errorType": {deep}}}', "Unhandled"),
        "stack": (f'{{"errorMessage": "x", "stackTrace": [{deep}]}}', "Unhandled"),
    }[where]
    assert_valid(parse(text.encode(), function_error))


@pytest.mark.parametrize(
    "body",
    [
        b'{"success": true, "message": "' + b"x" * (6 * 1024 * 1024) + b'"}',
        b"[" + b"1," * (1024 * 1024) + b"1]",
        b'"' + b"\xff" * (1024 * 1024) + b'"',
        b" " * (6 * 1024 * 1024),
    ],
    ids=["6MB-message", "1M-element-list", "1MB-invalid-utf8", "6MB-whitespace"],
)
@pytest.mark.parametrize("function_error", [None, "Unhandled"])
def test_huge_bodies(body: bytes, function_error: str | None) -> None:
    """Multi-megabyte replies parse validly; the error text of a bad one stays short."""
    response = parse(body, function_error)
    assert_valid(response)
    assert len(response.error or "") < 5000
    assert len(response.message or "") <= 6 * 1024 * 1024 + 100


def test_truncated_reply_is_invalid_response() -> None:
    """A reply cut at the read limit is an invalid_response, not half a JSON document."""
    response = parse(b'{"success": true, "message": "' + b"x" * 1000, truncated=True)
    assert_valid(response)
    assert response.error_code == "invalid_response"


def test_non_finite_numbers_survive_as_data() -> None:
    """NaN and Infinity (json.dumps writes them) stay data, never a crash."""
    response = parse(b'{"success": true, "score": NaN, "max": Infinity, "targets": [NaN]}')
    assert_valid(response)
    assert response.data is not None and math.isnan(response.data["score"])
    assert response.targets == []


# -- what a caller may send --------------------------------------------------------------------

ID_FIELDS = ("command", "user_id", "entity_id", "community_id", "session_id", "platform")
wrong_types = (
    st.none()
    | st.integers()
    | st.floats()
    | st.binary(max_size=8)
    | st.lists(st.text(max_size=3), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.just(object())
)
control_text = st.builds(
    lambda a, c, b: a + c + b,
    st.text(max_size=10),
    st.sampled_from([chr(i) for i in range(32)] + ["\x7f"]),
    st.text(max_size=10),
)
huge_text = st.integers(1025, 200_000).map(lambda n: BigText("x" * n))
lone_surrogates = st.sampled_from(["\ud800", "a\udfffb", "\udc80"])


class BigText(str):
    """A long string with a short repr (hypothesis prints failing examples)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"BigText(<{len(self):,} characters>)"


class _Unserializable:
    def __repr__(self) -> str:
        return "<unserializable>"


def _circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


bad_metadata_values = st.sampled_from(
    [
        _Unserializable(),
        {1, 2},
        b"bytes",
        float("nan"),
        float("inf"),
        _circular(),
        [object()],
        {"nested": {"deeper": object()}},
    ]
)


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, ExecuteRequest]:
    """A valid request with one field made hostile; returns (field, request)."""
    fields: dict[str, Any] = {
        "command": "!roll",
        "args": ["2d6"],
        "user_id": "u1",
        "entity_id": "e1",
        "community_id": "c1",
        "session_id": "s1",
        "platform": "twitch",
        "metadata": {},
        "scopes": [],
    }
    field = draw(st.sampled_from([*ID_FIELDS, "args", "metadata", "scopes", "section"]))
    if field in ID_FIELDS:
        fields[field] = draw(wrong_types | control_text | huge_text | lone_surrogates)
    elif field in ("args", "scopes"):
        hostile = wrong_types.filter(lambda v: not isinstance(v, list)) | st.lists(
            wrong_types.filter(lambda v: not isinstance(v, str)), min_size=1
        )
        if field == "args":  # args travel in the event; scopes never leave the process
            hostile |= st.lists(lone_surrogates, min_size=1) | st.just("2d6")
        fields[field] = draw(hostile)
    elif field == "metadata":
        fields[field] = draw(
            wrong_types.filter(lambda v: not isinstance(v, dict))
            | st.dictionaries(st.text(max_size=5), bad_metadata_values, min_size=1, max_size=2)
            | st.just({"event_data": {"blob": BigText("x" * (6 * 1024 * 1024 + 1))}})
            | st.just({"event_type": "\ud800"})
        )
    else:
        field = "metadata"
        section = draw(st.sampled_from(["community", "user", "entity"]))
        fields["metadata"] = {section: draw(wrong_types.filter(lambda v: not isinstance(v, dict)))}
        if fields["metadata"][section] is None:
            fields["metadata"][section] = "not a dict"
    return field, ExecuteRequest(**fields)


class Harness:
    """One event loop, one scripted endpoint and one adapter for a whole hypothesis run."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.server = ScriptedLambdaServer(default=lambda event: Reply.ok({"success": True}))
        self.runner.run(self.server.__aenter__())
        self.adapter = LambdaAdapter(
            "dice", "us-east-1", "dice", endpoint_url=self.server.url, max_retries=0
        )

    def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        """Run one request to completion."""
        return self.runner.run(self.adapter.execute_async(request))

    def close(self) -> None:
        """Close the adapter, the endpoint and the loop."""
        self.runner.run(self.adapter.aclose())
        self.runner.run(self.server.__aexit__(None, None, None))
        self.runner.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """The scripted endpoint and adapter shared by the hostile-request examples."""
    h = Harness()
    try:
        yield h
    finally:
        h.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=hostile_requests())
def test_hostile_requests_are_refused_without_a_call(
    harness: Harness, case: tuple[str, ExecuteRequest]
) -> None:
    """Any ExecuteRequest field made hostile gets a clear error and no network call."""
    field, request = case
    before = harness.server.count()
    response = harness.execute(request)
    assert_valid(response)
    assert not response.success
    assert response.error_code in ("invalid_request", "payload_too_large")
    assert harness.server.count() == before  # refused before any network call
    error = response.error or ""
    names_it = field in error or "Unicode" in error or "Lambda event" in error
    assert names_it, f"error does not name {field!r}: {error}"


def test_a_valid_request_does_reach_the_endpoint(harness: Harness) -> None:
    """The refusal above is about the input: the same adapter does call for a valid request."""
    before = harness.server.count()
    response = harness.execute(
        ExecuteRequest("!roll", ["2d6"], "u1", "e1", "c1", "s-valid", "twitch")
    )
    assert response.success
    assert harness.server.count() == before + 1


HOSTILE_WIRE_REPLIES = {
    "invalid-utf8": Reply.ok(raw=b"\xff\xfe{not json"),
    "deep-list": Reply.ok(raw=nested(100_000, "list").encode()),
    "deep-targets": Reply.ok(
        raw=f'{{"success": true, "targets": [{nested(995, "list")}]}}'.encode()
    ),
    "over-6MB": Reply.ok(raw=b'{"message": "' + b"x" * (7 * 1024 * 1024) + b'"}'),
    "empty": Reply.ok(raw=b""),
    "wrong-types": Reply.ok({"success": "maybe", "message": 7, "targets": 5, "error": [1]}),
    "function-error-garbage": Reply.function_error(None, raw=b"\x00\x01garbage"),
    "inf-status": Reply.ok(raw=b'{"statusCode": Infinity, "body": "{}"}'),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_WIRE_REPLIES))
async def test_hostile_replies_over_http(scripted: ScriptedLambdaServer, name: str) -> None:
    """The same replies sent over real HTTP give a valid answer and are not retried."""
    scripted.script("dice", HOSTILE_WIRE_REPLIES[name])
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", endpoint_url=scripted.url, max_retries=2
    ) as adapter:
        response = await adapter.execute_async(
            ExecuteRequest("!roll", ["2d6"], "u1", "e1", "c1", f"s-{name}", "twitch")
        )
    assert_valid(response)
    assert scripted.count("dice") == 1  # a reply, however bad, is never re-invoked
