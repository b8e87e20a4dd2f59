"""The control-plane reads of the local runtime: GetFunction, GetFunctionConfiguration and
ListFunctions, shaped as Lambda answers them (what ``aws lambda get-function`` and a client
sizing its read timeout ask for)."""

from __future__ import annotations

import base64
import hashlib
import math
import time
from typing import Any

from module_sdk.local._config import FunctionSpec

__all__ = ["function_configuration", "list_page"]

_STARTED = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
"""``LastModified`` of every function: when the runtime's module was loaded."""


def function_configuration(
    spec: FunctionSpec, *, region: str, account_id: str, qualifier: str | None = None
) -> dict[str, Any]:
    """A ``FunctionConfiguration`` for ``spec``.

    ``Timeout`` is rounded up to whole seconds (Lambda's type is an integer; locally a
    fraction is allowed), so a client that waits ``Timeout`` never gives up early.
    Environment variables are left out: they often hold secrets, and this API has no caller
    authentication.
    """
    arn = f"arn:aws:lambda:{region}:{account_id}:function:{spec.name}"
    digest = hashlib.sha256(
        f"{spec.name}\0{spec.runtime}\0{spec.handler}\0{spec.code_dir}".encode()
    ).digest()
    configuration: dict[str, Any] = {
        "FunctionName": spec.name,
        "FunctionArn": arn if qualifier is None else f"{arn}:{qualifier}",
        "Runtime": spec.runtime,
        "Role": f"arn:aws:iam::{account_id}:role/waddlebot-local",
        "Handler": spec.handler,
        "CodeSize": 0,
        "Description": spec.description,
        "Timeout": max(1, math.ceil(spec.timeout)),
        "MemorySize": spec.memory_size,
        "LastModified": _STARTED,
        "CodeSha256": base64.b64encode(digest).decode("ascii"),
        "Version": "$LATEST",
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{spec.name}"},
    }
    if spec.tenant_isolation is not None:
        configuration["TenancyConfig"] = {"TenantIsolationMode": spec.tenant_isolation}
    return configuration


def list_page(
    specs: list[FunctionSpec], marker: str | None, max_items: int, *, region: str, account_id: str
) -> dict[str, Any]:
    """One ListFunctions page, in name order; ``NextMarker`` names the next page's first."""
    ordered = sorted(specs, key=lambda s: s.name)
    if marker:
        ordered = [s for s in ordered if s.name >= marker]
    page = ordered[:max_items]
    body: dict[str, Any] = {
        "Functions": [function_configuration(s, region=region, account_id=account_id) for s in page]
    }
    if len(ordered) > max_items:
        body["NextMarker"] = ordered[max_items].name
    return body
