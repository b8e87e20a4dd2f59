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
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from module_sdk.errors import ConfigurationError, ErrorCode
from module_sdk.observability._common import (
    function_label,
    note_retry,
    outcome_of,
    unretried_error,
)
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
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._#:/-")
_NOT_AN_ERROR = frozenset({ErrorCode.MODULE_ERROR.value})
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


class EmfObserver:
    """An invocation observer writing one EMF line per call.

    Args:
        stream: a text stream to write lines to (default ``sys.stdout`` at write time).
        logger: a logger to send lines to instead (at ``level``); its handler must not add
            a prefix to the message, or CloudWatch will not parse the line.
        namespace: the CloudWatch namespace.
        dimensions: the dimension sets (default ``[["Function"]]``).
        clock: the wall clock stamping each line (tests pass a fake one).
        level: the log level used with ``logger``.
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
    ) -> None:
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

    def __repr__(self) -> str:
        return f"<EmfObserver namespace={self.namespace!r} dimensions={self.dimensions!r}>"

    def on_start(self, invocation: Invocation) -> None:
        """Nothing until the call ends."""

    def on_attempt(self, invocation: Invocation) -> None:
        """Nothing until the call ends."""

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """Remember the retried error (so the final attempt is not counted twice)."""
        note_retry(invocation, error)

    def record(
        self, invocation: Invocation, response: ExecuteResponse, duration: float
    ) -> dict[str, Any]:
        """The EMF document for one finished call."""
        outcome = outcome_of(response)
        throttles = sum(1 for retry in invocation.retries if retry.error_code == _THROTTLED)
        final = unretried_error(invocation)
        if final is not None and final.error_code == _THROTTLED:
            throttles += 1
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
            "Errors": 0 if response.success or outcome in _NOT_AN_ERROR else 1,
            "Throttles": throttles,
            "Retries": len(invocation.retries),
            "Attempts": invocation.attempts,
            "Duration": round(duration * 1000.0, 3),
        }
        if invocation.aws_request_id:
            document["RequestId"] = invocation.aws_request_id
        return document

    def line(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> str:
        """:meth:`record` as one compact JSON line, built without re-encoding the constant
        parts (the same JSON value as ``json.dumps(record(...))``)."""
        target = invocation.target
        static = self._static.get(id(target))
        if static is None or static[0] is not target or static[2] != invocation.region:
            static = (target, _dumps(function_label(invocation)), invocation.region)
            self._static[id(target)] = static
        outcome = outcome_of(response)
        throttles = 0
        for retry in invocation.retries:
            if retry.error_code == _THROTTLED:
                throttles += 1
        final = unretried_error(invocation)
        if final is not None and final.error_code == _THROTTLED:
            throttles += 1
        errors = 0 if response.success or outcome in _NOT_AN_ERROR else 1
        parts = [
            '{"_aws":{"Timestamp":',
            str(int(self._clock.utcnow().timestamp() * 1000)),
            self._directives,
            '"Function":',
            static[1],
            ',"InvocationType":',
            _dumps(invocation.invocation_type),
            ',"Outcome":',
            _dumps(outcome),
            ',"Region":',
            _dumps(invocation.region),
            f',"Invocations":1,"Errors":{errors},"Throttles":{throttles}',
            f',"Retries":{len(invocation.retries)},"Attempts":{invocation.attempts}',
            ',"Duration":',
            repr(round(duration * 1000.0, 3)),
        ]
        if invocation.aws_request_id:
            parts += (',"RequestId":', _dumps(invocation.aws_request_id))
        parts.append("}")
        return "".join(parts)

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """Write the line."""
        line = self.line(invocation, response, duration)
        if self._logger is not None:
            self._logger.log(self._level, line)
        else:
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write(line + "\n")
