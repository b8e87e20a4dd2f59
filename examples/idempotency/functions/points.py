"""``!points``: one point per chat command, even when the command is delivered twice.

The router re-sends a command after a timeout, the adapter retries a timed-out call and a
dead-letter replay sends a stored event again: each time with the same ``request_id``.
Powertools' idempotency utility records every ``request_id`` in a DynamoDB table: the first
delivery gives the point and its reply is stored; a later delivery of the same request_id
gets the stored reply and gives nothing.

Only the side effect is made idempotent (``idempotent_function``), inside ``module_handler``:
an exception there is not stored (Powertools deletes the record), so a later delivery runs
again, while ``module_handler`` still answers it with a clean error reply.

Environment: ``IDEMPOTENCY_TABLE`` (partition key ``id``, a string), ``POINTS_TABLE``
(partition key ``user_id``, a string), and the usual AWS region and credentials.
"""

import os

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from module_sdk.handler import Event, Reply, ReplyError, module_handler

persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
# Keyed on request_id alone: the rest of a re-delivered event is identical anyway.
config = IdempotencyConfig(event_key_jmespath="request_id", expires_after_seconds=3600)
dynamodb = boto3.client("dynamodb")
POINTS_TABLE = os.environ["POINTS_TABLE"]


@idempotent_function(data_keyword_argument="event", config=config, persistence_store=persistence)
def give_point(event: dict) -> dict:
    """The side effect, run once per request_id; its reply is what every delivery gets."""
    user = event["user"]["id"]
    answer = dynamodb.update_item(
        TableName=POINTS_TABLE,
        Key={"user_id": {"S": user}},
        UpdateExpression="ADD points :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    total = int(answer["Attributes"]["points"]["N"])
    return Reply.text(f"{user} has {total} point(s)", points=total).to_dict()


@module_handler
def handler(event: Event, context: object) -> dict:
    """Give the caller a point (once per request_id)."""
    config.register_lambda_context(context)  # an in-progress record expires with the function
    try:
        return give_point(event=event.to_dict())
    except IdempotencyAlreadyInProgressError:
        # Another delivery of this command is running right now: it will answer.
        raise ReplyError("this command is already being answered") from None
