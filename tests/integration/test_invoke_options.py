"""Tenant ids and durable execution names, on both HTTP paths."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.invoke_options import durable_execution_name, tenant_id_problem
from module_sdk.errors import ConfigurationError
from module_sdk.local import LocalLambdaRuntime
from module_sdk.testing import FakeClock, Reply, ScriptedLambdaServer

PATHS = ["lean", "aiobotocore"]
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def request(session: str = "sess-1", community: str = "c-1") -> ExecuteRequest:
    """A chat command from one community."""
    return ExecuteRequest("!roll", ["2d6"], "u-1", "e-1", community, session, "twitch")


def adapter(url: str, path: str, **kwargs: Any) -> LambdaAdapter:
    """An adapter on ``path`` with a fake clock."""
    return LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        endpoint_url=url,
        http_client=path,
        clock=FakeClock(),
        rng=random.Random(0),
        **kwargs,
    )


@given(st.text(min_size=1, max_size=300))
def test_durable_names_are_valid_and_stable(session_id: str) -> None:
    """Any session id gives a valid name, the same one every time."""
    name = durable_execution_name(session_id)
    assert NAME.fullmatch(name)
    assert durable_execution_name(session_id) == name


@pytest.mark.parametrize(
    ("session_id", "expected"),
    [
        ("sess-1", "sess-1"),
        ("a" * 64, "a" * 64),
        ("twitch:chan#42", None),
        ("a" * 65, None),
        ("🐧", None),
    ],
    ids=["valid", "64-chars", "punctuation", "too-long", "no-allowed-chars"],
)
def test_durable_name_keeps_valid_ids(session_id: str, expected: str | None) -> None:
    """Valid session ids are sent as they are; others get a digest suffix."""
    name = durable_execution_name(session_id)
    if expected is not None:
        assert name == expected
    else:
        assert name != session_id and NAME.fullmatch(name) and re.search(r"[0-9a-f]{16}$", name)


def test_cleaned_alike_session_ids_get_different_names() -> None:
    """Two ids that clean to the same text still get different names."""
    assert durable_execution_name("a:b") != durable_execution_name("a;b")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("c-1", None),
        ("x" * 256, None),
        ("", "1 to 256"),
        ("x" * 257, "1 to 256"),
        ("line\nbreak", "printable ASCII"),
        (42, "use a string"),
    ],
    ids=["ok", "256", "empty", "257", "newline", "not-a-string"],
)
def test_tenant_id_rules(value: object, problem: str | None) -> None:
    """1-256 printable ASCII characters."""
    found = tenant_id_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_bad_fixed_tenant_is_a_configuration_error() -> None:
    """A fixed tenant id that cannot be sent is refused when the adapter is built."""
    with pytest.raises(ConfigurationError, match="tenant_id='' is invalid: use 1 to 256"):
        LambdaAdapter("dice", "us-east-1", "dice", tenant_id="")


@pytest.mark.parametrize("path", PATHS)
async def test_bad_derived_tenant_is_refused_before_sending(
    scripted: ScriptedLambdaServer, path: str
) -> None:
    """A tenant function that fails or answers garbage refuses that call; nothing is sent."""

    def tenant(r: ExecuteRequest) -> str | None:
        if r.community_id == "boom":
            raise KeyError("no such community")
        return "" if r.community_id == "empty" else None

    async with adapter(scripted.url, path, tenant_id=tenant) as a:
        failed = await a.execute_async(request(community="boom"))
        empty = await a.execute_async(request(community="empty"))
        untenanted = await a.execute_async(request(community="c-9"))
    assert failed.error_code == empty.error_code == "invalid_request"
    assert "tenant_id" in (failed.error or "") and "1 to 256" in (empty.error or "")
    assert untenanted.success and scripted.count() == 1
    assert "X-Amz-Tenant-Id" not in scripted.invocations[0]["headers"]


@pytest.mark.parametrize("path", PATHS)
async def test_duplicate_start_is_reported_not_retried(
    scripted: ScriptedLambdaServer, path: str
) -> None:
    """409 DurableExecutionAlreadyStartedException: one call, ``duplicate_execution``, healthy."""
    scripted.script(
        "dice", Reply.aws_error(409, "DurableExecutionAlreadyStartedException", "already started")
    )
    async with adapter(scripted.url, path, durable_execution=True, max_retries=3) as a:
        answer = await a.execute_async(request("twitch:chan#42"))
        health = a.get_health_status()
    assert answer.error_code == "duplicate_execution" and scripted.count() == 1
    sent = scripted.invocations[0]["headers"]["X-Amz-Durable-Execution-Name"]
    assert sent == durable_execution_name("twitch:chan#42")
    assert health["consecutive_failures"] == 0


TENANT_HANDLER = """
def handler(event, context):
    return {"success": True, "message": context.tenant_id}
"""


@pytest.mark.parametrize("path", PATHS)
async def test_each_community_is_a_tenant_in_the_local_runtime(tmp_path: Path, path: str) -> None:
    """tenant_id derived per request reaches the function as ``context.tenant_id``."""
    (tmp_path / "dice.py").write_text(TENANT_HANDLER)
    (tmp_path / "functions.toml").write_text('[functions.dice]\ntenant_isolation = "PER_TENANT"\n')
    async with (
        LocalLambdaRuntime(tmp_path) as runtime,
        adapter(runtime.url, path, tenant_id=lambda r: r.community_id) as a,
    ):
        answers = [await a.execute_async(request(community=c)) for c in ("c-1", "c-2")]
    assert [answer.message for answer in answers] == ["c-1", "c-2"]
