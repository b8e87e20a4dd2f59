"""``waddlebot-lambda invoke``: send one chat command (or event) to a Lambda function."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from typing import Any, TextIO
from urllib.parse import urlsplit

from module_sdk._models import ExecuteRequest, ExecuteResponse
from module_sdk.errors import InvocationError
from module_sdk.resilience.pipeline import Invocation

__all__ = ["AttemptTrace", "format_response", "register"]


class AttemptTrace:
    """An :class:`~module_sdk.resilience.pipeline.InvocationObserver` recording each call.

    ``attempts`` and ``retries`` are kept per session id; with ``stream`` set it also prints
    every attempt, retry (delay and reason) and the final outcome as they happen.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.attempts: dict[str, int] = {}
        self.retries: dict[str, list[str]] = {}
        self.durations: dict[str, float] = {}
        self.request_ids: dict[str, str | None] = {}

    def _say(self, text: str) -> None:
        if self.stream is not None:
            print(text, file=self.stream, flush=True)

    def on_start(self, invocation: Invocation) -> None:
        """A call begins."""
        self._say(
            f"-> {invocation.target.display_name} ({invocation.invocation_type}, "
            f"region {invocation.region}, session {invocation.session_id})"
        )

    def on_attempt(self, invocation: Invocation) -> None:
        """One network attempt."""
        self.attempts[invocation.session_id] = invocation.attempts
        self._say(f"   attempt {invocation.attempts}")

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """A failed attempt that will be retried."""
        text = f"attempt {invocation.attempts} failed: {error.reason} ({error.error_code.value})"
        if error.retry_after is not None:
            text += f", server asked to wait {error.retry_after:g}s"
        text += f"; retrying in {delay:.2f}s"
        self.retries.setdefault(invocation.session_id, []).append(text)
        self._say(f"   {text}")

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """The final answer."""
        self.durations[invocation.session_id] = duration
        self.request_ids[invocation.session_id] = invocation.aws_request_id
        outcome = "success" if response.success else f"failed ({response.error_code})"
        extra = f", aws request id {invocation.aws_request_id}" if invocation.aws_request_id else ""
        self._say(
            f"<- {outcome} after {invocation.attempts} attempt(s) in {duration * 1000:.1f} ms"
            f"{extra}"
        )


def register(subparsers: Any) -> None:
    """Add the ``invoke`` subcommand."""
    parser = subparsers.add_parser(
        "invoke",
        help="send one chat command or event to a Lambda function through LambdaAdapter",
        description=(
            "Build an ExecuteRequest, send it through LambdaAdapter (retries, response "
            "normalization) and print the normalized response. Uses the standard AWS "
            "credential chain; --endpoint-url points it at `waddlebot-lambda local`. "
            "Exit status: 0 success, 1 the call failed, 2 bad arguments."
        ),
        epilog="example: waddlebot-lambda invoke dice --command !roll 2d6 "
        "--endpoint-url http://127.0.0.1:3001",
    )
    parser.add_argument("function", metavar="FUNCTION", help="function name, name:alias or ARN")
    parser.add_argument(
        "--command",
        required=True,
        nargs="+",
        metavar=("CMD", "ARGS"),
        help="the chat command and its arguments, e.g. --command !roll 2d6",
    )
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument (use it for arguments that start with '-')",
    )
    who = parser.add_argument_group("the request")
    who.add_argument("--platform", default="cli", help="chat platform (default: cli)")
    who.add_argument("--user-id", default="cli-user", metavar="U")
    who.add_argument("--username", default=None, metavar="NAME", help="the user's display name")
    who.add_argument("--community-id", default="cli-community", metavar="C")
    who.add_argument("--entity-id", default="cli-entity", metavar="E")
    who.add_argument("--session-id", default=None, metavar="S", help="(default: a new unique id)")
    who.add_argument("--metadata", default=None, metavar="JSON", help="metadata as a JSON object")
    who.add_argument(
        "--event-type", default=None, metavar="T", help="send an event (follow, subscription...)"
    )
    who.add_argument("--event-data", default=None, metavar="JSON", help="the event's JSON data")
    aws = parser.add_argument_group("AWS")
    aws.add_argument("--region", default=None, help="(default: AWS_REGION or the profile's)")
    aws.add_argument("--profile", default=None, help="AWS profile name")
    aws.add_argument(
        "--endpoint-url", default=None, metavar="URL", help="another Lambda API endpoint"
    )
    aws.add_argument("--qualifier", default=None, help="version or alias")
    aws.add_argument(
        "--invocation-type",
        default="RequestResponse",
        choices=["RequestResponse", "Event", "DryRun"],
    )
    aws.add_argument("--max-retries", type=int, default=3, metavar="N")
    aws.add_argument("--read-timeout", type=float, default=30.0, metavar="S")
    out = parser.add_argument_group("output")
    out.add_argument("--log-tail", action="store_true", help="fetch and print the log tail")
    out.add_argument("--json", action="store_true", help="print the response as JSON")
    out.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print each attempt, retry delay and reason, and the log tail (on stderr)",
    )
    parser.set_defaults(func=_run)


