"""A Python handler run through AWS's own runtime interface client (awslambdaric, PyPI)."""


def handler(event, context):
    print("ric got", event)
    return {
        "success": True,
        "message": "hello from awslambdaric",
        "request_id": context.aws_request_id,
    }
