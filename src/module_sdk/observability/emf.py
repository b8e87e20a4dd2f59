"""CloudWatch Embedded Metric Format: one JSON log line per invocation (no extra needed).

::

    from module_sdk.observability.emf import EmfObserver

    adapter = LambdaAdapter("dice", "us-east-1", "dice", observers=[EmfObserver()])

Each finished call writes one line to a text stream (``sys.stdout`` by default: on Lambda,
ECS and the CloudWatch agent that is where CloudWatch Logs reads) or to a ``logging.Logger``.
CloudWatch turns it into metrics in the namespace (``WaddleBot/Lambda`` by default) with the
``Function`` dimension::

    {"_aws": {"Timestamp": 1767225600000, "CloudWatchMetrics": [{"Namespace": "WaddleBot/Lambda",
      "Dimensions": [["Function"]], "Metrics": [{"Name": "Invocations", "Unit": "Count"}, ...]}]},
     "Function": "dice", "InvocationType": "RequestResponse", "Outcome": "success",
     "Invocations": 1, "Errors": 0, "Throttles": 0, "Retries": 0, "Attempts": 1,
     "Duration": 12.5, "RequestId": "..."}

Metrics: ``Invocations`` (Count, always 1), ``Errors`` (Count: 1 for a failure other than a
business answer), ``Throttles`` (Count: attempts Lambda throttled), ``Retries`` (Count),
``Attempts`` (Count) and ``Duration`` (Milliseconds, the whole call). ``Outcome``,
``InvocationType``, ``Region`` and ``RequestId`` are plain properties, searchable with Logs
Insights; choose other dimension sets among ``Function``, ``InvocationType``, ``Outcome``
and ``Region`` with ``dimensions=``.

With ``flush_interval=`` calls are buffered and written as one line per function,
invocation type, outcome and region per flush (counts summed, up to 100 ``Duration`` values).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from module_sdk._validate import number
from module_sdk.errors import ConfigurationError, ErrorCode
from module_sdk.observability._common import (
    function_label,
    outcome_of,
)
from module_sdk.outcomes import is_error
from module_sdk.resilience.clock import Clock, SystemClock

if TYPE_CHECKING:
    from module_sdk._models import ExecuteResponse
    from module_sdk.errors import InvocationError
    from module_sdk.resilience.pipeline import Invocation

__all__ = ["DEFAULT_NAMESPACE", "DIMENSION_NAMES", "METRICS", "EmfObserver", "TextSink"]

DEFAULT_NAMESPACE = "WaddleBot/Lambda"
DIMENSION_NAMES = ("Function", "InvocationType", "Outcome", "Region")
"""The properties a dimension set may use (all have a small set of values)."""
METRICS: tuple[tuple[str, str], ...] = (
    ("Invocations", "Count"),
    ("Errors", "Count"),
    ("Throttles", "Count"),
    ("Retries", "Count"),
    ("Attempts", "Count"),
    ("Duration", "Milliseconds"),
)
"""The metrics of every line, with their CloudWatch units."""

_MAX_NAMESPACE = 255
_MAX_DIMENSIONS = 30
_MAX_VALUES = 100
"""EMF's limit on the values of one metric in one line."""
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._#:/-")
_THROTTLED = ErrorCode.THROTTLED


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class TextSink(Protocol):
    """Anything with ``write(str)``: ``sys.stdout``, a file, ``io.StringIO``..."""

    def write(self, text: str, /) -> object:
        """Write ``text``."""
        ...


def _check_namespace(namespace: object) -> str:
    if (
        not isinstance(namespace, str)
        or not 1 <= len(namespace) <= _MAX_NAMESPACE
        or not set(namespace) <= _NAMESPACE_CHARS
    ):
        raise ConfigurationError(
            f"namespace={namespace!r} is invalid: use 1 to {_MAX_NAMESPACE} characters among "
            "letters, digits and . _ # : / -"
        )
    return namespace


