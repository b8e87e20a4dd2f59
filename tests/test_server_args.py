"""Shell-style splitting of the router's one-string ``args``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from module_sdk.server import split_args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("London", ["London"]),
        ('London "New York"', ["London", "New York"]),
        ("say 'hello world' twice", ["say", "hello world", "twice"]),
        ('"" empty', ["", "empty"]),
        ('a"b c"d', ["ab cd"]),
        ("  spaced\tout\n", ["spaced", "out"]),
        ("it's raining", ["it's", "raining"]),
        ('"unclosed quote here', ['"unclosed', "quote", "here"]),
        (r"C:\temp \o/", [r"C:\temp", r"\o/"]),
        ("#channel @user", ["#channel", "@user"]),
        ("no\u00a0break\u3000ideographic", ["no", "break", "ideographic"]),
        ('"no\u00a0break" x', ["no\u00a0break", "x"]),
        ("", []),
    ],
    ids=[
        "one-word",
        "double-quotes",
        "single-quotes",
        "empty-quoted",
        "glued-quotes",
        "whitespace",
        "apostrophe",
        "unclosed",
        "backslashes-kept",
        "no-comments",
        "unicode-spaces",
        "quoted-unicode-space",
        "empty",
    ],
)
def test_split_args(text: str, expected: list[str]) -> None:
    """Quotes group words, backslashes and # are literal, unbalanced quotes fall back."""
    assert split_args(text) == expected


@given(st.text())
def test_text_without_quotes_splits_on_whitespace(text: str) -> None:
    """Without quote characters the result is exactly ``str.split()``."""
    unquoted = text.replace('"', "").replace("'", "")
    assert split_args(unquoted) == unquoted.split()


@given(st.lists(st.text().map(lambda s: s.replace('"', ""))))
def test_double_quoted_words_come_back_intact(words: list[str]) -> None:
    """Any words (spaces, apostrophes, backslashes included) survive double-quoting."""
    assert split_args(" ".join(f'"{w}"' for w in words)) == words
