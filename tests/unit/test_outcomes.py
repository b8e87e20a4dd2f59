"""The outcome table: every error code's rule, and every part of the SDK reading it."""

from __future__ import annotations

import pytest

from module_sdk import ErrorCode
from module_sdk.aws_lambda.classify import classify_client_error
from module_sdk.outcomes import (
    DEAD_LETTER_CODES,
    NOT_REACHED_CODES,
    OUTAGE_CODES,
    RETRIED_CODES,
    RULES,
    counts_for_health,
    is_error,
)
from module_sdk.resilience.breaker import DEFAULT_FAILURE_CODES, CircuitBreakerConfig, Outcome
from module_sdk.resilience.deadletter import DEAD_LETTER_CODES as DLQ_CODES

# code: (retried, reached, error, outage, dead-letter), as the module docs' table says.
EXPECTED = {
    "throttled": (True, True, True, True, True),
    "timeout": (True, True, True, True, True),
    "connection": (True, True, True, True, True),
    "service_error": (True, True, True, True, True),
    "function_error": (False, True, True, False, False),
    "module_error": (False, True, False, False, False),
    "invalid_response": (False, True, True, False, False),
    "not_found": (False, True, True, False, True),
    "access_denied": (False, True, True, False, True),
    "credentials": (False, True, True, False, True),
    "invalid_request": (False, False, True, False, False),
    "payload_too_large": (False, False, True, False, False),
    "configuration": (False, True, True, False, True),
    "circuit_open": (False, False, True, False, True),
    "rate_limited": (False, False, True, False, True),
    "deadline_exceeded": (False, True, True, True, True),
    "retry_budget_exhausted": (False, True, True, True, True),
    "cancelled": (False, False, True, False, False),
    "internal": (False, True, True, False, True),
    "duplicate_execution": (False, True, False, False, False),
    "unauthorized": (False, False, True, False, False),
    "too_many_failures": (False, False, True, False, False),
    "bad_request": (False, False, True, False, False),
    "headers_too_large": (False, False, True, False, False),
    "too_many_connections": (False, False, True, False, False),
    "body_timeout": (False, False, True, False, False),
    "args_too_large": (False, False, True, False, False),
    "unknown_command": (False, False, True, False, False),
    "unknown_module": (False, False, True, False, False),
    "missing_scopes": (False, False, True, False, False),
    "method_not_allowed": (False, False, True, False, False),
    "http_error": (False, False, True, False, False),
    "busy": (False, False, True, False, False),
    "disconnected": (False, False, True, False, False),
}


def test_the_table_row_by_row() -> None:
    """Every error code has exactly the documented row, and no code is missing."""
    got = {
        code.value: (rule.retried, rule.reached, rule.error, rule.outage, rule.dead_letter)
        for code, rule in RULES.items()
    }
    assert got == EXPECTED
    assert set(RULES) == set(ErrorCode)


def test_the_module_docs_show_the_same_table() -> None:
    """The table in the module's docstring is the table in the code."""
    import module_sdk.outcomes as outcomes

    assert outcomes.__doc__ is not None
    yes_no = {"yes": True, "no": False}
    rows = {}
    for line in outcomes.__doc__.splitlines():
        cells = line.split()
        if len(cells) == 6 and cells[0] in EXPECTED:
            rows[cells[0]] = tuple(yes_no[c] for c in cells[1:])
    assert rows == EXPECTED


def test_the_derived_sets_and_the_parts_that_use_them() -> None:
    """Breaker defaults and dead-letter codes are the table's columns, not copies."""
    column = {name: {c for c, row in EXPECTED.items() if row[i]} for i, name in enumerate("rReOd")}
    assert column["r"] == RETRIED_CODES
    assert {c for c, row in EXPECTED.items() if not row[1]} == NOT_REACHED_CODES
    assert column["O"] == OUTAGE_CODES == DEFAULT_FAILURE_CODES
    assert column["d"] == DEAD_LETTER_CODES == DLQ_CODES


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("TooManyRequestsException", 429, "throttled"),
        ("ServiceException", 500, "service_error"),
        ("", 503, "service_error"),
        ("ResourceNotFoundException", 404, "not_found"),
        ("AccessDeniedException", 403, "access_denied"),
        ("RequestTooLargeException", 413, "payload_too_large"),
        ("InvalidParameterValueException", 400, "invalid_request"),
        ("KMSAccessDeniedException", 502, "configuration"),
    ],
)
def test_classification_retries_what_the_table_retries(
    code: str, status: int, expected: str
) -> None:
    """An AWS error is retried exactly when its code's row says so."""
    error = classify_client_error(code, status, "message")
    assert error.error_code.value == expected
    assert error.retryable is (expected in RETRIED_CODES)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_health_and_breaker_read_the_same_rows(code: str) -> None:
    """Health counts what the breaker may judge; a business answer is never an error."""
    reached, error = EXPECTED[code][1], EXPECTED[code][2]
    assert counts_for_health(code) is reached
    assert is_error(code) is error
    outcome = CircuitBreakerConfig().classify(code, attempts=1)
    if not reached:
        assert outcome is Outcome.IGNORED
    else:
        assert outcome is (Outcome.FAILURE if code in OUTAGE_CODES else Outcome.SUCCESS)


def test_success_and_unknown_codes() -> None:
    """No code is a counted success; a code the table does not know is a counted error."""
    assert counts_for_health(None) and not is_error(None)
    assert counts_for_health("made_up") and is_error("made_up")


def test_every_code_the_module_server_answers_is_in_the_vocabulary() -> None:
    """The module server's status table (docs/server.md) uses only ErrorCode values: the
    router sees one vocabulary, whoever refused the call."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "server.md"
    table = docs.read_text(encoding="utf-8").split("| Status | `error_code` | When |")[1]
    rows = table.split("\n\n")[0].splitlines()[2:]
    assert rows, "the status table of docs/server.md is missing"
    seen: set[str] = set()
    for row in rows:
        status, codes, _ = row.removeprefix("| ").split(" | ", 2)
        for code in codes.split("`")[1::2]:
            seen.add(code)
            assert code in {c.value for c in ErrorCode}, f"{code!r} (status {status})"
    assert {"unauthorized", "busy", "unknown_command", "too_many_connections"} <= seen
