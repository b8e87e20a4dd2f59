"""GetFunction, GetFunctionConfiguration and ListFunctions on the local runtime, and tenants,
through boto3 and aiobotocore."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from module_sdk.local import FunctionConfigError, LocalLambdaRuntime, load_functions
from support.local import SIGNED, aio_client, boto3_client, invoke_both, write_functions

TOML = """
    [functions.echo]
    timeout = 2.5
    memory_size = 256
    description = "says it back"
    environment = { API_TOKEN = "not-for-the-api" }

    [functions.tenanted]
    tenant_isolation = "PER_TENANT"
"""

TENANT = """
    import os

    def handler(event, context):
        return {"tenant_id": context.tenant_id, "pid": os.getpid()}
"""


def _runtime(tmp_path: Path, **kw: Any) -> LocalLambdaRuntime:
    directory = write_functions(tmp_path / "fns", ["echo", "boom"], TOML)
    (directory / "tenanted.py").write_text(TENANT.replace("\n    ", "\n"))
    return LocalLambdaRuntime(directory, **kw)


async def test_get_function_configuration_and_get_function(tmp_path: Path) -> None:
    """The configuration a client sizes its timeout by; GetFunction wraps it; no env values."""
    async with _runtime(tmp_path) as rt:

        def sync() -> tuple[dict[str, Any], dict[str, Any]]:
            client = boto3_client(rt.url)
            try:
                return (
                    client.get_function_configuration(FunctionName="echo"),
                    client.get_function(FunctionName="echo"),
                )
            finally:
                client.close()

        configuration, function = await asyncio.to_thread(sync)
        async with aio_client(rt.url) as client:
            aio_configuration = await client.get_function_configuration(
                FunctionName="arn:aws:lambda:us-east-1:123456789012:function:echo"
            )
    for config in (configuration, function["Configuration"], aio_configuration):
        assert config["FunctionName"] == "echo"
        assert config["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
        assert config["Timeout"] == 3  # 2.5 s rounded up: never shorter than the real one
        assert config["MemorySize"] == 256
        assert config["Handler"] == "echo.handler"
        assert config["Runtime"].startswith("python3.")
        assert config["State"] == "Active" and config["LastUpdateStatus"] == "Successful"
        assert config["Description"] == "says it back"
        assert "Environment" not in config
    assert "not-for-the-api" not in json.dumps(function, default=str)


async def test_list_functions_pages_by_marker(tmp_path: Path) -> None:
    """ListFunctions lists every function in name order, MaxItems per page with NextMarker."""
    async with _runtime(tmp_path) as rt, aio_client(rt.url) as client:
        everything = await client.list_functions()
        first = await client.list_functions(MaxItems=2)
        second = await client.list_functions(MaxItems=2, Marker=first["NextMarker"])
        paginated = [
            f["FunctionName"]
            async for page in client.get_paginator("list_functions").paginate(
                PaginationConfig={"PageSize": 1}
            )
            for f in page["Functions"]
        ]
    names = [f["FunctionName"] for f in everything["Functions"]]
    assert names == ["boom", "echo", "tenanted"]
    assert "NextMarker" not in everything
    assert [f["FunctionName"] for f in first["Functions"]] == ["boom", "echo"]
    assert [f["FunctionName"] for f in second["Functions"]] == ["tenanted"]
    assert "NextMarker" not in second
    assert paginated == names


async def test_unknown_function_is_404(tmp_path: Path) -> None:
    """GetFunction of an unknown function raises ResourceNotFoundException."""
    async with _runtime(tmp_path) as rt, aio_client(rt.url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_function(FunctionName="nope")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_function_configuration(FunctionName="echo", Qualifier="gone")


async def test_tenants_get_their_own_environments(tmp_path: Path) -> None:
    """X-Amz-Tenant-Id reaches context.tenant_id; each tenant has its own warm environment."""
    async with _runtime(tmp_path) as rt:
        a1 = (await invoke_both(rt.url, FunctionName="tenanted", Payload=b"{}", TenantId="a"))[0]
        b1 = (await invoke_both(rt.url, FunctionName="tenanted", Payload=b"{}", TenantId="b"))[0]
        a2 = (await invoke_both(rt.url, FunctionName="tenanted", Payload=b"{}", TenantId="a"))[0]
        assert rt.stats.cold_starts["tenanted"] == 2
        async with aio_client(rt.url) as client:
            config = await client.get_function_configuration(FunctionName="tenanted")
    first_a, first_b, again_a = (json.loads(r["Payload"]) for r in (a1, b1, a2))
    assert first_a["tenant_id"] == "a" and first_b["tenant_id"] == "b"
    assert first_a["pid"] == again_a["pid"] != first_b["pid"]
    assert config["TenancyConfig"] == {"TenantIsolationMode": "PER_TENANT"}


async def test_tenant_id_required_and_refused(tmp_path: Path) -> None:
    """A PER_TENANT function refuses a call without a tenant; another refuses one with it."""
    async with _runtime(tmp_path) as rt:
        missing = (await invoke_both(rt.url, FunctionName="tenanted", Payload=b"{}"))[0]
        extra = (await invoke_both(rt.url, FunctionName="echo", Payload=b"{}", TenantId="a"))[0]
        assert rt.stats.invocations["tenanted"] == 0 and rt.stats.invocations["echo"] == 0
    assert missing["error"]["HTTPStatusCode"] == 400
    assert missing["error"]["Code"] == "InvalidParameterValueException"
    assert "X-Amz-Tenant-Id" in missing["error"]["Message"]
    assert extra["error"]["Code"] == "InvalidParameterValueException"
    assert "tenant_isolation" in extra["error"]["Message"]


def test_tenant_isolation_value_is_checked(tmp_path: Path) -> None:
    """Only PER_TENANT is a tenant isolation mode; the error says so."""
    directory = write_functions(
        tmp_path, ["echo"], '[functions.echo]\ntenant_isolation = "per-tenant"\n'
    )
    with pytest.raises(FunctionConfigError, match='use "PER_TENANT"'):
        load_functions(directory)


async def test_bad_tenant_id_is_400(tmp_path: Path) -> None:
    """A tenant id botocore would not send (too long) is refused by the runtime too."""
    import aiohttp

    async with (
        _runtime(tmp_path) as rt,
        aiohttp.ClientSession() as session,
        session.post(
            f"{rt.url}/2015-03-31/functions/tenanted/invocations",
            data=b"{}",
            headers={"X-Amz-Tenant-Id": "x" * 257, **SIGNED},
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["Type"] == "User"
