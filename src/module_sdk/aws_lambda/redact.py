"""Keeping credentials out of text: AWS error messages and botocore's DEBUG logs.

AWS echoes parts of a signed request back in some error messages (``InvalidSignatureException``
quotes the canonical request, security-token header included), and botocore logs every request
(headers with the ``Authorization`` credential scope and ``X-Amz-Security-Token``), the
canonical request and the response bodies at DEBUG. :func:`redact` removes key ids, SigV4
credentials and signatures and session tokens from such text; :func:`install_log_redaction`
adds a filter doing the same to botocore's and aiobotocore's loggers, so turning the root
logger to DEBUG never writes credentials anywhere. The filter only rewrites records those
loggers already emit: it adds no handler and changes no level.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "BOTOCORE_LOGGERS",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "without_userinfo",
]

_PATTERNS = (
    # access key ids: long-term (AKIA), temporary (ASIA), and the other IAM unique ids
    (re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA|AGPA|ANPA|ANVA|AIPA)[A-Z0-9]{12,}\b"), "[REDACTED]"),
    # SigV4 pieces: Credential=<key id>/<scope>, Signature=<hex>
    (re.compile(r"(Credential=)[^,\s&\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(Signature=)[0-9a-fA-F]+"), r"\1[REDACTED]"),
    # the session token as a header line, a query parameter or in a dict's repr
    (
        re.compile(r"(?i)(x-amz-security-token['\"]?\s*[=:]\s*b?['\"]?)[^\s&\"',}]+"),
        r"\1[REDACTED]",
    ),
    (
        re.compile(
            r"(?i)((?:aws_)?(?:secret_access_key|session_token|security_token)['\"]?\s*[=:]\s*"
            r"b?['\"]?)[^\s,\"'}]+"
        ),
        r"\1[REDACTED]",
    ),
)

BOTOCORE_LOGGERS = tuple(
    f"{package}.{module}"
    for package, modules in (
        (
            "botocore",
            (
                "auth",
                "awsrequest",
                "client",
                "credentials",
                "endpoint",
                "handlers",
                "hooks",
                "httpchecksum",
                "httpsession",
                "parsers",
                "retryhandler",
                "utils",
            ),
        ),
        ("aiobotocore", ("credentials", "endpoint", "httpsession", "utils")),
    )
    for module in modules
)
"""The loggers that print requests, signing steps, responses or credential sources."""


def without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part (endpoints are shown in logs and keys)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact(text: str) -> str:
    """``text`` without access key ids, SigV4 credentials and signatures or session tokens."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through :func:`redact` (it never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the formatted message in place."""
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem to report, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


_FILTER = RedactingFilter()
_LOCK = threading.Lock()


def install_log_redaction() -> None:
    """Add the redacting filter to :data:`BOTOCORE_LOGGERS` (once; safe to call again)."""
    with _LOCK:
        for name in BOTOCORE_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