def _json_arg(option: str, text: str | None, *, want_object: bool = True) -> Any:
    from module_sdk.cli import CommandError

    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(
            f"{option} is not valid JSON ({exc}): quote it, e.g. '{{\"k\": 1}}'"
        ) from None
    if want_object and not isinstance(value, dict):
        raise CommandError(f"{option} must be a JSON object, e.g. '{{\"k\": 1}}'")
    return value


def build_request(args: argparse.Namespace) -> ExecuteRequest:
    """The ExecuteRequest described by the command line."""
    metadata: dict[str, Any] = _json_arg("--metadata", args.metadata) or {}
    if args.username is not None:
        user = dict(metadata.get("user") or {})
        user["username"] = args.username
        metadata["user"] = user
    if args.event_type is not None:
        metadata["is_event"] = True
        metadata["event_type"] = args.event_type
    event_data = _json_arg("--event-data", args.event_data, want_object=False)
    if event_data is not None:
        metadata["event_data"] = event_data
        metadata.setdefault("is_event", True)
    command, *rest = args.command
    return ExecuteRequest(
        command=command,
        args=[*rest, *args.arg],
        user_id=args.user_id,
        entity_id=args.entity_id,
        community_id=args.community_id,
        session_id=args.session_id or f"cli-{uuid.uuid4().hex[:16]}",
        platform=args.platform,
        metadata=metadata,
    )


def _region(args: argparse.Namespace) -> str:
    from module_sdk.cli import CommandError

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return str(region)
    try:
        import botocore.session

        session = botocore.session.Session(profile=args.profile)
        region = session.get_config_variable("region")
    except Exception:
        region = None
    if region:
        return str(region)
    from module_sdk.aws_lambda.clients import is_loopback, service_endpoint

    if is_loopback(service_endpoint(args.endpoint_url)):
        return "us-east-1"  # a local endpoint answers for any region
    raise CommandError("no AWS region: pass --region (or set AWS_REGION)")


_SHOWN = frozenset({"success", "message", "error", "error_code", "targets"})


def _not_the_outcome(record: logging.LogRecord) -> bool:
    return not getattr(record, "call_outcome", False)


def _check_endpoint(url: str | None) -> None:
    """A clear error for an endpoint that is not an http(s) URL (``127.0.0.1:3001``)."""
    from module_sdk.cli import CommandError

    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return
    hint = f"http://{url}" if "://" not in url else "http://127.0.0.1:3001"
    raise CommandError(
        f"--endpoint-url {url!r} is not a URL: it needs its scheme, such as --endpoint-url {hint}"
    )


def format_response(function: str, response: ExecuteResponse, attempts: int | None) -> str:
    """The response as readable text."""
    status = "OK" if response.success else f"FAILED ({response.error_code})"
    lines = [f"{function}: {status}" + (f" after {attempts} attempt(s)" if attempts else "")]
    if response.message:
        lines.append(f"  message: {response.message}")
    if response.error:
        lines.append(f"  error:   {response.error}")
    if response.targets:
        lines.append("  targets: " + ", ".join(json.dumps(t) for t in response.targets))
    for key, value in (response.data or {}).items():
        if key in _SHOWN:
            continue  # printed above
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > 200:
            text = text[:200] + "..."
        lines.append(f"  {key}: {text}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from module_sdk.adapters.lambda_adapter import LambdaAdapter
    from module_sdk.cli import CommandError

    if not 0 <= args.max_retries <= 100:
        raise CommandError(f"--max-retries {args.max_retries} is invalid: use 0 to 100")
    _check_endpoint(args.endpoint_url)
    request = build_request(args)
    region = _region(args)
    trace = AttemptTrace(sys.stderr if args.verbose else None)
    adapter = LambdaAdapter(
        args.function,
        region,
        "cli",
        invocation_type=args.invocation_type,
        max_retries=args.max_retries,
        read_timeout=args.read_timeout,
        endpoint_url=args.endpoint_url,
        qualifier=args.qualifier,
        profile_name=args.profile,
        log_type="Tail" if (args.log_tail or args.verbose) else "None",
        observers=[trace],
    )

    async def call() -> ExecuteResponse:
        try:
            return await adapter.execute_async(request)
        finally:
            await adapter.aclose()

    # The failure is printed below: the adapter's ERROR line for it would say it twice.
    adapter_logger = logging.getLogger("module_sdk.adapters.lambda_adapter")
    adapter_logger.addFilter(_not_the_outcome)
    started = time.monotonic()
    try:
        response = asyncio.run(call())
    finally:
        adapter_logger.removeFilter(_not_the_outcome)
    elapsed = time.monotonic() - started
    attempts = trace.attempts.get(request.session_id)
    tail = response.diagnostics.log_tail if response.diagnostics else None
    if args.json:
        document = response.to_dict()
        document["attempts"] = attempts
        document["duration_seconds"] = round(elapsed, 4)
        print(json.dumps(document, indent=2, default=str))
    else:
        print(format_response(adapter.target.display_name, response, attempts))
        if tail and args.log_tail and not args.verbose:
            print("log tail:")
            print(_indent(tail))
    if tail and args.verbose:
        print("log tail:", file=sys.stderr)
        print(_indent(tail), file=sys.stderr)
    return 0 if response.success else 1


def _indent(text: str) -> str:
    return "\n".join(f"  | {line}" for line in text.rstrip("\n").splitlines())
