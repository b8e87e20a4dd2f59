"""CloudWatch EMF lines from a captured stream, checked against the EMF specification."""

from __future__ import annotations

import io
import json
import logging
import math
import re
from typing import Any

import pytest

from module_sdk import ConfigurationError
from module_sdk.adapters import LambdaAdapter
from module_sdk.observability import EmfObserver
from module_sdk.testing import FakeClock, HandlerInvoker, ScriptedLambdaServer
from support.observability import BOOM, ROLLED, THROTTLE, make_adapter, request

# The rules of "Specification: Embedded metric format" (Amazon CloudWatch User Guide).
UNITS = frozenset(
    [
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
        "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
        "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    ]
)  # fmt: skip
NAMESPACE_RE = re.compile(r"[a-zA-Z0-9._#:/-]{1,255}")
MAX_EVENT_BYTES = 256 * 1024


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def emf_problems(line: str) -> list[str]:
    """Everything in ``line`` that breaks the EMF specification (empty when valid)."""
    problems: list[str] = []
    if len(line.encode()) > MAX_EVENT_BYTES:
        problems.append("larger than a CloudWatch Logs event")
    if "\n" in line.rstrip("\n"):
        problems.append("not a single line")
    try:
        root = json.loads(line)
    except ValueError:
        return [*problems, "not JSON"]
    if not isinstance(root, dict):
        return [*problems, "root is not an object"]
    meta = root.get("_aws")
    if not isinstance(meta, dict):
        return [*problems, "_aws metadata object missing"]
    if set(meta) - {"Timestamp", "CloudWatchMetrics"}:
        problems.append("_aws has members the spec does not define")
    stamp = meta.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 0:
        problems.append("_aws.Timestamp is not milliseconds since the epoch")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        return [*problems, "_aws.CloudWatchMetrics is not an array"]
    for directive in directives:
        if not isinstance(directive, dict):
            problems.append("a MetricDirective is not an object")
            continue
        if set(directive) - {"Namespace", "Dimensions", "Metrics"}:
            problems.append("a MetricDirective has members the spec does not define")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not NAMESPACE_RE.fullmatch(namespace):
            problems.append(f"invalid Namespace {namespace!r}")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list):
            problems.append("Dimensions is not an array")
            dimension_sets = []
        for dimension_set in dimension_sets:
            if not isinstance(dimension_set, list) or len(dimension_set) > 30:
                problems.append("a DimensionSet is not an array of at most 30 names")
                continue
            for name in dimension_set:
                target = root.get(name) if isinstance(name, str) else None
                if not isinstance(name, str) or not 1 <= len(name) <= 255:
                    problems.append(f"invalid dimension name {name!r}")
                elif not isinstance(target, str) or not 1 <= len(target) <= 1024:
                    problems.append(f"dimension {name!r} has no string value at the top level")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > 100:
            problems.append("Metrics is not an array of at most 100 definitions")
            metrics = []
        for metric in metrics:
            if not isinstance(metric, dict) or set(metric) - {"Name", "Unit", "StorageResolution"}:
                problems.append(f"invalid MetricDefinition {metric!r}")
                continue
            name = metric.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                problems.append(f"invalid metric name {name!r}")
                continue
            if "Unit" in metric and metric["Unit"] not in UNITS:
                problems.append(f"invalid Unit {metric['Unit']!r}")
            if "StorageResolution" in metric and metric["StorageResolution"] not in (1, 60):
                problems.append("StorageResolution is not 1 or 60")
            target = root.get(name)
            values = target if isinstance(target, list) else [target]
            if not values or len(values) > 100 or not all(_number(v) for v in values):
                problems.append(f"metric {name!r} has no numeric value at the top level")
    return problems