def _check_dimensions(dimensions: object) -> list[list[str]]:
    help_text = (
        f"dimensions={dimensions!r} is invalid: use a list of dimension sets, each a list of "
        f"up to {_MAX_DIMENSIONS} names among {', '.join(DIMENSION_NAMES)}, "
        'e.g. [["Function"], ["Function", "Outcome"]]'
    )
    if isinstance(dimensions, str) or not isinstance(dimensions, Sequence):
        raise ConfigurationError(help_text)
    result: list[list[str]] = []
    for dimension_set in dimensions:
        if (
            isinstance(dimension_set, str)
            or not isinstance(dimension_set, Sequence)
            or len(dimension_set) > _MAX_DIMENSIONS
            or any(name not in DIMENSION_NAMES for name in dimension_set)
            or len(set(dimension_set)) != len(dimension_set)
        ):
            raise ConfigurationError(help_text)
        result.append(list(dimension_set))
    return result


class _Group:
    """Calls buffered for one (function, invocation type, outcome, region) between flushes."""

    __slots__ = ("attempts", "durations", "errors", "invocations", "retries", "throttles")

    def __init__(self) -> None:
        self.invocations = self.errors = self.throttles = self.retries = self.attempts = 0
        self.durations: list[float] = []


class EmfObserver:
    """An invocation observer writing one EMF line per call, or per group per flush.

    Args:
        stream: a text stream to write lines to (default ``sys.stdout`` at write time).
        logger: a logger to send lines to instead (at ``level``); its handler must not add
            a prefix to the message, or CloudWatch will not parse the line.
        namespace: the CloudWatch namespace.
        dimensions: the dimension sets (default ``[["Function"]]``).
        clock: the wall clock stamping each line (tests pass a fake one).
        level: the log level used with ``logger``.
        flush_interval: None (default) writes one line per call. A number of seconds
            buffers calls instead and writes one line per function, invocation type,
            outcome and region at most that often (checked as calls finish; call
            :meth:`flush` at shutdown): counts are summed and ``Duration`` holds up to
            100 values, a line being written early when a group reaches 100 calls. Use
            the Sum statistic for the counts then.
    """

    def __init__(
        self,
        stream: TextSink | None = None,
        *,
        logger: logging.Logger | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        dimensions: Sequence[Sequence[str]] = (("Function",),),
        clock: Clock | None = None,
        level: int = logging.INFO,
        flush_interval: float | None = None,
    ) -> None:
        if flush_interval is not None:
            number(
                "flush_interval",
                flush_interval,
                unit="None (one line per call) or a finite number of seconds",
            )
        if stream is not None and logger is not None:
            raise ConfigurationError("give a stream or a logger to EmfObserver, not both")
        self._stream = stream
        self._logger = logger
        self._level = level
        self.namespace = _check_namespace(namespace)
        self.dimensions = _check_dimensions(dimensions)
        self._clock: Clock = clock or SystemClock()
        self._metrics = [{"Name": name, "Unit": unit} for name, unit in METRICS]
        # Everything after the timestamp that never changes, serialized once.
        self._directives = (
            ',"CloudWatchMetrics":'
            + _dumps(
                [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": self.dimensions,
                        "Metrics": self._metrics,
                    }
                ]
            )
            + "},"
        )
        self._static: dict[int, tuple[object, str, str]] = {}
        self.flush_interval = None if flush_interval is None else float(flush_interval)
        self._groups: dict[tuple[str, str, str, str], _Group] = {}
        self._last_flush = self._clock.monotonic()

    def __repr__(self) -> str:
        return f"<EmfObserver namespace={self.namespace!r} dimensions={self.dimensions!r}>"

    def on_start(self, invocation: Invocation) -> None:
        """Nothing until the call ends."""

    def on_attempt(self, invocation: Invocation) -> None:
        """Nothing until the call ends."""

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Nothing until the call ends (retries are read from the invocation)."""

    def record(
        self, invocation: Invocation, response: ExecuteResponse, duration: float
    ) -> dict[str, Any]:
        """The EMF document for one finished call."""
        outcome, errors, throttles = self._counts(invocation, response)
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self._clock.utcnow().timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": self.dimensions,
                        "Metrics": self._metrics,
                    }
                ],
            },
            "Function": function_label(invocation),
            "InvocationType": invocation.invocation_type,
            "Outcome": outcome,
            "Region": invocation.region,
            "Invocations": 1,
            "Errors": errors,
            "Throttles": throttles,
            "Retries": len(invocation.retries),
            "Attempts": invocation.attempts,
            "Duration": round(duration * 1000.0, 3),
        }
        if invocation.aws_request_id:
            document["RequestId"] = invocation.aws_request_id
        return document

    def _counts(self, invocation: Invocation, response: ExecuteResponse) -> tuple[str, int, int]:
        """(outcome, errors, throttled attempts) of one finished call."""
        outcome = outcome_of(response)
        throttles = 0
        for retry in invocation.retries:
            if retry.error_code == _THROTTLED:
                throttles += 1
        final = invocation.final_error
        if final is not None and final.error_code == _THROTTLED:
            throttles += 1
        errors = 0 if response.success or not is_error(outcome) else 1
        return outcome, errors, throttles

    def _head(self, function_json: str, invocation_type: str, outcome: str, region: str) -> str:
        return "".join(
            (
                '{"_aws":{"Timestamp":',
                str(int(self._clock.utcnow().timestamp() * 1000)),
                self._directives,
                '"Function":',
                function_json,
                ',"InvocationType":',
                _dumps(invocation_type),
                ',"Outcome":',
                _dumps(outcome),
                ',"Region":',
                _dumps(region),
            )
        )

    def _function_json(self, invocation: Invocation) -> str:
        target = invocation.target
        static = self._static.get(id(target))
        if static is None or static[0] is not target or static[2] != invocation.region:
            static = (target, _dumps(function_label(invocation)), invocation.region)
            self._static[id(target)] = static
        return static[1]

    def line(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> str:
        """:meth:`record` as one compact JSON line, built without re-encoding the constant
        parts (the same JSON value as ``json.dumps(record(...))``)."""
        outcome, errors, throttles = self._counts(invocation, response)
        parts = [
            self._head(
                self._function_json(invocation),
                invocation.invocation_type,
                outcome,
                invocation.region,
            ),
            f',"Invocations":1,"Errors":{errors},"Throttles":{throttles}',
            f',"Retries":{len(invocation.retries)},"Attempts":{invocation.attempts}',
            ',"Duration":',
            repr(round(duration * 1000.0, 3)),
        ]
        if invocation.aws_request_id:
            parts += (',"RequestId":', _dumps(invocation.aws_request_id))
        parts.append("}")
        return "".join(parts)

    def _group_line(self, key: tuple[str, str, str, str], group: _Group) -> str:
        function_json, invocation_type, outcome, region = key
        return (
            self._head(function_json, invocation_type, outcome, region)
            + f',"Invocations":{group.invocations},"Errors":{group.errors}'
            + f',"Throttles":{group.throttles},"Retries":{group.retries}'
            + f',"Attempts":{group.attempts},"Duration":{_dumps(group.durations)}}}'
        )

    def flush(self) -> None:
        """Write the buffered groups now (nothing to do without ``flush_interval``)."""
        self._last_flush = self._clock.monotonic()
        groups, self._groups = self._groups, {}
        for key, group in groups.items():
            self._write(self._group_line(key, group))

    def _write(self, line: str) -> None:
        if self._logger is not None:
            self._logger.log(self._level, line)
        else:
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write(line + "\n")

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Write the line, or add the call to its group (and flush when it is time)."""
        if self.flush_interval is None:
            self._write(self.line(invocation, response, duration))
            return
        outcome, errors, throttles = self._counts(invocation, response)
        key = (
            self._function_json(invocation),
            invocation.invocation_type,
            outcome,
            invocation.region,
        )
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        group.invocations += 1
        group.errors += errors
        group.throttles += throttles
        group.retries += len(invocation.retries)
        group.attempts += invocation.attempts
        group.durations.append(round(duration * 1000.0, 3))
        if len(group.durations) >= _MAX_VALUES:
            del self._groups[key]
            self._write(self._group_line(key, group))
        if self._clock.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
