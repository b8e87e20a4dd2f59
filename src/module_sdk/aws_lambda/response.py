"""A raw Lambda reply -> ExecuteResponse (pure; never raises on any input)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from module_sdk._models import Diagnostics, ExecuteResponse
from module_sdk.aws_lambda.api import InvocationType
from module_sdk.aws_lambda.invoker import InvocationResult
from module_sdk.aws_lambda.limits import MAX_REPLY_DEPTH, nested_too_deep
from module_sdk.errors import ErrorCode

__all__ = [
    "MAX_ERROR_TEXT",
    "MAX_REPLY_DEPTH",
    "decode_log_tail",
    "decode_reply",
    "normalize_targets",
    "parse_function_error",
    "parse_invocation",
    "parse_reply",
]

logger = logging.getLogger(__name__)

MAX_ERROR_TEXT = 1000
"""Characters of an unusable reply kept in ``ExecuteResponse.error``."""
MAX_STACK_LINES = 50
_RESERVED = ("success", "message", "error")
_TIMEOUT_RE = re.compile(r"Task timed out after\s+([\d.]+)\s+seconds")
_TRUE = frozenset({"true", "yes", "1", "ok", "success", "y", "t"})


class _Unusable(Exception):
    """The reply could not be decoded; ``args[0]`` explains why."""


def _truncate(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more]"


def _text(value: Any) -> str | None:
    """A message/error field as text: strings as-is, others as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _coerce_success(value: Any) -> bool:
    """``success`` as a bool: booleans as-is, "true"/"false" strings, numbers != 0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    if isinstance(value, int | float):
        return value != 0
    return False


def normalize_targets(value: Any) -> list[dict[str, Any]]:
    """Targets as a list of dicts with a ``type``.

    Accepts a list of strings and/or dicts, a single string, a single dict, or null/missing.
    Anything else (and any list element that is neither) is dropped with a warning.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": value}] if value else []
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        logger.warning("dropping targets of type %s: expected a list", type(value).__name__)
        return []
    targets: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, str) and item:
            targets.append({"type": item})
        elif isinstance(item, Mapping) and isinstance(item.get("type"), str):
            targets.append(dict(item))
        else:
            logger.warning("dropping target %.80r: expected a string or a dict with 'type'", item)
    return targets


