"""``waddlebot-lambda demo``: real chat commands through LambdaAdapter, on the local runtime.

No AWS account and no network: the runtime runs in-process on 127.0.0.1 and a free port with
the functions of ``examples/functions``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from module_sdk._models import ExecuteRequest, ExecuteResponse
from module_sdk.aws_lambda.api import InvocationType

__all__ = ["find_examples", "register"]

_MISSING = object()


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run example chat commands through LambdaAdapter on the local runtime",
        description=(
            "Start the local Lambda runtime in-process with the example functions, send a "
            "realistic set of chat commands and events through LambdaAdapter over HTTP "
            "(including a throttled call that recovers, a function error, a timeout and an "
            "Event), and print the normalized responses and the health. No AWS, no network."
        ),
    )
    parser.add_argument(
        "--functions",
        default=None,
        metavar="DIR",
        help="the example functions (default: examples/functions of this project)",
    )
    parser.set_defaults(func=_run)


def find_examples(explicit: str | None = None) -> Path:
    """The example functions directory: ``--functions``, else the ones installed with the
    package (``module_sdk/_examples``, the same files as ``examples/functions``), else
    ./examples/functions."""
    from module_sdk.cli import CommandError

    if explicit is not None:
        path = Path(explicit)
        if not path.is_dir():
            raise CommandError(f"--functions {explicit}: no such directory")
        return path
    candidates = [
        Path(__file__).resolve().parents[1] / "_examples",
        Path.cwd() / "examples" / "functions",
    ]
    for path in candidates:
        if (path / "functions.toml").is_file():
            return path
    raise CommandError(
        "the example functions were not found (module_sdk/_examples is missing from this "
        "installation): pass --functions DIR, or reinstall waddlebot-module-sdk"
    )


@dataclass
class Scenario:
    """One chat command or event of the demo, with the outcome it must have."""

    label: str
    function: str
    command: str
    args: list[str]
    expect: str
    """``ok`` or the expected ``error_code``."""
    user: str = "penguin_fan"
    platform: str = "twitch"
    event_type: str | None = None
    event_data: dict[str, Any] | None = None
    invocation_type: InvocationType = "RequestResponse"
    session_id: str = ""
    response: ExecuteResponse | None = None
    notes: list[str] = field(default_factory=list)


def _scenarios() -> list[Scenario]:
    return [
        Scenario("greeting", "greet", "!hello", [], "ok"),
        Scenario("dice", "dice", "!roll", ["2d6"], "ok", user="dice_goblin"),
        Scenario("dice, bad input", "dice", "!roll", ["banana"], "module_error"),
        Scenario("8-ball (async def)", "eightball", "!8ball", ["will", "we", "win?"], "ok"),
        Scenario("API-Gateway reply", "weather", "!weather", ["London"], "ok"),
        Scenario("API-Gateway 404", "weather", "!weather", ["Atlantis"], "module_error"),
        Scenario("follow event", "greet", "follow", [], "ok", event_type="follow"),
        Scenario(
            "subscription (Event)",
            "greet",
            "subscription",
            [],
            "ok",
            user="loyal_viewer",
            event_type="subscription",
            event_data={"months": 6},
            invocation_type="Event",
        ),
        Scenario("raffle #1", "raffle", "!raffle", ["alice", "bob", "carol"], "ok"),
        Scenario("raffle #2 (throttled)", "raffle", "!raffle", ["dave", "erin"], "ok"),
        Scenario("function raises", "points", "!points", [], "function_error"),
        Scenario("function times out", "slowpoke", "!report", [], "function_error"),
        Scenario("unknown function", "nosuchfunction", "!nope", [], "not_found"),
    ]


def _request(scenario: Scenario, number: int) -> ExecuteRequest:
    scenario.session_id = f"demo-{number:02d}-{scenario.function}"
    metadata: dict[str, Any] = {
        "community": {"name": "Penguin Plaza", "is_subscribed": True},
        "user": {"username": scenario.user},
    }
    if scenario.event_type is not None:
        metadata["is_event"] = True
        metadata["event_type"] = scenario.event_type
        metadata["event_data"] = scenario.event_data or {}
    return ExecuteRequest(
        command=scenario.command,
        args=scenario.args,
        user_id=f"user-{scenario.user}",
        entity_id="channel-42",
        community_id="community-7",
        session_id=scenario.session_id,
        platform=scenario.platform,
        metadata=metadata,
    )


_AWS_REQUEST_ID = re.compile(r"RequestId: [0-9a-f-]{36} Error: ")


def _cut(text: str, width: int) -> str:
    text = " ".join(_AWS_REQUEST_ID.sub("", text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _outcome(response: ExecuteResponse) -> str:
    return "ok" if response.success else str(response.error_code)


def _run(args: argparse.Namespace) -> int:
    directory = find_examples(args.functions)
    # The tables already show each retry and failure: keep the SDK's own warnings out of
    # the way unless a more detailed --log-level was asked for.
    sdk_logger = logging.getLogger("module_sdk")
    quiet = logging.getLogger().getEffectiveLevel() >= logging.WARNING
    previous = sdk_logger.level
    if quiet:
        sdk_logger.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(run_demo(directory))
    finally:
        sdk_logger.setLevel(previous)


async def run_demo(directory: Path, out: Any = None) -> int:
    """Run the demo against the functions in ``directory``; 0 when every outcome is right."""
    from module_sdk.adapters.lambda_adapter import LambdaAdapter
    from module_sdk.cli._invoke import AttemptTrace
    from module_sdk.local import LocalLambdaRuntime

    out = out or sys.stdout
    started = time.monotonic()
    trace = AttemptTrace()
    scenarios = _scenarios()
    async with LocalLambdaRuntime(directory, port=0, prewarm=1) as runtime:
        print(
            f"Local Lambda runtime on {runtime.url}: {len(runtime.functions)} functions "
            f"from {directory} (one warm worker each)\n",
            file=out,
        )
        adapters: dict[tuple[str, str], LambdaAdapter] = {}

        def adapter(scenario: Scenario) -> LambdaAdapter:
            key = (scenario.function, scenario.invocation_type)
            if key not in adapters:
                adapters[key] = LambdaAdapter(
                    scenario.function,
                    "us-east-1",
                    scenario.function,
                    invocation_type=scenario.invocation_type,
                    max_retries=3,
                    initial_retry_delay=0.1,
                    max_retry_delay=0.5,
                    connect_timeout=2.0,
                    read_timeout=5.0,
                    # The local runtime does not check signatures: no credential lookup.
                    aws_access_key_id="local",
                    aws_secret_access_key="local",  # noqa: S106 (not a secret)
                    endpoint_url=runtime.url,
                    observers=[trace],
                )
            return adapters[key]

        async def send(number: int, scenario: Scenario) -> None:
            scenario.response = await adapter(scenario).execute_async(_request(scenario, number))

        try:
            numbered = list(enumerate(scenarios, 1))
            raffles = [(n, s) for n, s in numbered if s.function == "raffle"]
            for number, scenario in numbered:
                if scenario.function == "raffle":
                    if scenario is raffles[0][1]:
                        # Two draws at once: reserved concurrency 1 lets one run and
                        # throttles the other, which the adapter's retry recovers.
                        await asyncio.gather(send(*raffles[0]), send(*raffles[1]))
                    continue
                await send(number, scenario)
            await runtime.wait_for_events(timeout=10)
        finally:
            for each in adapters.values():
                await each.aclose()

        rows = []
        failures = 0
        for number, scenario in numbered:
            response = scenario.response
            assert response is not None
            got = _outcome(response)
            good = got == scenario.expect
            failures += not good
            attempts = trace.attempts.get(scenario.session_id, 0)
            text = response.message if response.success else response.error
            if scenario.invocation_type == "Event":
                ran = [r for r in runtime.history if r.event_request_id == scenario.session_id]
                if ran:
                    text = f"queued (202), then ran in the background: {ran[-1].outcome}"
            command = " ".join([scenario.command, *scenario.args])
            rows.append(
                [
                    str(number),
                    scenario.label,
                    _cut(command, 24),
                    scenario.function,
                    got,
                    str(attempts),
                    _cut(text or "", 46),
                    "yes" if good else "NO",
                ]
            )
        print("Chat commands and events (LambdaAdapter -> HTTP -> local runtime)", file=out)
        print(
            _table(
                [
                    "#",
                    "scenario",
                    "command",
                    "function",
                    "outcome",
                    "tries",
                    "reply",
                    "expected?",
                ],
                rows,
            ),
            file=out,
        )
        retried = [s for s in scenarios if trace.retries.get(s.session_id)]
        for scenario in retried:
            for line in trace.retries[scenario.session_id]:
                print(f"  retry in {scenario.label!r}: {line}", file=out)

        print("\nAdapter health", file=out)
        health_rows = []
        for (function, kind), each in sorted(adapters.items()):
            status = each.get_health_status()
            health_rows.append(
                [
                    function + ("" if kind == "RequestResponse" else f" ({kind})"),
                    # "healthy" holds until 3 failures in a row: the error rate beside it
                    ("healthy" if status["is_healthy"] else "UNHEALTHY")
                    + (f", {status['error_rate']:.0%} failed" if status["total_failures"] else ""),
                    str(status["total_requests"]),
                    str(status["total_failures"]),
                    f"{status['error_rate']:.0%}",
                    str(status["consecutive_failures"]),
                ]
            )
        print(
            _table(
                ["adapter", "status", "requests", "failures", "error rate", "consecutive"],
                health_rows,
            ),
            file=out,
        )

        stats = runtime.stats
        print("\nLocal runtime", file=out)
        runtime_rows = [
            [
                name,
                str(stats.invocations.get(name, 0)),
                str(stats.cold_starts.get(name, 0)),
                str(stats.throttles.get(name, 0)),
            ]
            for name in sorted(runtime.functions)
        ]
        print(_table(["function", "runs", "cold starts", "throttled"], runtime_rows), file=out)
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items()))
        print(f"replies: {outcomes}", file=out)

    elapsed = time.monotonic() - started
    if failures:
        print(f"\n{failures} scenario(s) did not behave as expected ({elapsed:.1f}s)", file=out)
        return 1
    print(f"\nAll {len(scenarios)} scenarios behaved as expected in {elapsed:.1f}s.", file=out)
    return 0
