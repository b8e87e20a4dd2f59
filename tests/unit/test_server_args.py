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


def _shell_oracle(text: str) -> list[str]:
    """The standard library's shell lexer with the same rules (no escapes, no comments)."""
    import shlex

    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return list(lexer)
    except ValueError:
        return text.split()


@given(st.text(alphabet=st.sampled_from(list("ab \"'\t\u00a0\u3000\\#")), max_size=40))
def test_split_args_agrees_with_the_shell_lexer(text: str) -> None:
    assert split_args(text) == _shell_oracle(text)


@pytest.mark.parametrize(
    "text",
    [
        '"' + "x" * 1_000_000 + '"',  # one long quoted word
        "'a b' " * 150_000,  # many short quoted words
        '"' + "x " * 500_000,  # a quote that never closes
    ],
    ids=["long-word", "many-words", "unclosed"],
)
def test_split_args_is_linear(text: str) -> None:
    # A million characters take a fraction of a second; the shell lexer took about 17 s.
    import time

    started = time.process_time()
    split_args(text)
    assert time.process_time() - started < 3.0
