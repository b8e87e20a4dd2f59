"""The invocation pipeline: one context object, policies composed outermost first.

::

    execute_async(request)
      -> Invocation (request, event built once, target, deadline)
      -> policies, outermost first (rate limit -> circuit breaker -> cache -> retry)
      -> the terminal step (one invoke + parse)
      -> ExecuteResponse

A policy is any async callable ``(invocation, call_next) -> ExecuteResponse``. It may return a
response, call ``call_next`` (any number of times), or raise a ``ModuleSDKError``
(``InvocationError`` / ``PolicyRejection``), which ``execute_async`` turns into a failed
response with that error's ``error_code``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from module_sdk._models import ExecuteRequest, ExecuteResponse
    from module_sdk.aws_lambda.api import InvocationType
    from module_sdk.aws_lambda.naming import FunctionTarget
    from module_sdk.errors import InvocationError

__all__ = [
    "Handler",
    "Invocation",
    "InvocationObserver",
    "Policy",
    "RetryRecord",
    "compose",
]


@dataclass(frozen=True, slots=True)
class RetryRecord:
    """One retry: the attempt that failed, why, and how long we waited."""

    attempt: int
    reason: str
    error_code: str
    delay: float


@dataclass(slots=True)
class Invocation:
    """Everything about one ``execute_async`` call, shared by the policies and observers."""

    request: ExecuteRequest
    payload: dict[str, Any]
    body: bytes
    target: FunctionTarget
    region: str
    invocation_type: InvocationType
    started: float
    """``clock.monotonic()`` when the call began."""
    deadline: float | None = None
    """``clock.monotonic()`` after which no attempt or sleep may start, or None."""
    attempts: int = 0
    retries: list[RetryRecord] = field(default_factory=list)
    client_context: str | None = None
    """Base64 JSON ClientContext to send (observers put trace context here)."""
    aws_request_id: str | None = None
    executed_version: str | None = None
    durable_execution_arn: str | None = None
    """``X-Amz-Durable-Execution-Arn`` of the last answer (durable functions)."""
    status_code: int | None = None
    """The HTTP status of the last Lambda API answer (or an API-Gateway reply's statusCode)."""
    aws_error_code: str | None = None
    """The AWS error code of the final failed Lambda API call."""
    log_tail: str | None = None
    cache_hit: bool = False
    """Set by the response cache when it answered this call."""
    dead_letter: Literal["stored", "failed"] | None = None
    dead_letter_id: str | None = None
    last_error: InvocationError | None = None
    """The error of the latest failed attempt."""
    retried_error: InvocationError | None = None
    """The latest error the retry loop retried (set before observers hear ``on_retry``)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Scratch space for policies and observers (span objects, cache keys...)."""

    @property
    def final_error(self) -> InvocationError | None:
        """The error of the final attempt when it was not retried, else None.

        Retried errors reach observers through ``on_retry``; this is the one that ended the
        call (retries exhausted, retry budget empty, deadline too close), so every failed
        attempt is seen exactly once.
        """
        error = self.last_error
        return None if error is None or error is self.retried_error else error

    @property
    def session_id(self) -> str:
        """The request's session id (also the event's ``request_id``)."""
        return self.request.session_id

    @property
    def command(self) -> str:
        """The chat command."""
        return self.request.command


Handler = Callable[[Invocation], Awaitable["ExecuteResponse"]]


class Policy(Protocol):
    """One step of the pipeline."""

    async def __call__(self, invocation: Invocation, call_next: Handler) -> ExecuteResponse:
        """Handle the invocation, usually by calling ``call_next``."""
        ...


class InvocationObserver(Protocol):
    """Told about every call, attempt, retry and outcome (health, metrics, traces, logs).

    Observers must be quick and must not raise; an exception from one is logged and ignored.
    """

    def on_start(self, invocation: Invocation) -> None:
        """Before the first policy runs."""

    def on_attempt(self, invocation: Invocation) -> None:
        """Before each network attempt (``invocation.attempts`` is its 1-based number)."""

    def on_retry(self, invocation: Invocation, error: InvocationError, delay: float) -> None:
        """After a failed attempt, before sleeping ``delay`` seconds."""

    def on_finish(self, invocation: Invocation, response: ExecuteResponse, duration: float) -> None:
        """With the final response and the whole call's duration in seconds."""


def compose(policies: Sequence[Policy], terminal: Handler) -> Handler:
    """Chain ``policies`` (outermost first) around ``terminal``."""
    handler = terminal
    for policy in reversed(policies):
        handler = _bind(policy, handler)
    return handler


def _bind(policy: Policy, call_next: Handler) -> Handler:
    async def step(invocation: Invocation) -> ExecuteResponse:
        return await policy(invocation, call_next)

    return step
