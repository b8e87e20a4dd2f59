"""Shared fixtures: a hermetic AWS environment, a scripted Lambda endpoint, moto's server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from module_sdk.testing import ScriptedLambdaServer

FAKE_KEY_ID = "AKIDTESTFIXTURE00000"
FAKE_SECRET = "fixture-secret-not-real"


@pytest.fixture(autouse=True)
def _hermetic_aws(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Never reach real AWS, IMDS or the user's ~/.aws from a test."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedLambdaServer]:
    """A scripted Lambda-API endpoint on 127.0.0.1 and a free port."""
    async with ScriptedLambdaServer() as server:
        yield server


class MotoLambda:
    """moto's threaded server with Lambda in no-Docker mode (invoke echoes or queued results)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self._post("/moto-api/config", {"lambda": {"use_docker": False}})
        self._created: set[tuple[str, str]] = set()

    def _post(self, path: str, body: Any) -> None:
        import urllib.request

        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    def create_function(self, name: str, region: str = "us-east-1") -> None:
        """Create a function (any code: moto does not run it without Docker)."""
        import io
        import zipfile

        import boto3

        if (name, region) in self._created:
            return
        kwargs: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": self.url,
            "aws_access_key_id": FAKE_KEY_ID,
            "aws_secret_access_key": FAKE_SECRET,
        }
        iam = boto3.client("iam", **kwargs)
        try:
            role = iam.get_role(RoleName="lambda-role")["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(RoleName="lambda-role", AssumeRolePolicyDocument="{}")["Role"][
                "Arn"
            ]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        boto3.client("lambda", **kwargs).create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": buffer.getvalue()},
        )
        self._created.add((name, region))

    def queue_results(self, *results: Any, region: str = "us-east-1") -> None:
        """Queue the next invoke results (each JSON-encoded unless already a string)."""
        encoded = [r if isinstance(r, str) else json.dumps(r) for r in results]
        self._post(
            "/moto-api/static/lambda-simple/response", {"results": encoded, "region": region}
        )

    def stop(self) -> None:
        """Stop the server."""
        self._server.stop()


@pytest.fixture(scope="session")
def moto_lambda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoLambda]:
    """One moto server for the session (functions are created idempotently)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    mp.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = MotoLambda()
    try:
        yield server
    finally:
        server.stop()
        mp.undo()


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
