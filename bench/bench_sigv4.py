"""SigV4 signing cost per Invoke request: the SDK's signer, botocore's SigV4Auth, awscrt.

Each signer signs the same Invoke request (a 350-byte body, a session token) many times; the
table shows the best of several rounds in microseconds per signature. awscrt is measured only
when it is installed (``pip install awscrt``); it is not a dependency of the SDK.

Run: .venv/bin/python bench/bench_sigv4.py [--number 20000]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import timeit
from collections.abc import Callable

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from module_sdk.aws_lambda.sigv4 import SigningCredentials, SigV4Signer

HOST = "lambda.us-east-1.amazonaws.com"
PATH = "/2015-03-31/functions/waddlebot-dice/invocations"
HEADERS = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "None"}
BODY = b'{"command":"!roll","args":["2d6"]}' * 10
KEY_ID, SECRET, TOKEN = "AKIDBENCH00000000000", "bench-secret", "bench-session-token"


def own() -> Callable[[], object]:
    """The SDK's signer (signing key cached per day)."""
    signer = SigV4Signer("us-east-1", "lambda")
    creds = SigningCredentials(KEY_ID, SECRET, TOKEN)

    def sign() -> object:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        digest = hashlib.sha256(BODY).hexdigest()
        return signer.sign("POST", HOST, PATH, "", HEADERS, digest, creds, stamp)

    return sign


def botocore_sigv4() -> Callable[[], object]:
    """botocore's SigV4Auth on an AWSRequest (what aiobotocore runs per call)."""
    auth = SigV4Auth(Credentials(KEY_ID, SECRET, TOKEN), "lambda", "us-east-1")

    def sign() -> object:
        request = AWSRequest("POST", f"https://{HOST}{PATH}", data=BODY, headers=dict(HEADERS))
        auth.add_auth(request)
        return request

    return sign


def crt() -> Callable[[], object] | None:
    """awscrt's native signer, called directly (no botocore wrapper), if installed."""
    try:
        from awscrt import auth, http
    except ImportError:
        return None
    provider = auth.AwsCredentialsProvider.new_static(KEY_ID, SECRET, TOKEN)

    def sign() -> object:
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=provider,
            region="us-east-1",
            service="lambda",
            signed_body_value=hashlib.sha256(BODY).hexdigest(),
        )
        request = http.HttpRequest(
            "POST", PATH, http.HttpHeaders([("host", HOST), *HEADERS.items()])
        )
        return auth.aws_sign_request(request, config).result()

    return sign


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, float | None]] = []
    for name, factory in (
        ("module_sdk SigV4Signer", own),
        ("botocore SigV4Auth", botocore_sigv4),
        ("awscrt aws_sign_request", crt),
    ):
        fn = factory()
        if fn is None:
            rows.append((name, None))
            continue
        best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
        rows.append((name, best * 1e6))
    print("| signer | µs / signature |\n|---|---:|")
    for name, micros in rows:
        print(f"| {name} | {'not installed' if micros is None else f'{micros:.1f}'} |")


if __name__ == "__main__":
    main()