VALID = {
    "_aws": {
        "Timestamp": 1,
        "CloudWatchMetrics": [
            {"Namespace": "A/B", "Dimensions": [["F"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}
        ],
    },
    "F": "f",
    "M": 1,
}


def mutate(path: list[Any], new: Any) -> str:
    """VALID with the member at ``path`` replaced (or removed when ``new`` is ...)."""
    document: Any = json.loads(json.dumps(VALID))
    holder = document
    for key in path[:-1]:
        holder = holder[key]
    if new is ...:
        del holder[path[-1]]
    else:
        holder[path[-1]] = new
    return json.dumps(document)


CW = ["_aws", "CloudWatchMetrics", 0]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param(mutate(["_aws"], ...), "_aws metadata object missing", id="no-aws"),
        pytest.param(mutate(["_aws", "Timestamp"], "now"), "Timestamp", id="timestamp"),
        pytest.param(mutate([*CW, "Namespace"], "bad namespace!"), "Namespace", id="ns"),
        pytest.param(mutate(["F"], 3), "dimension 'F'", id="dimension-value"),
        pytest.param(mutate(["F"], ...), "dimension 'F'", id="dimension-missing"),
        pytest.param(mutate(["M"], "1"), "metric 'M'", id="metric-string"),
        pytest.param(mutate(["M"], [1] * 101), "metric 'M'", id="metric-101-values"),
        pytest.param(mutate([*CW, "Metrics", 0, "Unit"], "Ms"), "Unit", id="unit"),
        pytest.param(mutate([*CW, "Dimensions"], [["F"] * 31]), "30 names", id="31-dims"),
        pytest.param(
            mutate([*CW, "Metrics"], [{"Name": "M"}] * 101), "at most 100", id="101-metrics"
        ),
        pytest.param(json.dumps(VALID) + "x", "not JSON", id="trailing-text"),
        pytest.param(json.dumps(VALID).replace('"M": 1', '"M": NaN'), "metric 'M'", id="nan"),
    ],
)
def test_validator_catches_each_rule(line: str, problem: str) -> None:
    """The validator itself rejects each kind of violation (and accepts the valid base)."""
    assert emf_problems(json.dumps(VALID)) == []
    problems = emf_problems(line)
    assert any(problem in p for p in problems), problems


METRICS = [
    {"Name": "Invocations", "Unit": "Count"},
    {"Name": "Errors", "Unit": "Count"},
    {"Name": "Throttles", "Unit": "Count"},
    {"Name": "Retries", "Unit": "Count"},
    {"Name": "Attempts", "Unit": "Count"},
    {"Name": "Duration", "Unit": "Milliseconds"},
]


def header(timestamp: int, dimensions: list[list[str]] | None = None) -> dict[str, Any]:
    """The ``_aws`` member of the default observer's lines."""
    return {
        "Timestamp": timestamp,
        "CloudWatchMetrics": [
            {
                "Namespace": "WaddleBot/Lambda",
                "Dimensions": dimensions or [["Function"]],
                "Metrics": METRICS,
            }
        ],
    }


async def test_throttle_then_success_line(scripted: ScriptedLambdaServer) -> None:
    """A 429 then a success: one valid line with one throttle, one retry, 2000 ms."""
    scripted.script("dice", THROTTLE, ROLLED)
    clock = FakeClock()
    stream = io.StringIO()
    observer = EmfObserver(stream, clock=clock)
    seen: list[dict[str, Any]] = []

    class Spy:
        """Keeps what record() makes of the same call, to compare with the written line."""

        def on_start(self, invocation: Any) -> None: ...
        def on_attempt(self, invocation: Any) -> None: ...
        def on_retry(self, invocation: Any, error: Any, delay: float) -> None: ...
        def on_finish(self, invocation: Any, response: Any, duration: float) -> None:
            seen.append(observer.record(invocation, response, duration))

    async with make_adapter(scripted.url, [observer, Spy()], clock) as adapter:
        await adapter.execute_async(request())
    (line,) = stream.getvalue().splitlines()
    assert emf_problems(line) == []
    assert seen == [json.loads(line)]
    assert json.loads(line) == {
        "_aws": header(1767225602000),
        "Function": "dice",
        "InvocationType": "RequestResponse",
        "Outcome": "success",
        "Region": "us-east-1",
        "Invocations": 1,
        "Errors": 0,
        "Throttles": 1,
        "Retries": 1,
        "Attempts": 2,
        "Duration": 2000.0,
        "RequestId": "req-2",
    }


async def test_function_error_line(scripted: ScriptedLambdaServer) -> None:
    """A function error: one valid line with Errors 1 and its outcome."""
    scripted.script("dice", BOOM)
    clock = FakeClock()
    stream = io.StringIO()
    observer = EmfObserver(stream, clock=clock, dimensions=[["Function"], ["Function", "Outcome"]])
    async with make_adapter(scripted.url, [observer], clock) as adapter:
        await adapter.execute_async(request())
    (line,) = stream.getvalue().splitlines()
    assert emf_problems(line) == []
    assert json.loads(line) == {
        "_aws": header(1767225600000, [["Function"], ["Function", "Outcome"]]),
        "Function": "dice",
        "InvocationType": "RequestResponse",
        "Outcome": "function_error",
        "Region": "us-east-1",
        "Invocations": 1,
        "Errors": 1,
        "Throttles": 0,
        "Retries": 0,
        "Attempts": 1,
        "Duration": 0.0,
        "RequestId": "req-1",
    }


