"""The SDK's SigV4 signer produces exactly botocore's ``Authorization`` header.

Requests are built by botocore's own rest-json serializer from the Lambda model (so the path
and query are encoded as botocore encodes them), signed by ``SigV4Auth`` at a fixed time, and
signed again by :class:`SigV4Signer` from the same method, URL, headers and body.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.serialize import create_serializer
from botocore.session import get_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from module_sdk.aws_lambda.api import InvocationType
from module_sdk.aws_lambda.invoker import InvokeCall
from module_sdk.aws_lambda.lean_invoker import invoke_headers, invoke_target
from module_sdk.aws_lambda.sigv4 import (
    EMPTY_SHA256,
    SigningCredentials,
    SigV4Signer,
    canonical_host,
    canonical_path,
)

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
names = st.text(NAME_CHARS, min_size=1, max_size=64)
accounts = st.from_regex(r"\A[0-9]{12}\Z")
regions = st.sampled_from(
    ["us-east-1", "eu-west-3", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "il-central-1"]
)
qualifiers = st.one_of(
    st.none(),
    st.just("$LATEST"),
    st.integers(1, 10**6).map(str),
    st.text(NAME_CHARS, min_size=1, max_size=128),
)


@st.composite
def function_names(draw: st.DrawFn) -> str:
    """A bare name, ``name:qualifier``, a partial ARN or a full ARN (':' in the path)."""
    name = draw(names)
    shape = draw(st.sampled_from(["bare", "qualified", "partial", "arn", "arn-qualified"]))
    if shape == "bare":
        return name
    if shape == "qualified":
        return f"{name}:{draw(st.sampled_from(['$LATEST', '7', 'live']))}"
    account = draw(accounts)
    if shape == "partial":
        return f"{account}:function:{name}"
    partition = draw(st.sampled_from(["aws", "aws-cn", "aws-us-gov"]))
    arn = f"arn:{partition}:lambda:{draw(regions)}:{account}:function:{name}"
    return arn + (":prod" if shape == "arn-qualified" else "")


endpoints = st.sampled_from(
    [
        "https://lambda.us-east-1.amazonaws.com",
        "https://lambda.cn-north-1.amazonaws.com.cn",
        "https://lambda-fips.us-gov-west-1.amazonaws.com",
        "https://lambda.eu-west-3.api.aws",
        "http://127.0.0.1:9001",
        "http://LOCALHOST:8080",
        "https://example.com:443",
        "http://example.com:80/prefix",
        "http://[::1]:4566",
    ]
)
tokens = st.one_of(st.none(), st.text(NAME_CHARS + "/+=", min_size=16, max_size=600))
client_contexts = st.one_of(st.none(), st.binary(min_size=1, max_size=300).map(base64.b64encode))
payloads = st.one_of(st.binary(max_size=2048), st.integers(0, 300_000).map(lambda n: b"x" * n))
times = st.datetimes(
    min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2040, 12, 31)
)
secrets = st.text(NAME_CHARS + "/+", min_size=20, max_size=60)


@pytest.fixture(scope="module")
def lambda_model() -> Any:
    """botocore's Lambda service model (loaded once for the module)."""
    return get_session().get_service_model("lambda")


def botocore_request(model: Any, endpoint: str, params: dict[str, Any]) -> AWSRequest:
    """The request botocore builds for ``Invoke`` with ``params`` (unsigned)."""
    operation = model.operation_model("Invoke")
    serialized = create_serializer("rest-json").serialize_to_request(params, operation)
    prepare_request_dict(serialized, endpoint_url=endpoint, user_agent="test-agent/1.0")
    return create_request_object(serialized)


def botocore_sign(request: AWSRequest, creds: Credentials, region: str, when: Any) -> None:
    """Sign with botocore's SigV4Auth at the fixed time ``when``."""
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(creds, "lambda", region).add_auth(request)


