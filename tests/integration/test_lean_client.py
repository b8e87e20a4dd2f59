"""The lean client's connection settings: endpoint, credentials, TLS, proxies, pooling."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import sys
from pathlib import Path

import pytest
from aiohttp import web

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.clients import ClientSettings
from module_sdk.aws_lambda.invoker import InvokeCall
from module_sdk.aws_lambda.lean_client import LeanPool, resolve_endpoint
from module_sdk.aws_lambda.lean_invoker import LeanInvoker
from module_sdk.testing import FakeClock, ScriptedLambdaServer

REQUEST = ExecuteRequest("!roll", ["2d6"], "u-1", "e-1", "c-1", "lean-1", "twitch")


@pytest.mark.parametrize(
    ("region", "env", "endpoint_url", "expected", "signing_region"),
    [
        ("us-east-1", {}, None, "https://lambda.us-east-1.amazonaws.com", "us-east-1"),
        ("cn-north-1", {}, None, "https://lambda.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("us-gov-west-1", {}, None, "https://lambda.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        (
            "us-east-1",
            {"AWS_USE_FIPS_ENDPOINT": "true"},
            None,
            "https://lambda-fips.us-east-1.amazonaws.com",
            "us-east-1",
        ),
        (
            "eu-west-3",
            {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
            None,
            "https://lambda.eu-west-3.api.aws",
            "eu-west-3",
        ),
        (
            "us-east-1",
            {"AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9001/"},
            None,
            "http://127.0.0.1:9001",
            "us-east-1",
        ),
        (
            "us-east-1",
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9002"},
            None,
            "http://127.0.0.1:9002",
            "us-east-1",
        ),
        (
            "us-east-1",
            {"AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9001"},
            "http://localhost:4566/prefix",
            "http://localhost:4566/prefix",
            "us-east-1",
        ),
    ],
    ids=["aws", "aws-cn", "aws-us-gov", "fips", "dualstack", "env-lambda", "env-any", "param"],
)
def test_endpoint_is_resolved_as_botocore_does(
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    env: dict[str, str],
    endpoint_url: str | None,
    expected: str,
    signing_region: str,
) -> None:
    """Partitions, FIPS, dual-stack and endpoint overrides come from botocore's resolution."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    resolved = resolve_endpoint(ClientSettings(region=region, endpoint_url=endpoint_url))
    assert (resolved.url, resolved.signing_region, resolved.signing_name) == (
        expected,
        signing_region,
        "lambda",
    )
    assert resolved.proxy is None


def test_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWS_CA_BUNDLE is the bundle TLS verifies against."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    assert resolve_endpoint(ClientSettings(region="us-east-1")).verify == str(bundle)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _tls_lambda(cert: Path, key: Path) -> tuple[web.AppRunner, str]:
    async def invoke(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"success": True, "message": "over TLS"})

    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}"


@pytest.mark.parametrize("path", ["lean", "aiobotocore"])
async def test_tls_verified_with_aws_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str
) -> None:
    """A self-signed endpoint is refused, then trusted once AWS_CA_BUNDLE names its cert."""
    cert, key = _self_signed(tmp_path)
    runner, url = await _tls_lambda(cert, key)
    try:
        answers = []
        for bundle in (None, cert):
            if bundle is not None:
                monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
            async with LambdaAdapter(
                "dice", "us-east-1", "dice", endpoint_url=url, http_client=path, max_retries=0
            ) as adapter:
                answers.append(await adapter.execute_async(REQUEST))
    finally:
        await runner.cleanup()
    assert answers[0].error_code == "connection"
    assert answers[1].success is True and answers[1].message == "over TLS"


@pytest.mark.parametrize("path", ["lean", "aiobotocore"])
async def test_http_proxy_and_no_proxy(
    monkeypatch: pytest.MonkeyPatch, scripted: ScriptedLambdaServer, path: str
) -> None:
    """HTTP_PROXY carries calls to an unresolvable host; NO_PROXY bypasses a dead proxy."""
    monkeypatch.setenv("HTTP_PROXY", scripted.url)
    async with LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        endpoint_url="http://lambda.proxied.invalid:7000",
        http_client=path,
        max_retries=0,
        clock=FakeClock(),
    ) as adapter:
        proxied = await adapter.execute_async(REQUEST)
    assert proxied.success is True and scripted.count("dice") == 1
    assert scripted.invocations[0]["headers"]["Host"] == "lambda.proxied.invalid:7000"

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with LambdaAdapter(
        "dice", "us-east-1", "dice", endpoint_url=scripted.url, http_client=path, max_retries=0
    ) as adapter:
        direct = await adapter.execute_async(REQUEST)
    assert direct.success is True and scripted.count("dice") == 2


class ConnectProxy:
    """A minimal HTTPS proxy on 127.0.0.1: answers CONNECT and pipes bytes both ways."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.mark.parametrize("path", ["lean", "aiobotocore"])
async def test_https_proxy_tunnels_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str
) -> None:
    """HTTPS_PROXY: the call goes through the proxy's CONNECT tunnel, TLS verified end to end."""
    cert, key = _self_signed(tmp_path)
    runner, url = await _tls_lambda(cert, key)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    try:
        async with ConnectProxy() as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            async with LambdaAdapter(
                "dice", "us-east-1", "dice", endpoint_url=url, http_client=path, max_retries=0
            ) as adapter:
                answer = await adapter.execute_async(REQUEST)
    finally:
        await runner.cleanup()
    assert answer.success is True and answer.message == "over TLS"
    assert proxy.tunnels == [url.removeprefix("https://")]


