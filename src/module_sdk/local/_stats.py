"""What the local runtime counts and records: :class:`RuntimeStats`, :class:`InvocationRecord`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InvocationRecord", "RuntimeStats"]


@dataclass(slots=True)
class RuntimeStats:
    """Counters of everything the runtime did, for tests and reliability suites.

    Attributes:
        invocations: handler runs per function (what actually reached a worker).
        request_ids: handler runs per event ``request_id`` (an ExecuteRequest's session id),
            across functions: more than one means the same request ran twice.
        runs: handler runs per ``(function, request_id)``.
        faults: injected faults per kind (``latency``, ``throttle``, ``error``, ``drop``,
            ``slow``).
        faults_by_function: injected faults per ``(function, kind)``.
        outcomes: replies per outcome: ``success``, ``function_error`` (the handler
            raised or its reply could not be sent), ``timeout``, ``crash``, ``init_error``,
            ``throttled``, ``not_found``, ``invalid_request``, ``too_large``, ``fault``,
            ``runtime_error`` (a worker could not be started),
            ``dropped``, ``dry_run``, ``event_accepted``, and ``event_<outcome>`` for each
            Event run.
        throttles: concurrency throttles (429) per function.
        cold_starts: environments started per function.
        statuses: HTTP replies per status code.
        control_reads: control-plane reads per operation (``GetFunction``,
            ``GetFunctionConfiguration``, ``ListFunctions``).
    """

    invocations: Counter[str] = field(default_factory=Counter)
    request_ids: Counter[str] = field(default_factory=Counter)
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_function: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    throttles: Counter[str] = field(default_factory=Counter)
    cold_starts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    control_reads: Counter[str] = field(default_factory=Counter)

    def duplicates(self) -> dict[str, int]:
        """Event ``request_id`` values that ran more than once, with their run counts."""
        return {key: count for key, count in self.request_ids.items() if count > 1}

    def reset(self) -> None:
        """Zero every counter."""
        for name in self.__slots__:
            getattr(self, name).clear()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every counter."""
        return {
            "invocations": dict(self.invocations),
            "request_ids": dict(self.request_ids),
            "runs": {f"{f}/{r}": n for (f, r), n in self.runs.items()},
            "faults": dict(self.faults),
            "faults_by_function": {f"{f}/{k}": n for (f, k), n in self.faults_by_function.items()},
            "outcomes": dict(self.outcomes),
            "throttles": dict(self.throttles),
            "cold_starts": dict(self.cold_starts),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "control_reads": dict(self.control_reads),
        }


@dataclass(frozen=True, slots=True)
class InvocationRecord:
    """One handler run, kept in :attr:`LocalLambdaRuntime.history` (newest last)."""

    function: str
    aws_request_id: str
    event_request_id: str | None
    invocation_type: str
    outcome: str
    """``success``, ``function_error``, ``timeout`` or ``crash``."""
    duration: float
    cold_start: bool
    log: str
    reply: bytes
