"""Helpers for the local runtime's tests: handler directories and real Lambda clients."""

from __future__ import annotations

import asyncio
import io
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

HANDLERS: dict[str, str] = {
    "echo": """
        import logging, os
        logger = logging.getLogger()
        logger.setLevel("INFO")

        def handler(event, context):
            print("echo got", event)
            logger.info("request %s", context.aws_request_id)
            return {"success": True, "message": "echo", "event": event,
                    "pid": os.getpid(), "greeting": os.environ.get("GREETING")}
    """,
    "context": """
        def handler(event, context):
            cc = context.client_context
            return {
                "aws_request_id": context.aws_request_id,
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "remaining": context.get_remaining_time_in_millis(),
                "log_group_name": context.log_group_name,
                "client_context": None if cc is None else {"custom": cc.custom, "env": cc.env},
            }
    """,
    "boom": """
        def handler(event, context):
            raise ValueError("dice are missing")
    """,
    "hang": """
        import time

        def handler(event, context):
            print("about to hang")
            time.sleep(60)
    """,
    "crash": """
        import os

        def handler(event, context):
            if event.get("crash"):
                os._exit(3)
            return {"success": True, "pid": os.getpid()}
    """,
    "aio": """
        import asyncio

        async def handler(event, context):
            await asyncio.sleep(0)
            return {"success": True, "message": "async"}
    """,
    "slow": """
        import os, time

        def handler(event, context):
            gate = event.get("gate")
            if gate:  # held until the test creates the file: no timing assumptions
                while not os.path.exists(gate):
                    time.sleep(0.005)
            else:
                time.sleep(event.get("sleep", 0.3))
            return {"success": True}
    """,
    "chatty": """
        def handler(event, context):
            for i in range(500):
                print(f"line {i:04d} " + "x" * 40)
            return {"success": True}
    """,
    "unmarshal": """
        def handler(event, context):
            return {"values": {1, 2}}
    """,
    "badimport": """
        import module_that_does_not_exist

        def handler(event, context):
            return {}
    """,
}


def write_functions(
    directory: Path, names: list[str] | None = None, toml: str | None = None
) -> Path:
    """Write the named handlers (all by default) and an optional functions.toml."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names if names is not None else list(HANDLERS):
        (directory / f"{name}.py").write_text(textwrap.dedent(HANDLERS[name]))
    if toml is not None:
        (directory / "functions.toml").write_text(textwrap.dedent(toml))
    return directory


_SESSIONS: list[Any] = []


def _sessions() -> tuple[Any, Any]:
    """One boto3 and one aiobotocore session for all tests (they cache the service model)."""
    if not _SESSIONS:
        import boto3
        from aiobotocore.session import get_session

        _SESSIONS.extend([boto3.Session(), get_session()])
    return _SESSIONS[0], _SESSIONS[1]


def boto3_client(url: str, **config: Any) -> Any:
    """A boto3 Lambda client for ``url`` (botocore's retries off unless configured)."""
    from botocore.config import Config

    settings: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "read_timeout": 10}
    settings.update(config)
    return _sessions()[0].client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="not-a-secret",
        config=Config(**settings),
    )


@asynccontextmanager
async def aio_client(url: str, **config: Any) -> AsyncIterator[Any]:
    """An aiobotocore Lambda client for ``url`` (botocore's retries off unless configured)."""
    from aiobotocore.config import AioConfig

    settings: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "read_timeout": 10}
    settings.update(config)
    async with _sessions()[1].create_client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="not-a-secret",
        config=AioConfig(**settings),
    ) as client:
        yield client


def _plain(response: Mapping[str, Any], payload: bytes) -> dict[str, Any]:
    result = {k: v for k, v in response.items() if k not in ("ResponseMetadata", "Payload")}
    result["Payload"] = payload
    result["HTTPStatusCode"] = response["ResponseMetadata"]["HTTPStatusCode"]
    result["RequestId"] = response["ResponseMetadata"].get("RequestId")
    return result


def _error(exc: Any) -> dict[str, Any]:
    response = exc.response
    return {
        "Code": response["Error"]["Code"],
        "Message": response["Error"].get("Message"),
        "HTTPStatusCode": response["ResponseMetadata"]["HTTPStatusCode"],
        "Headers": response["ResponseMetadata"].get("HTTPHeaders", {}),
        "Body": {k: v for k, v in response.items() if k not in ("Error", "ResponseMetadata")},
    }


async def invoke_both(url: str, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Invoke with boto3 and with aiobotocore; each result is the parsed reply or error.

    A successful call gives the output fields plus ``Payload`` (bytes), ``HTTPStatusCode``
    and ``RequestId``; a ``ClientError`` gives ``{"Code", "Message", "HTTPStatusCode",
    "Headers", "Body"}`` under the key ``"error"``.
    """
    from botocore.exceptions import ClientError

    def sync_call() -> dict[str, Any]:
        client = boto3_client(url)
        try:
            response = client.invoke(**params)
            return _plain(response, response["Payload"].read())
        except ClientError as exc:
            return {"error": _error(exc)}
        finally:
            client.close()

    sync_result = await asyncio.to_thread(sync_call)
    payload = params.get("Payload")
    if isinstance(payload, bytes) and len(payload) > 1024 * 1024:
        # aiohttp warns that a large bytes body blocks the loop; a stream is what it wants.
        params = {**params, "Payload": io.BytesIO(payload)}
    async with aio_client(url) as client:
        try:
            response = await client.invoke(**params)
            async with response["Payload"] as stream:
                payload = await stream.read()
            async_result = _plain(response, payload)
        except ClientError as exc:
            async_result = {"error": _error(exc)}
    return sync_result, async_result


class RuntimeThread:
    """A :class:`LocalLambdaRuntime` on its own event loop in a background thread.

    For code under test that runs its own loop (the CLI's ``asyncio.run``) or blocks.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import threading

        from module_sdk.local import LocalLambdaRuntime

        self.runtime = LocalLambdaRuntime(*args, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The runtime's URL."""
        return self.runtime.url

    def __enter__(self) -> RuntimeThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.runtime.start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.runtime.aclose(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST/20260101/us-east-1/lambda/"
    "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
}
"""A SigV4-shaped Authorization header: the local runtime refuses calls without one."""
