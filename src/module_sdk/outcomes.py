"""What each error code means for retries, health, the circuit breaker and the dead-letter
queue: one table, read by every part of the SDK that decides on an outcome (pure).

=========================  =======  ==========  =====  =======  ============
error code                 retried  reached     error  outage   dead-letter
=========================  =======  ==========  =====  =======  ============
throttled                  yes      yes         yes    yes      yes
timeout                    yes      yes         yes    yes      yes
connection                 yes      yes         yes    yes      yes
service_error              yes      yes         yes    yes      yes
function_error             no       yes         yes    no       no
module_error               no       yes         no     no       no
invalid_response           no       yes         yes    no       no
not_found                  no       yes         yes    no       yes
access_denied              no       yes         yes    no       yes
credentials                no       yes         yes    no       yes
invalid_request            no       no          yes    no       no
payload_too_large          no       no          yes    no       no
configuration              no       yes         yes    no       yes
circuit_open               no       no          yes    no       yes
rate_limited               no       no          yes    no       yes
deadline_exceeded          no       yes         yes    yes      yes
retry_budget_exhausted     no       yes         yes    yes      yes
cancelled                  no       no          yes    no       no
duplicate_execution        no       yes         no     no       no
internal                   no       yes         yes    no       yes
unauthorized               no       no          yes    no       no
too_many_failures          no       no          yes    no       no
bad_request                no       no          yes    no       no
headers_too_large          no       no          yes    no       no
too_many_connections       no       no          yes    no       no
body_timeout               no       no          yes    no       no
args_too_large             no       no          yes    no       no
unknown_command            no       no          yes    no       no
unknown_module             no       no          yes    no       no
missing_scopes             no       no          yes    no       no
method_not_allowed         no       no          yes    no       no
http_error                 no       no          yes    no       no
busy                       no       no          yes    no       no
disconnected               no       no          yes    no       no
=========================  =======  ==========  =====  =======  ============

- **retried**: a failed attempt with this code is tried again (within ``max_retries``, the
  retry budget and the deadline).
- **reached**: the call counts for health and the circuit breaker. Refusals made before
  any call (the caller's bad request, a rate limit, an open breaker, the module server's own
  refusals from ``unauthorized`` on) and cancelled calls say nothing about the path to the
  function.
- **error**: a failure of the call. ``module_error`` is the function's own business answer
  (``success: false``): a healthy call, never an error in health, metrics or traces; so is
  ``duplicate_execution``, Lambda recognising a repeated start of a durable execution.
- **outage**: counts as a failure for the circuit breaker by default
  (``CircuitBreakerConfig.failure_codes``). The function's own errors are answers.
- **dead-letter**: a final failure kept by the dead-letter queue. Not kept: bad requests and
  the function's own answers, which a replay cannot change.
"""

from __future__ import annotations

from dataclasses import dataclass

from module_sdk.errors import ErrorCode

__all__ = [
    "DEAD_LETTER_CODES",
    "NOT_REACHED_CODES",
    "OUTAGE_CODES",
    "RETRIED_CODES",
    "RULES",
    "CodeRule",
    "counts_for_health",
    "is_error",
]


@dataclass(frozen=True, slots=True)
class CodeRule:
    """One row of the table (see the module docs for the columns)."""

    retried: bool = False
    reached: bool = True
    error: bool = True
    outage: bool = False
    dead_letter: bool = False


_TRANSIENT = CodeRule(retried=True, outage=True, dead_letter=True)
_FIXABLE = CodeRule(dead_letter=True)  # an operator fixes it, then the same event goes through
_ANSWER = CodeRule()  # the function answered: a replay would get the same answer
_REFUSED = CodeRule(reached=False)

RULES: dict[ErrorCode, CodeRule] = {
    ErrorCode.THROTTLED: _TRANSIENT,
    ErrorCode.TIMEOUT: _TRANSIENT,
    ErrorCode.CONNECTION: _TRANSIENT,
    ErrorCode.SERVICE_ERROR: _TRANSIENT,
    ErrorCode.FUNCTION_ERROR: _ANSWER,
    ErrorCode.MODULE_ERROR: CodeRule(error=False),
    ErrorCode.INVALID_RESPONSE: _ANSWER,
    ErrorCode.NOT_FOUND: _FIXABLE,
    ErrorCode.ACCESS_DENIED: _FIXABLE,
    ErrorCode.CREDENTIALS: _FIXABLE,
    ErrorCode.INVALID_REQUEST: _REFUSED,
    ErrorCode.PAYLOAD_TOO_LARGE: _REFUSED,
    ErrorCode.CONFIGURATION: _FIXABLE,
    ErrorCode.CIRCUIT_OPEN: CodeRule(reached=False, dead_letter=True),
    ErrorCode.RATE_LIMITED: CodeRule(reached=False, dead_letter=True),
    ErrorCode.DEADLINE_EXCEEDED: CodeRule(outage=True, dead_letter=True),
    ErrorCode.RETRY_BUDGET_EXHAUSTED: CodeRule(outage=True, dead_letter=True),
    ErrorCode.CANCELLED: _REFUSED,
    ErrorCode.DUPLICATE_EXECUTION: CodeRule(error=False),
    ErrorCode.INTERNAL: _FIXABLE,
    ErrorCode.UNAUTHORIZED: _REFUSED,
    ErrorCode.TOO_MANY_FAILURES: _REFUSED,
    ErrorCode.BAD_REQUEST: _REFUSED,
    ErrorCode.HEADERS_TOO_LARGE: _REFUSED,
    ErrorCode.TOO_MANY_CONNECTIONS: _REFUSED,
    ErrorCode.BODY_TIMEOUT: _REFUSED,
    ErrorCode.ARGS_TOO_LARGE: _REFUSED,
    ErrorCode.UNKNOWN_COMMAND: _REFUSED,
    ErrorCode.UNKNOWN_MODULE: _REFUSED,
    ErrorCode.MISSING_SCOPES: _REFUSED,
    ErrorCode.METHOD_NOT_ALLOWED: _REFUSED,
    ErrorCode.HTTP_ERROR: _REFUSED,
    ErrorCode.BUSY: _REFUSED,
    ErrorCode.DISCONNECTED: _REFUSED,
}
"""Every error code's row."""


def _codes(column: str) -> frozenset[str]:
    return frozenset(code.value for code, rule in RULES.items() if getattr(rule, column))


RETRIED_CODES = _codes("retried")
"""Codes whose failed attempts are retried."""
OUTAGE_CODES = _codes("outage")
"""Codes the circuit breaker counts as failures by default."""
DEAD_LETTER_CODES = _codes("dead_letter")
"""Codes whose final failures the dead-letter queue keeps."""
NOT_REACHED_CODES = frozenset(code.value for code, rule in RULES.items() if not rule.reached)
"""Codes of calls refused (or cancelled) before they said anything about the function."""
_NOT_ERRORS = frozenset(code.value for code, rule in RULES.items() if not rule.error)


def is_error(error_code: str | None) -> bool:
    """Whether a finished call with this code failed (``module_error`` and success did not).

    A code the table does not know (a subclass's parser may invent one) is an error.
    """
    return error_code is not None and error_code not in _NOT_ERRORS


def counts_for_health(error_code: str | None) -> bool:
    """Whether a finished call with this code says something about the path to the
    function."""
    return error_code not in NOT_REACHED_CODES
