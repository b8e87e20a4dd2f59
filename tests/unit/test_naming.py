"""Function identifiers: names, qualifiers, partial and full ARNs, the prefix."""

from __future__ import annotations

import pytest

from module_sdk.aws_lambda.naming import resolve_function, validate_qualifier, validate_region
from module_sdk.errors import ConfigurationError

ARN = "arn:aws:lambda:us-west-2:123456789012:function:my-function"


@pytest.mark.parametrize(
    ("identifier", "prefix", "qualifier", "expected"),
    [
        ("dice", None, None, ("dice", None, None, False)),
        ("dice", "waddlebot-", None, ("waddlebot-dice", None, None, False)),
        ("dice:prod", "waddlebot-", None, ("waddlebot-dice", "prod", None, False)),
        ("dice:7", None, None, ("dice", "7", None, False)),
        ("dice:$LATEST", None, None, ("dice", "$LATEST", None, False)),
        ("dice", None, "live", ("dice", "live", None, False)),
        (ARN, "waddlebot-", None, (ARN, None, "us-west-2", True)),
        (ARN + ":prod", "waddlebot-", None, (ARN, "prod", "us-west-2", True)),
        (
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:f",
            None,
            None,
            ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f", None, "cn-north-1", True),
        ),
        (
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:3",
            None,
            None,
            (
                "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f",
                "3",
                "us-gov-west-1",
                True,
            ),
        ),
        (
            "123456789012:function:my-function",
            "waddlebot-",
            None,
            ("123456789012:function:my-function", None, None, True),
        ),
    ],
    ids=[
        "name",
        "prefixed",
        "name-qualifier-prefixed",
        "version",
        "latest",
        "qualifier-arg",
        "arn-no-prefix",
        "arn-qualifier",
        "china",
        "govcloud-version",
        "partial-arn",
    ],
)
def test_resolve(
    identifier: str,
    prefix: str | None,
    qualifier: str | None,
    expected: tuple[str, str | None, str | None, bool],
) -> None:
    """Each accepted form resolves to the right name, qualifier and region."""
    target = resolve_function(identifier, prefix=prefix, qualifier=qualifier)
    assert (target.function_name, target.qualifier, target.region, target.is_arn) == expected


@pytest.mark.parametrize(
    ("identifier", "prefix", "qualifier", "fragment"),
    [
        ("", None, None, "non-empty"),
        ("   ", None, None, "non-empty"),
        ("bad name", None, None, "function_identifier='bad name'"),
        ("x" * 65, None, None, "at most 64"),
        ("x" * 60, "waddlebot-", None, "at most 64"),
        ("a" * 300, None, None, "at most 256"),
        ("dice:prod", None, "live", "give one of them"),
        ("dice", "bad prefix!", None, "function_prefix"),
        ("dice", None, "bad qualifier!", "qualifier='bad qualifier!'"),
        ("dice", None, "", "qualifier=''"),
    ],
    ids=[
        "empty",
        "blank",
        "space",
        "too-long",
        "too-long-with-prefix",
        "over-256",
        "two-qualifiers",
        "bad-prefix",
        "bad-qualifier",
        "empty-qualifier",
    ],
)
def test_resolve_rejects(
    identifier: str, prefix: str | None, qualifier: str | None, fragment: str
) -> None:
    """Bad identifiers raise ConfigurationError (a ValueError) naming the problem."""
    with pytest.raises(ValueError, match=r"is invalid|give one of them") as info:
        resolve_function(identifier, prefix=prefix, qualifier=qualifier)
    assert isinstance(info.value, ConfigurationError)
    assert fragment in str(info.value)


def test_resolve_rejects_non_string() -> None:
    """A non-string identifier is refused."""
    with pytest.raises(ConfigurationError, match="non-empty string"):
        resolve_function(42)


def test_display_name() -> None:
    """display_name shows the qualifier."""
    assert resolve_function("dice:prod").display_name == "dice:prod"
    assert resolve_function("dice").display_name == "dice"


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "us-gov-west-1", "cn-north-1"])
def test_valid_regions(region: str) -> None:
    """Real region names pass."""
    assert validate_region(region) == region


@pytest.mark.parametrize("region", ["", "US-EAST-1", "us east 1", None, 5, "-us"])
def test_invalid_regions(region: object) -> None:
    """Bad regions name the parameter."""
    with pytest.raises(ConfigurationError, match="region="):
        validate_region(region)


@pytest.mark.parametrize("qualifier", ["$LATEST", "$LATEST.PUBLISHED", "7", "prod", "blue_green-2"])
def test_valid_qualifiers(qualifier: str) -> None:
    """Versions and aliases pass."""
    assert validate_qualifier(qualifier) == qualifier


def test_qualifier_too_long() -> None:
    """Qualifiers are at most 128 characters."""
    with pytest.raises(ConfigurationError):
        validate_qualifier("a" * 129)