CREDENTIAL_PROCESS = """
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
# Five minutes left: inside botocore's mandatory refresh window, so every use refreshes.
expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
print(json.dumps({
    "Version": 1,
    "AccessKeyId": f"AKIDROTATED{n:09d}",
    "SecretAccessKey": f"secret-{n}",
    "SessionToken": f"token-{n}",
    "Expiration": expiry.isoformat(),
}))
"""


@pytest.mark.parametrize("path", ["lean", "aiobotocore"])
async def test_expiring_credentials_are_refreshed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scripted: ScriptedLambdaServer, path: str
) -> None:
    """Credentials from a profile's credential_process that are about to expire are refreshed
    before each call (without blocking the loop); no call fails for it."""
    script = tmp_path / "creds.py"
    script.write_text(CREDENTIAL_PROCESS)
    counter = tmp_path / "counter"
    config = tmp_path / "config"
    config.write_text(
        f"[profile rotating]\ncredential_process = {sys.executable} {script} {counter}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        endpoint_url=scripted.url,
        profile_name="rotating",
        http_client=path,
        max_retries=0,
        clock=FakeClock(),
    ) as adapter:
        answers = [await adapter.execute_async(REQUEST) for _ in range(3)]
    assert all(answer.success for answer in answers)
    key_ids = [
        i["authorization"].split("Credential=")[1].split("/")[0] for i in scripted.invocations
    ]
    tokens = [i["headers"]["X-Amz-Security-Token"] for i in scripted.invocations]
    assert len(set(key_ids)) == 3 and all(k.startswith("AKIDROTATED") for k in key_ids)
    assert [t.removeprefix("token-") for t in tokens] == [k[-1] for k in key_ids]


@pytest.mark.parametrize("path", ["lean", "aiobotocore"])
async def test_no_credentials_is_a_credentials_error(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Without any credentials both paths answer ``credentials`` and send nothing (an endpoint
    that is not loopback: loopback ones get stand-ins; 192.0.2.1 is a documentation address)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        endpoint_url="http://192.0.2.1:9",
        http_client=path,
        max_retries=0,
        connect_timeout=0.5,
    ) as adapter:
        answer = await adapter.execute_async(REQUEST)
    assert answer.error_code == "credentials"


async def test_pool_shares_one_client_and_closes_it(scripted: ScriptedLambdaServer) -> None:
    """Invokers with the same settings share one client; the last release closes it."""
    pool = LeanPool()
    settings = ClientSettings(region="us-east-1", endpoint_url=scripted.url)
    first, second = LeanInvoker(settings, pool=pool), LeanInvoker(settings, pool=pool)
    call = InvokeCall("dice", json.dumps({"x": 1}).encode())
    results = [await first.invoke(call), await second.invoke(call)]
    assert [r.payload for r in results] == [b'{"x": 1}'] * 2
    assert pool.open_clients() == 1
    shared = await first.client()
    assert shared is await second.client()
    await first.aclose()
    assert pool.open_clients() == 1
    http = shared.http
    await second.aclose()
    assert pool.open_clients() == 0 and http.closed


async def test_client_repr_shows_no_secret(scripted: ScriptedLambdaServer) -> None:
    """Neither the client nor its settings show the secret key or the session token."""
    pool = LeanPool()
    settings = ClientSettings(
        region="us-east-1",
        endpoint_url=scripted.url,
        aws_access_key_id="AKIDSHOWN0000000000",
        aws_secret_access_key="very-secret-value",
        aws_session_token="very-secret-token",
    )
    invoker = LeanInvoker(settings, pool=pool)
    await invoker.invoke(InvokeCall("dice", b"{}"))
    client = await invoker.client()
    shown = repr(client) + repr(settings) + repr(client.signer) + repr(client.endpoint)
    await invoker.aclose()
    assert "very-secret" not in shown


def test_http_client_option_is_validated() -> None:
    """A wrong http_client, or 'lean' with an aiobotocore pool, is refused with the fix."""
    from module_sdk.aws_lambda.clients import ClientPool
    from module_sdk.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="http_client='requests' is invalid"):
        LambdaAdapter("dice", "us-east-1", "dice", http_client="requests")
    with pytest.raises(ConfigurationError, match="cannot use an aiobotocore"):
        LambdaAdapter("dice", "us-east-1", "dice", http_client="lean", pool=ClientPool())
    implied = LambdaAdapter("dice", "us-east-1", "dice", pool=ClientPool())
    assert implied.http_client == "aiobotocore"


def test_invocation_ids_are_version_4_uuids() -> None:
    """Each call's amz-sdk-invocation-id is a distinct RFC 4122 version-4 UUID."""
    import uuid

    invoker = LeanInvoker(ClientSettings(region="us-east-1"))
    ids = [invoker._invocation_id() for _ in range(500)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == 500 and all(str(u) == i for u, i in zip(parsed, ids, strict=True))