async def test_every_throttled_attempt_is_counted(scripted: ScriptedLambdaServer) -> None:
    """Throttled on all three attempts: Throttles 3, Retries 2, outcome throttled."""
    scripted.script("dice", THROTTLE, THROTTLE, THROTTLE)
    clock = FakeClock()
    stream = io.StringIO()
    async with make_adapter(
        scripted.url, [EmfObserver(stream, clock=clock)], clock, max_retries=2
    ) as adapter:
        await adapter.execute_async(request())
    document = json.loads(stream.getvalue())
    assert emf_problems(stream.getvalue()) == []
    assert (document["Outcome"], document["Errors"]) == ("throttled", 1)
    assert (document["Throttles"], document["Retries"], document["Attempts"]) == (3, 2, 3)
    assert document["Duration"] == 4000.0


async def test_lines_can_go_to_a_logger(
    scripted: ScriptedLambdaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With a logger, each line is one log record's message, at the chosen level."""
    logger = logging.getLogger("test.emf")
    clock = FakeClock()
    observer = EmfObserver(logger=logger, clock=clock, level=logging.WARNING)
    with caplog.at_level(logging.WARNING, logger="test.emf"):
        async with make_adapter(scripted.url, [observer], clock) as adapter:
            await adapter.execute_async(request())
    (record,) = [r for r in caplog.records if r.name == "test.emf"]
    assert record.levelno == logging.WARNING
    assert emf_problems(record.getMessage()) == []
    assert json.loads(record.getMessage())["Outcome"] == "success"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"dimensions": [["Session"]]}, id="unknown-dimension"),
        pytest.param({"dimensions": ["Function"]}, id="not-a-list-of-sets"),
        pytest.param({"dimensions": [["Function", "Function"]]}, id="repeated"),
        pytest.param({"namespace": ""}, id="empty-namespace"),
        pytest.param({"namespace": "Waddle Bot"}, id="space-in-namespace"),
        pytest.param({"stream": io.StringIO(), "logger": logging.getLogger("x")}, id="both"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    """Invalid namespaces and dimension sets fail at construction with a clear message."""
    with pytest.raises(ConfigurationError, match=r"invalid|not both"):
        EmfObserver(**kwargs)


async def test_flush_mode_writes_one_line_per_group(scripted: ScriptedLambdaServer) -> None:
    """With flush_interval, calls are summed per outcome and written when the interval ends."""
    scripted.script("dice", THROTTLE, ROLLED, BOOM, ROLLED)
    clock = FakeClock()
    stream = io.StringIO()
    observer = EmfObserver(stream, clock=clock, flush_interval=60.0)
    async with make_adapter(scripted.url, [observer], clock) as adapter:
        for _ in range(3):
            await adapter.execute_async(request())
        assert stream.getvalue() == ""
        clock.advance(60.0)
        await adapter.execute_async(request())  # a 4th success, then the flush
    lines = stream.getvalue().splitlines()
    assert [emf_problems(line) for line in lines] == [[], []]
    success, failure = (json.loads(line) for line in lines)
    assert success == {
        "_aws": header(1767225662000),
        "Function": "dice",
        "InvocationType": "RequestResponse",
        "Outcome": "success",
        "Region": "us-east-1",
        "Invocations": 3,
        "Errors": 0,
        "Throttles": 1,
        "Retries": 1,
        "Attempts": 4,
        "Duration": [2000.0, 0.0, 0.0],
    }
    assert (failure["Outcome"], failure["Invocations"], failure["Errors"]) == (
        "function_error",
        1,
        1,
    )
    assert failure["Duration"] == [0.0]
    observer.flush()
    assert len(stream.getvalue().splitlines()) == 2


async def test_flush_mode_splits_at_one_hundred_values() -> None:
    """A group writes its line as soon as it holds 100 calls; flush() writes the rest."""
    stream = io.StringIO()
    clock = FakeClock()
    observer = EmfObserver(stream, clock=clock, flush_interval=3600.0)
    async with LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        invoker=HandlerInvoker(lambda event, context: {"success": True}),
        observers=[observer],
        clock=clock,
    ) as adapter:
        for _ in range(150):
            await adapter.execute_async(request())
    assert len(stream.getvalue().splitlines()) == 1
    observer.flush()
    lines = stream.getvalue().splitlines()
    assert [emf_problems(line) for line in lines] == [[], []]
    assert [json.loads(line)["Invocations"] for line in lines] == [100, 50]
    assert [len(json.loads(line)["Duration"]) for line in lines] == [100, 50]


def test_flush_interval_must_be_positive() -> None:
    """A zero or negative interval is refused with the accepted values."""
    with pytest.raises(ConfigurationError, match="flush_interval=0 is invalid"):
        EmfObserver(flush_interval=0)