def decode_reply(payload: bytes) -> Any:
    """Decode a reply body as JSON; raise ``_Unusable`` with the reason and the text kept."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unusable(
            "the function's reply is not valid UTF-8: "
            + _truncate(payload.decode("utf-8", errors="replace"))
        ) from None
    if not text.strip():
        raise _Unusable("the function returned an empty reply")
    try:
        reply = json.loads(text)
    except (ValueError, RecursionError):
        raise _Unusable("the function's reply is not JSON: " + _truncate(text)) from None
    # json.loads accepts ~1,000 levels, but copying (ExecuteResponse.to_dict) or re-encoding
    # a reply that deep overflows the stack later: refuse it here, where it is explained.
    if nested_too_deep(text, reply):
        raise _Unusable(f"the function's reply is nested more than {MAX_REPLY_DEPTH} levels deep")
    return reply


def _unwrap_api_gateway(reply: Mapping[str, Any]) -> tuple[Any, int] | None:
    """``{"statusCode", "body"}`` -> (decoded body, status), or None if not that shape."""
    if "statusCode" not in reply or "body" not in reply:
        return None
    status = reply.get("statusCode")
    try:
        status_code = int(status)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        return None
    body = reply.get("body")
    if isinstance(body, str):
        if reply.get("isBase64Encoded") is True:
            try:
                body = base64.b64decode(body, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                pass
        try:
            decoded = json.loads(body) if body.strip() else None
        except (ValueError, RecursionError):
            decoded = body  # a plain-text body: it becomes the message
        body = body if nested_too_deep(body, decoded) else decoded
    return body, status_code


def parse_reply(reply: Any) -> ExecuteResponse:
    """Normalize a decoded reply (the seed's ``_parse_lambda_response``).

    ``success`` is coerced to bool (missing: true unless ``error`` is set); ``message`` and
    ``error`` are kept as text; ``targets`` is normalized; ``data`` holds every other key.
    API-Gateway replies are unwrapped (a non-2xx ``statusCode`` is a failure); their
    ``statusCode`` goes to ``diagnostics.status_code``, never into ``data``.
    """
    status_code: int | None = None
    if isinstance(reply, Mapping):
        unwrapped = _unwrap_api_gateway(reply)
        if unwrapped is not None:
            reply, status_code = unwrapped
            if not isinstance(reply, Mapping):
                ok = 200 <= status_code < 300
                text = _text(reply)
                return ExecuteResponse(
                    success=ok,
                    message=text if ok else None,
                    error=None if ok else (text or f"the function answered HTTP {status_code}"),
                    error_code=None if ok else ErrorCode.MODULE_ERROR.value,
                    diagnostics=Diagnostics(status_code=status_code),
                )
    if not isinstance(reply, Mapping):
        return ExecuteResponse(
            success=False,
            data={"reply_type": type(reply).__name__},
            error="the function's reply is not a JSON object: "
            + _truncate("null" if reply is None else (_text(reply) or "")),
            error_code=ErrorCode.INVALID_RESPONSE.value,
        )
    error = _text(reply.get("error"))
    success = _coerce_success(reply["success"]) if "success" in reply else not error
    if status_code is not None and not 200 <= status_code < 300:
        success = False
    data = {k: v for k, v in reply.items() if k not in _RESERVED}
    message = _text(reply.get("message"))
    if not success and not error:
        error = message or (
            f"the function answered HTTP {status_code}" if status_code else "the function failed"
        )
    return ExecuteResponse(
        success=success,
        message=message,
        data=data,
        error=None if success else error,
        targets=normalize_targets(reply.get("targets")),
        error_code=None if success else ErrorCode.MODULE_ERROR.value,
        diagnostics=None if status_code is None else Diagnostics(status_code=status_code),
    )


def parse_function_error(payload: bytes, function_error: str) -> ExecuteResponse:
    """A function error (``X-Amz-Function-Error``): raised, crashed or timed out."""
    details: dict[str, Any] = {"function_error": function_error}
    try:
        reply = decode_reply(payload)
    except _Unusable as exc:
        reply = None
        details["raw"] = str(exc)
    error_type: str | None = None
    error_message: str | None = None
    if isinstance(reply, Mapping):
        error_type = _text(reply.get("errorType"))
        error_message = _text(reply.get("errorMessage"))
        stack = reply.get("stackTrace")
        if isinstance(stack, list):
            details["stack_trace"] = [_text(line) for line in stack[:MAX_STACK_LINES]]
        if isinstance(reply.get("requestId"), str):
            details["request_id"] = reply["requestId"]
    elif reply is not None:
        error_message = _truncate(_text(reply) or "")
    timed_out = _TIMEOUT_RE.search(error_message or "")
    if timed_out and not error_type:
        error_type = "Sandbox.Timedout"  # the older timeout shape has no errorType
    if error_type == "Sandbox.Timedout" or timed_out:
        details["timed_out"] = True
        if timed_out:
            try:
                details["timeout_seconds"] = float(timed_out.group(1))
            except ValueError:  # "after ... seconds": no number to keep
                pass
    error_type = error_type or function_error or "FunctionError"
    error_message = error_message or details.get("raw") or "the function failed"
    details["error_type"] = error_type
    details["error_message"] = _truncate(error_message)
    return ExecuteResponse(
        success=False,
        data=details,
        error=f"{error_type}: {_truncate(error_message)}",
        error_code=ErrorCode.FUNCTION_ERROR.value,
    )


def decode_log_tail(log_result: str | None) -> str | None:
    """Decode ``X-Amz-Log-Result`` (base64 of the last 4 KB of the log)."""
    if not log_result:
        return None
    try:
        return base64.b64decode(log_result).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None


def parse_invocation(
    result: InvocationResult,
    invocation_type: InvocationType,
    parse: Callable[[Any], ExecuteResponse] = parse_reply,
) -> ExecuteResponse:
    """Turn one raw invocation into an ExecuteResponse, whatever the function sent.

    ``parse`` turns a decoded JSON reply into the response (the adapter passes its
    overridable ``_parse_lambda_response``).
    """
    if invocation_type == "Event":
        return ExecuteResponse(
            success=True,
            message="Lambda function queued",
        )
    if invocation_type == "DryRun":
        return ExecuteResponse(
            success=True,
            message="Lambda function can be invoked (DryRun)",
        )
    if result.function_error:
        return parse_function_error(result.payload, result.function_error)
    if result.truncated:
        return ExecuteResponse(
            success=False,
            error=f"the function's reply is larger than {len(result.payload):,} bytes",
            error_code=ErrorCode.INVALID_RESPONSE.value,
        )
    try:
        reply = decode_reply(result.payload)
    except _Unusable as exc:
        return ExecuteResponse(
            success=False, error=str(exc), error_code=ErrorCode.INVALID_RESPONSE.value
        )
    return parse(reply)
