"""What the adapter accepts in a function's reply (pure, standard library only).

Shared by the adapter's response parsing and by ``module_sdk.handler``, which refuses to send
a reply the adapter would reject.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_REPLY_DEPTH", "nested_too_deep", "too_deep"]

MAX_REPLY_DEPTH = 100
"""Deepest nesting of lists and objects accepted in a reply (deeper: ``invalid_response``)."""


def nested_too_deep(text: str, value: Any) -> bool:
    """Whether ``value`` (decoded from ``text``) nests more than MAX_REPLY_DEPTH levels."""
    return text.count("[") + text.count("{") > MAX_REPLY_DEPTH and too_deep(value)


def too_deep(value: Any, limit: int = MAX_REPLY_DEPTH) -> bool:
    """Whether a decoded JSON value nests containers more than ``limit`` levels (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