def own_sign(
    signer: SigV4Signer,
    request: AWSRequest,
    headers: dict[str, str],
    body: bytes,
    creds: SigningCredentials,
    when: datetime.datetime,
) -> dict[str, str]:
    """Sign the same method, URL, headers and body with the SDK's signer."""
    url = urlsplit(request.url)
    return signer.sign(
        request.method,
        canonical_host(request.url),
        url.path,
        url.query,
        headers,
        hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
        creds,
        when.strftime("%Y%m%dT%H%M%SZ"),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    function=function_names(),
    qualifier=qualifiers,
    region=regions,
    endpoint=endpoints,
    payload=payloads,
    token=tokens,
    client_context=client_contexts,
    invocation_type=st.sampled_from(["RequestResponse", "Event", "DryRun"]),
    log_type=st.sampled_from(["None", "Tail"]),
    tenant=st.one_of(st.none(), st.text(NAME_CHARS + " .", min_size=1, max_size=256)),
    durable_name=st.one_of(st.none(), st.text(NAME_CHARS, min_size=1, max_size=64)),
    when=times,
    secret=secrets,
)
def test_same_authorization_as_botocore(
    lambda_model: Any,
    function: str,
    qualifier: str | None,
    region: str,
    endpoint: str,
    payload: bytes,
    token: str | None,
    client_context: bytes | None,
    invocation_type: InvocationType,
    log_type: str,
    tenant: str | None,
    durable_name: str | None,
    when: datetime.datetime,
    secret: str,
) -> None:
    """Every generated Invoke request gets botocore's Authorization, date and token headers,
    and the lean invoker builds the same path, query and headers for it.

    Tenant ids and durable execution names are signed headers too.
    """
    params: dict[str, Any] = {
        "FunctionName": function,
        "InvocationType": invocation_type,
        "LogType": log_type,
        "Payload": payload,
    }
    if qualifier is not None:
        params["Qualifier"] = qualifier
    if client_context is not None:
        params["ClientContext"] = client_context.decode()
    if tenant is not None:
        params["TenantId"] = tenant
    if durable_name is not None:
        params["DurableExecutionName"] = durable_name
    request = botocore_request(lambda_model, endpoint, params)
    unsigned = dict(request.headers.items())
    botocore_sign(request, Credentials("AKIDEXAMPLE", secret, token), region, when)

    signer = SigV4Signer(region, "lambda")
    added = own_sign(
        signer, request, unsigned, payload, SigningCredentials("AKIDEXAMPLE", secret, token), when
    )
    assert added["Authorization"] == request.headers["Authorization"]
    assert added["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert added.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")

    # The lean invoker builds the same path, query and headers from the same call.
    call = InvokeCall(
        function_name=function,
        payload=payload,
        invocation_type=invocation_type,
        qualifier=qualifier,
        log_type=log_type,
        client_context=None if client_context is None else client_context.decode(),
        tenant_id=tenant,
        durable_execution_name=durable_name,
    )
    url = urlsplit(request.url)
    prefix = urlsplit(endpoint).path.rstrip("/")
    path, query = invoke_target(call.function_name, call.qualifier)
    assert (prefix + path, query) == (url.path, url.query)
    assert invoke_headers(call) == {k: v for k, v in unsigned.items() if k != "User-Agent"}


@settings(max_examples=60, deadline=None)
@given(
    when=st.lists(times, min_size=2, max_size=6),
    secret_list=st.lists(secrets, min_size=1, max_size=3),
)
def test_cached_keys_follow_date_and_secret(
    lambda_model: Any, when: list[datetime.datetime], secret_list: list[str]
) -> None:
    """One signer across days and rotated secrets (a cache of 2) never signs with a stale key."""
    signer = SigV4Signer("eu-west-3", "lambda", key_cache_size=2)
    for i, moment in enumerate(when):
        secret = secret_list[i % len(secret_list)]
        request = botocore_request(lambda_model, "http://127.0.0.1:9001", {"FunctionName": "f"})
        unsigned = dict(request.headers.items())
        botocore_sign(request, Credentials("AKID", secret), "eu-west-3", moment)
        added = own_sign(signer, request, unsigned, b"", SigningCredentials("AKID", secret), moment)
        assert added["Authorization"] == request.headers["Authorization"]
        assert len(signer._keys) <= 2


def test_secrets_never_in_repr() -> None:
    """Neither the signer, its key cache nor the credentials show a secret or a key."""
    signer = SigV4Signer("us-east-1", "lambda")
    creds = SigningCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "SESSIONTOKEN123")
    signer.sign("POST", "h", "/", "", {}, EMPTY_SHA256, creds, "20260101T000000Z")
    key = next(iter(signer._keys._entries.values()))
    shown = repr(signer) + repr(signer._keys) + repr(creds)
    assert "wJalr" not in shown and "SESSIONTOKEN" not in shown
    assert key.hex() not in shown and repr(key) not in shown
    assert "1/8 entries" in repr(signer._keys)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("/2015-03-31/functions/a%3Ab/invocations", "/2015-03-31/functions/a%253Ab/invocations"),
        ("/p//q/./r/../s/", "/p/q/s/"),
        ("/~x", "/~x"),
    ],
    ids=["empty", "double-encoded-colon", "dot-segments", "tilde"],
)
def test_canonical_path(path: str, expected: str) -> None:
    """Paths are normalized and encoded a second time, as SigV4 asks for non-S3 services."""
    assert canonical_path(path) == expected


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://lambda.us-east-1.amazonaws.com", "lambda.us-east-1.amazonaws.com"),
        ("https://X.example.com:443/p", "x.example.com"),
        ("http://user:pw@host:80", "host"),
        ("http://127.0.0.1:9001", "127.0.0.1:9001"),
        ("http://[::1]:4566", "[::1]:4566"),
    ],
    ids=["aws", "default-https-port", "userinfo", "port", "ipv6"],
)
def test_canonical_host(url: str, host: str) -> None:
    """The host is lowercase, without userinfo or a default port, IPv6 in brackets."""
    assert canonical_host(url) == host


def test_cache_size_must_be_positive() -> None:
    """A zero-size key cache is refused."""
    with pytest.raises(ValueError, match="key_cache_size"):
        SigV4Signer("us-east-1", "lambda", key_cache_size=0)
