"""Credentials never leak: canary keys set everywhere, then every output is searched for them.

A canary access key id, secret key and session token are set in the environment and passed to
the adapters. Calls then go through every path (success, throttling, 5xx, dropped connection,
function error, AWS errors that echo the signed request back, missing function, Event calls
that end in the dead-letter queue, refusals) with the root logger at DEBUG — botocore's
request and signing logs included — and every log line, repr, exception message, metric
exposition, span attribute, EMF record, health and module-info dict and dead-letter entry is
searched for the canaries.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from module_sdk import ExecuteRequest, ExecuteResponse
from module_sdk.adapters import LambdaAdapter
from module_sdk.aws_lambda.clients import ClientSettings
from module_sdk.aws_lambda.redact import (
    _FILTER,
    BOTOCORE_LOGGERS,
    install_log_redaction,
    redact,
)
from module_sdk.errors import ModuleSDKError
from module_sdk.observability import EmfObserver, PrometheusMetrics, TracingObserver
from module_sdk.observability.prometheus import render_metrics
from module_sdk.resilience.deadletter import (
    DeadLetterEntry,
    SQLiteDeadLetterSink,
    SQSDeadLetterSink,
    new_entry_id,
)
from module_sdk.testing import Reply, ScriptedLambdaServer
from support.moto_lambda import FAKE_KEY_ID, FAKE_SECRET, MotoLambda
from support.observability import in_memory_tracer

ACCESS_KEY = "AKIACANARY7ZX4Q2W9RT"
SECRET_KEY = "canarySecret/k3y+Zq8pV2mN4bX6cR1tY9uW0sL5eJ7hG3fD"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjanaryTOKEN//session+token/ZXhhbXBsZS10b2tlbg=="
CANARIES = (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)


def leaks(text: str) -> list[str]:
    """The canaries (or a telling 12-character piece of one) found in ``text``."""
    found = []
    for canary in CANARIES:
        pieces = {canary, canary[4:16], canary[-12:]}
        if any(piece in text for piece in pieces):
            found.append(canary[:8] + "...")
    return found


@pytest.fixture(autouse=True)
def _canary_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The canaries are the process's AWS credentials for every test of this module."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def signature_mismatch_body() -> bytes:
    """A 403 like AWS's, echoing the canonical request (with the token) and the credential."""
    message = (
        "The request signature we calculated does not match the signature you provided. "
        "The Canonical String for this request should have been\n'POST\n/2015-03-31/functions/"
        f"dice/invocations\n\nhost:lambda\nx-amz-security-token:{SESSION_TOKEN}\n'\n"
        f"Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261126/us-east-1/lambda/"
        "aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=abc123"
    )
    return json.dumps({"message": message}).encode()


