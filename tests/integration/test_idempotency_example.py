"""examples/idempotency: Powertools' idempotency on request_id, DynamoDB on moto's server.

The function runs in the local runtime (a real worker process) and talks to moto's DynamoDB
over HTTP; two deliveries of one request_id give one point and the same reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from module_sdk.pytest_plugin import AdapterFactory
from support.moto_lambda import FAKE_KEY_ID, FAKE_SECRET

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "idempotency" / "functions"
REGION = "us-east-1"


@pytest.fixture
def waddlebot_functions_dir() -> Path:
    """The example's functions folder."""
    return EXAMPLE


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's server with the example's two tables; the function's workers are pointed at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY_ID,
            aws_secret_access_key=FAKE_SECRET,
        )
        for table, key in (("waddlebot-idempotency", "id"), ("waddlebot-points", "user_id")):
            client.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield client
    finally:
        server.stop()


@pytest.fixture
def waddlebot_function_environment(dynamodb: Any) -> dict[str, str]:
    """The function's workers are pointed at moto's server (they inherit nothing)."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.meta.endpoint_url,
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
    }


def points_of(client: Any, user: str) -> int:
    item = client.get_item(TableName="waddlebot-points", Key={"user_id": {"S": user}})
    return int(item["Item"]["points"]["N"]) if "Item" in item else 0


def test_two_deliveries_of_one_request_give_one_point(
    dynamodb: Any, waddlebot_adapter: AdapterFactory
) -> None:
    """The same request_id twice: one side effect, the same reply; a new request_id: another."""
    points = waddlebot_adapter("points")
    session = "sess_" + "a" * 32
    first = points.execute("!points", user_id="ann", session_id=session)
    # The router's re-send, the adapter's retry, a dead-letter replay: the same request_id.
    again = points.execute("!points", user_id="ann", session_id=session)
    assert first.success, first.error
    assert first.message == again.message == "ann has 1 point(s)"
    assert first.data == again.data
    assert points_of(dynamodb, "ann") == 1
    records = dynamodb.scan(TableName="waddlebot-idempotency")["Items"]
    assert len(records) == 1 and records[0]["status"]["S"] == "COMPLETED"

    other = points.execute("!points", user_id="ann", session_id="sess_" + "b" * 32)
    assert other.message == "ann has 2 point(s)"
    assert points_of(dynamodb, "ann") == 2
