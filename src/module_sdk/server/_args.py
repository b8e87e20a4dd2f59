"""Split the router's ``args`` string into a list, the way a shell would (quotes group words)."""

from __future__ import annotations

import shlex

__all__ = ["split_args"]

# Every character str.split() splits on (str.isspace): chat text has no-break and ideographic
# spaces too, and the quoted path must split exactly like the fast path.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
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
        return text.split()  # the common case, and what the lexer would answer
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = _WHITESPACE
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return list(lexer)
    except ValueError:  # "No closing quotation"
        return text.split()
