"""The LambdaAdapter's call settings: one frozen object, validated once on construction.

Every check is one of :mod:`module_sdk._validate`'s, so a bad value is refused with the same
kind of message wherever it is given (the adapter's keyword arguments, the module server's
configuration file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from module_sdk._validate import boolean, integer, number, optional_text
from module_sdk.aws_lambda.api import LOG_TYPES, InvocationType, LogType, invocation_type
from module_sdk.aws_lambda.clients import DEFAULT_MAX_CONNECTIONS
from module_sdk.errors import ConfigurationError

__all__ = ["MAX_RETRIES_LIMIT", "LambdaSettings"]

MAX_RETRIES_LIMIT = 100
"""The most retries ``max_retries`` may ask for."""


@dataclass(frozen=True, slots=True)
class LambdaSettings:
    """How a LambdaAdapter calls its function (see :class:`LambdaAdapter` for each setting).

    Numbers are stored as floats; credentials are left out of ``repr()``.

    Raises:
        ConfigurationError: a setting is invalid; the message names it and what is allowed.
    """

    invocation_type: InvocationType = "RequestResponse"
    log_type: LogType = "None"
    max_retries: int = 3
    initial_retry_delay: float = 0.5
    max_retry_delay: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float | None = None
    retry_on_timeout: bool = True
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    endpoint_url: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None

    def __post_init__(self) -> None:
        invocation_type(self.invocation_type)
        if self.log_type not in LOG_TYPES:
            raise ConfigurationError(f"log_type={self.log_type!r} is invalid: use 'None' or 'Tail'")
        integer("max_retries", self.max_retries, minimum=0, maximum=MAX_RETRIES_LIMIT)
        for name in ("initial_retry_delay", "max_retry_delay", "connect_timeout", "read_timeout"):
            object.__setattr__(self, name, number(name, getattr(self, name)))
        if self.total_timeout is not None:
            object.__setattr__(self, "total_timeout", number("total_timeout", self.total_timeout))
        boolean("retry_on_timeout", self.retry_on_timeout)
        integer("max_connections", self.max_connections, minimum=1)
        url = self.endpoint_url
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise ConfigurationError(
                f"endpoint_url={url!r} is invalid: use an http:// or https:// URL"
            )
        access_key = optional_text("aws_access_key_id", self.aws_access_key_id)
        secret_key = optional_text("aws_secret_access_key", self.aws_secret_access_key)
        session_token = optional_text("aws_session_token", self.aws_session_token)
        if (access_key is None) != (secret_key is None):
            raise ConfigurationError(
                "aws_access_key_id and aws_secret_access_key must be given together "
                "(or neither, to use the standard AWS credential chain)"
            )
        if session_token is not None and access_key is None:
            raise ConfigurationError(
                "aws_session_token needs aws_access_key_id and aws_secret_access_key too"
            )
        optional_text("profile_name", self.profile_name)
