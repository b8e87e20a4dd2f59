"""moto's threaded Lambda server, for tests that need AWS's own API shapes."""

from __future__ import annotations

import json
from typing import Any

FAKE_KEY_ID = "AKIDTESTFIXTURE00000"
FAKE_SECRET = "fixture-secret-not-real"


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
