"""The dead-letter queue: requests that finally failed are kept, so nothing is lost.

::

    execute_async -> pipeline -> final failure (retries exhausted, circuit_open, rate_limited,
                     deadline_exceeded, ...) -> DeadLetterRecorder -> DeadLetterSink.put()
    waddlebot-lambda dlq replay -> replay_entries -> LambdaAdapter.invoke_payload -> delete
                                   (adapters from module_sdk.adapters.replay.ReplayAdapters)

Sinks: :class:`SQLiteDeadLetterSink` (a local file, the default) and
:class:`SQSDeadLetterSink` (an Amazon SQS queue); anything with the :class:`DeadLetterSink`
methods works. See ``docs/dead-letter.md``.
"""

import importlib
import warnings
from typing import Any

from module_sdk.resilience.deadletter._entry import (
    DEAD_LETTER_CODES,
    DeadLetterEntry,
    DeadLetterError,
    DeadLetterSink,
    new_entry_id,
    scrub,
)
from module_sdk.resilience.deadletter._recorder import (
    DeadLetterRecorder,
    PayloadInvoker,
    ReplayResult,
    is_delivered,
    replay_entries,
)
from module_sdk.resilience.deadletter._sqlite import DEFAULT_SQLITE_PATH, SQLiteDeadLetterSink
from module_sdk.resilience.deadletter._sqs import SQSDeadLetterSink

__all__ = [
    "DEAD_LETTER_CODES",
    "DEFAULT_SQLITE_PATH",
    "DeadLetterEntry",
    "DeadLetterError",
    "DeadLetterRecorder",
    "DeadLetterSink",
    "PayloadInvoker",
    "ReplayResult",
    "SQLiteDeadLetterSink",
    "SQSDeadLetterSink",
    "is_delivered",
    "new_entry_id",
    "replay_entries",
    "scrub",
]


def __getattr__(name: str) -> Any:
    """``ReplayAdapters`` at its former home keeps working (with a DeprecationWarning).

    It builds adapters, so it lives above this package (``module_sdk.adapters.replay``);
    importing it here by name only when asked keeps the layers free of cycles.
    """
    if name == "ReplayAdapters":
        warnings.warn(
            "import ReplayAdapters from module_sdk.adapters.replay; "
            "module_sdk.resilience.deadletter.ReplayAdapters will be removed in a later release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("module_sdk.adapters.replay").ReplayAdapters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
