"""Split the router's ``args`` string into a list, the way a shell would (quotes group words)."""

from __future__ import annotations

import shlex

__all__ = ["split_args"]


def split_args(text: str) -> list[str]:
    """Split chat arguments like a shell: ``'London "New York"'`` -> ``["London", "New York"]``.

    Single and double quotes group words and are removed. Unlike a shell, a backslash is kept
    as it is (chat text such as ``¯\\_(ツ)_/¯`` or ``C:\\temp`` is not shell code) and ``#``
    starts no comment. When the quotes do not balance (``it's raining``), the text is split on
    whitespace only and every character is kept.
    """
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return list(lexer)
    except ValueError:  # "No closing quotation"
        return text.split()
