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
