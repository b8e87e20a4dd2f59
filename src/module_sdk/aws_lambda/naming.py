"""Function identifiers: names, ``name:qualifier``, partial and full ARNs (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from module_sdk.aws_lambda.api import (
    FUNCTION_RE,
    MAX_IDENTIFIER,
    MAX_NAME,
    MAX_QUALIFIER,
    QUALIFIER_RE,
)
from module_sdk.errors import ConfigurationError

__all__ = ["FunctionTarget", "resolve_function", "validate_qualifier", "validate_region"]

_FUNCTION_RE = FUNCTION_RE
_QUALIFIER_RE = QUALIFIER_RE
_REGION_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NAME_CHARS_RE = re.compile(r"[a-zA-Z0-9\-_]+")

_NAME_HELP = (
    "use a function name (letters, digits, '-', '_', at most 64), 'name:qualifier', "
    "a partial ARN '123456789012:function:name' or a full ARN "
    "'arn:aws:lambda:REGION:ACCOUNT:function:name[:qualifier]'"
)


@dataclass(frozen=True, slots=True)
class FunctionTarget:
    """Where a call goes.

    Attributes:
        function_name: the ``FunctionName`` sent to Lambda (prefix applied, qualifier removed).
        qualifier: the version or alias, or None for ``$LATEST``'s default.
        region: the region embedded in an ARN, or None.
        is_arn: True for a full or partial ARN (the prefix never applies to those).
    """

    function_name: str
    qualifier: str | None
    region: str | None
    is_arn: bool

    @property
    def display_name(self) -> str:
        """``function_name[:qualifier]`` for logs and metrics."""
        return f"{self.function_name}:{self.qualifier}" if self.qualifier else self.function_name


def validate_region(region: object, parameter: str = "region") -> str:
    """Return ``region`` when it looks like an AWS region name, else raise ConfigurationError."""
    if not isinstance(region, str) or not _REGION_RE.fullmatch(region):
        raise ConfigurationError(
            f"{parameter}={region!r} is invalid: use an AWS region name such as 'us-east-1'"
        )
    return region


def validate_qualifier(qualifier: object, parameter: str = "qualifier") -> str:
    """Return ``qualifier`` when it is a valid version or alias, else raise ConfigurationError."""
    if (
        not isinstance(qualifier, str)
        or not 1 <= len(qualifier) <= MAX_QUALIFIER
        or not _QUALIFIER_RE.fullmatch(qualifier)
    ):
        raise ConfigurationError(
            f"{parameter}={qualifier!r} is invalid: use a version number, an alias "
            "(letters, digits, '-', '_', at most 128) or '$LATEST'"
        )
    return qualifier


def resolve_function(
    identifier: object,
    *,
    prefix: str | None = None,
    qualifier: str | None = None,
) -> FunctionTarget:
    """Turn a function identifier into a :class:`FunctionTarget`.

    The ``prefix`` is glued to bare names only (``dice`` -> ``waddlebot-dice``), never to ARNs.
    A qualifier may come from the identifier (``dice:prod``) or the ``qualifier`` argument;
    giving two different ones is an error.
    """
    if not isinstance(identifier, str) or not identifier.strip():
        raise ConfigurationError(
            f"function_identifier={identifier!r} is invalid: it must be a non-empty string; "
            + _NAME_HELP
        )
    if len(identifier) > MAX_IDENTIFIER:
        raise ConfigurationError(
            f"function_identifier={identifier[:80]!r}... is invalid: at most "
            f"{MAX_IDENTIFIER} characters are allowed"
        )
    match = _FUNCTION_RE.fullmatch(identifier)
    if match is None:
        raise ConfigurationError(f"function_identifier={identifier!r} is invalid: {_NAME_HELP}")
    if prefix is not None and (not isinstance(prefix, str) or not _NAME_CHARS_RE.fullmatch(prefix)):
        raise ConfigurationError(
            f"function_prefix={prefix!r} is invalid: use letters, digits, '-' or '_'"
        )
    if qualifier is not None:
        validate_qualifier(qualifier)

    embedded = match["qualifier"]
    if embedded and qualifier and embedded != qualifier:
        raise ConfigurationError(
            f"function_identifier={identifier!r} names qualifier {embedded!r} but "
            f"qualifier={qualifier!r} was also given: give one of them"
        )
    final_qualifier = qualifier or embedded

    is_arn = bool(match["arn"] or match["account"] or match["function"] or match["region"])
    name = match["name"]
    if is_arn:
        base = identifier if not embedded else identifier[: -(len(embedded) + 1)]
        return FunctionTarget(
            function_name=base, qualifier=final_qualifier, region=match["region"], is_arn=True
        )

    full_name = f"{prefix or ''}{name}"
    if not _NAME_CHARS_RE.fullmatch(full_name) or len(full_name) > MAX_NAME:
        raise ConfigurationError(
            f"function_identifier={identifier!r} (with function_prefix={prefix!r}: "
            f"{full_name!r}) is invalid: a function name has at most {MAX_NAME} letters, "
            "digits, '-' or '_'"
        )
    return FunctionTarget(
        function_name=full_name, qualifier=final_qualifier, region=None, is_arn=False
    )
