"""Chat arguments as one string and back: split like a shell would, join so it splits back.

The module server splits the router's one-string ``args`` with :func:`split_args`; the Lambda
event carries them joined by :func:`join_args` in ``trigger.context_text``; a function reads
them back with :func:`split_args` (``module_sdk.handler.Event.args``). One module, so the three
always agree: ``split_args(join_args(words)) == words`` for any list of strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["join_args", "split_args"]

# Every character str.split() splits on (str.isspace): chat text has no-break and ideographic
# spaces too, and the quoted path must split exactly like the fast path.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE = "[" + re.escape(_WHITESPACE) + "]"
# One pass, each character read once: a quoted run, a plain run, a whitespace run, or a quote
# without its closing partner. (shlex, used before, grew quadratically on long quoted words.)
_TOKEN = re.compile(
    r"(?P<quoted>\"[^\"]*\"|'[^']*')"
    rf"|(?P<plain>[^\"'{re.escape(_WHITESPACE)}]+)"
    rf"|(?P<space>{_SPACE}+)"
    r"|(?P<lone>[\"'])"
)


def split_args(text: str) -> list[str]:
    """Split chat arguments like a shell: ``'London "New York"'`` -> ``["London", "New York"]``.

    Words are separated by any whitespace (including no-break and ideographic spaces); single
    and double quotes group words and are removed. Unlike a shell, a backslash is kept
    as it is (chat text such as ``¯\\_(ツ)_/¯`` or ``C:\\temp`` is not shell code) and ``#``
    starts no comment. When the quotes do not balance (``it's raining``), the text is split on
    whitespace only and every character is kept.
    """
    if '"' not in text and "'" not in text:
        return text.split()  # the common case
    words: list[str] = []
    parts: list[str] = []
    in_word = False
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "space":
            if in_word:
                words.append("".join(parts))
                parts = []
                in_word = False
        elif kind == "lone":  # a quote that never closes: split on whitespace only
            return text.split()
        else:
            token = match.group()
            parts.append(token[1:-1] if kind == "quoted" else token)
            in_word = True
    if in_word:
        words.append("".join(parts))
    return words


def join_args(words: Iterable[str]) -> str:
    """Join words with spaces, quoting only where needed so :func:`split_args` gives them back.

    ``["London", "New York"]`` -> ``'London "New York"'``; plain words are kept as they are, so
    ``["2d6"]`` is ``"2d6"`` and ``["it's"]`` is ``'"it\\'s"'``.
    """
    words = list(words)
    if not any(_needs_quotes(word) for word in words):
        return " ".join(words)
    return " ".join(_quote(word) for word in words)


def _needs_quotes(word: str) -> bool:
    return not word or '"' in word or "'" in word or any(c.isspace() for c in word)


def _quote(word: str) -> str:
    if not _needs_quotes(word):
        return word
    if '"' not in word:
        return f'"{word}"'
    if "'" not in word:
        return f"'{word}'"
    # Both kinds: quote runs separately; adjacent quoted parts glue into one word.
    parts: list[str] = []
    run = ""
    for char in word:
        if char == '"':
            if run:
                parts.append(f'"{run}"')
                run = ""
            parts.append("'\"'")
        else:
            run += char
    if run:
        parts.append(f'"{run}"')
    return "".join(parts)