def scripted_replies() -> list[Reply]:
    """One reply of every kind, including AWS errors that echo credentials back."""
    echo = Reply(
        403,
        signature_mismatch_body(),
        {"x-amzn-ErrorType": "InvalidSignatureException", "Content-Type": "application/json"},
    )
    token_invalid = Reply.aws_error(
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    return [
        Reply.ok({"success": True, "message": "rolled 7"}),
        Reply.aws_error(429, "TooManyRequestsException", "Rate exceeded", retry_after=0.01),
        Reply.ok({"success": True}),
        Reply.aws_error(500, "ServiceException", "internal"),
        Reply.aws_error(500, "ServiceException", "internal"),
        Reply.drop_connection(),
        Reply.function_error({"errorMessage": "boom", "errorType": "ValueError"}),
        echo,
        token_invalid,
        Reply.aws_error(404, "ResourceNotFoundException", "Function not found: dice"),
    ]


def request(session: str) -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest("!roll", ["2d6"], "u1", "e1", "c1", session, "twitch")


async def test_canaries_never_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No canary in any log line (root at DEBUG, botocore included), repr, exception text,
    metric, span, EMF record, health or info dict, response or dead-letter entry."""
    caplog.set_level(logging.DEBUG)
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    provider, exporter = in_memory_tracer()
    emf_out = io.StringIO()
    observers = [metrics, TracingObserver(provider), EmfObserver(emf_out)]
    outputs: list[str] = []
    responses: list[ExecuteResponse] = []
    dlq = tmp_path / "dlq.sqlite3"
    async with ScriptedLambdaServer() as server:
        credentials: dict[str, Any] = {
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_session_token": SESSION_TOKEN,
        }
        common: dict[str, Any] = {
            "endpoint_url": server.url,
            "max_retries": 1,
            "initial_retry_delay": 0.001,
            "max_retry_delay": 0.01,
            "observers": observers,
        }
        sync = LambdaAdapter("dice", "us-east-1", "dice", **credentials, **common)
        event = LambdaAdapter(
            "dice",
            "us-east-1",
            "dice",
            invocation_type="Event",
            dead_letter=dlq,
            dead_letter_sync=True,
            **credentials,
            **common,
        )
        from_env = LambdaAdapter("dice", "us-east-1", "dice", **common)  # the environment's
        async with sync, event, from_env:
            for adapter in (sync, event, from_env):
                server.script("dice", *scripted_replies())
                for index in range(8):
                    responses.append(await adapter.execute_async(request(f"s-{index}")))
                outputs += [repr(adapter), json.dumps(adapter.get_module_info(), default=str)]
                outputs.append(json.dumps(adapter.get_health_status(), default=str))
            outputs.append(repr(ClientSettings("us-east-1", None, ACCESS_KEY, SECRET_KEY)))
    assert server.count() > 20
    assert {r.error_code for r in responses} >= {
        None,
        "access_denied",
        "function_error",
        "service_error",
        "not_found",
    }
    # configuration errors that involve credentials
    for bad in (
        {"aws_access_key_id": ACCESS_KEY},
        {"aws_secret_access_key": SECRET_KEY},
        {"aws_session_token": SESSION_TOKEN},
        {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": 7},
    ):
        with pytest.raises(ModuleSDKError) as raised:
            LambdaAdapter("dice", "us-east-1", "dice", **bad)
        outputs += [str(raised.value), repr(raised.value)]

    outputs += [json.dumps(r.to_dict(), default=str) for r in responses]
    outputs.append(render_metrics(registry)[0].decode())
    outputs.append(emf_out.getvalue())
    for span in exporter.get_finished_spans():
        outputs.append(json.dumps(dict(span.attributes or {}), default=str))
        outputs += [json.dumps(dict(e.attributes or {}), default=str) for e in span.events]
        outputs.append(str(span.status.description))
    async with SQLiteDeadLetterSink(dlq) as sink:
        entries = await sink.list()
    assert len(entries) >= 3
    outputs += [entry.to_json() for entry in entries]
    outputs += [dlq.read_bytes().decode("utf-8", errors="replace")]
    log_lines = [record.getMessage() for record in caplog.records]
    log_lines += [caplog.text]
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG really was on

    leaked = {text[:160]: leaks(text) for text in outputs + log_lines if leaks(text)}
    assert leaked == {}


@pytest.mark.parametrize(
    "text",
    [
        f"x-amz-security-token:{SESSION_TOKEN}\n",
        f"{{'X-Amz-Security-Token': b'{SESSION_TOKEN}', 'Authorization': b'AWS4-HMAC-SHA256 "
        f"Credential={ACCESS_KEY}/20261126/us-east-1/lambda/aws4_request'}}",
        f"https://lambda/?X-Amz-Security-Token={SESSION_TOKEN}&X-Amz-Signature=ab12",
        f"aws_secret_access_key = {SECRET_KEY}",
        f"aws_session_token: '{SESSION_TOKEN}'",
        f"the key {ACCESS_KEY} was refused",
    ],
    ids=["header-line", "headers-repr", "query", "ini-secret", "yaml-token", "bare-key-id"],
)
def test_redact_removes_each_form(text: str) -> None:
    """Every form in which a credential shows up in AWS or botocore text is redacted."""
    clean = redact(text)
    assert leaks(clean) == []
    assert "[REDACTED]" in clean


async def test_sqs_dead_letter_sink_alone_logs_no_canary(
    moto_lambda: MotoLambda, caplog: pytest.LogCaptureFixture
) -> None:
    """An SQS dead-letter sink used before any Lambda client exists redacts botocore too."""
    import boto3

    queue = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=moto_lambda.url,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    ).create_queue(QueueName=f"canary-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    for name in BOTOCORE_LOGGERS:  # as in a fresh process: no filter installed yet
        logging.getLogger(name).removeFilter(_FILTER)
    try:
        caplog.set_level(logging.DEBUG)
        now = datetime.now(UTC)
        entry = DeadLetterEntry(
            id=new_entry_id(now),
            payload={"request_id": "s-1", "trigger": {"command": "!roll"}},
            function_name="dice",
            qualifier=None,
            region="us-east-1",
            invocation_type="Event",
            module_name="dice",
            error="throttled",
            error_code="throttled",
            attempts=4,
            first_failure_at=now,
            last_failure_at=now,
        )
        async with SQSDeadLetterSink(
            queue,
            region="us-east-1",
            endpoint_url=moto_lambda.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            aws_session_token=SESSION_TOKEN,
            receive_wait_seconds=0,
        ) as sink:
            await sink.put(entry)
            stored = await sink.list()
    finally:
        install_log_redaction()
    assert [e.request_id for e in stored] == ["s-1"]
    assert any(r.name.startswith("botocore") for r in caplog.records)
    assert [r.name for r in caplog.records if leaks(r.getMessage())] == []
    assert leaks(caplog.text) == []
