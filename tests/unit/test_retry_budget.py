"""The retry budget (botocore's standard-mode quota) and the total_timeout deadline."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from module_sdk import ConfigurationError, ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.invoker import InvocationResult, InvokeCall
from module_sdk.errors import ErrorCode, InvocationError
from module_sdk.resilience.budget import StandardRetryBudget
from module_sdk.testing import FakeClock, HandlerInvoker


def request() -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest(
        command="!roll",
        args=["2d6"],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id="s-1",
        platform="twitch",
    )


def error(code: ErrorCode = ErrorCode.SERVICE_ERROR) -> InvocationError:
    """A transient invocation error."""
    return InvocationError("down", error_code=code, retryable=True)


class ScriptedInvoker(HandlerInvoker):
    """Raises the queued errors in order, then answers successfully."""

    def __init__(self, *errors: InvocationError) -> None:
        super().__init__(lambda event, context: {"success": True})
        self.errors = list(errors)
        self.attempts = 0

    async def invoke(self, call: Any) -> Any:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return await super().invoke(call)


def test_costs_and_refunds_follow_botocore() -> None:
    """A retry costs 5, a timeout retry 10, a success gives 1 back, capped at capacity."""
    budget = StandardRetryBudget()
    assert budget.available == 500
    assert budget.try_acquire(error())
    assert budget.available == 495
    assert budget.try_acquire(error(ErrorCode.TIMEOUT))
    assert budget.available == 485
    for _ in range(20):
        budget.record_success()
    assert budget.available == 500


def test_an_empty_budget_refuses_and_takes_nothing() -> None:
    """When the cost is more than what is left, the retry is refused."""
    budget = StandardRetryBudget(12, retry_cost=5, timeout_cost=10)
    assert budget.try_acquire(error())
    assert not budget.try_acquire(error(ErrorCode.TIMEOUT))
    assert budget.try_acquire(error())
    assert not budget.try_acquire(error())
    assert budget.available == 2
    assert budget.refused == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"capacity": 0}, {"capacity": -1}, {"retry_cost": float("nan")}, {"success_refund": "1"}],
    ids=str,
)
def test_bad_budget_settings(kwargs: dict[str, Any]) -> None:
    """Invalid amounts raise ConfigurationError naming the parameter."""
    name = next(iter(kwargs))
    with pytest.raises(ConfigurationError, match=name):
        StandardRetryBudget(**kwargs)


async def test_a_shared_budget_stops_retries_for_every_caller() -> None:
    """Once the shared budget is spent, failing calls are not retried any more."""
    budget = StandardRetryBudget(10, retry_cost=5)
    invoker = ScriptedInvoker(*[error() for _ in range(20)])
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        max_retries=3,
        retry_budget=budget,
        invoker=invoker,
        clock=FakeClock(),
        rng=random.Random(0),
    )
    first = await adapter.execute_async(request())
    assert first.error_code == "retry_budget_exhausted"
    assert invoker.attempts == 3  # the first attempt and two paid retries
    second = await adapter.execute_async(request())
    assert second.error_code == "retry_budget_exhausted"
    assert invoker.attempts == 4  # no retry at all now
    assert budget.available == 0


async def test_retried_success_refunds() -> None:
    """A call that succeeds after a retry pays 5 and gets 1 back."""
    budget = StandardRetryBudget()
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        retry_budget=budget,
        invoker=ScriptedInvoker(error()),
        clock=FakeClock(),
        rng=random.Random(0),
    )
    assert (await adapter.execute_async(request())).success
    assert budget.available == 496


async def test_deadline_stops_a_sleep_that_would_cross_it() -> None:
    """total_timeout: a backoff sleep ending past the deadline is not started."""
    clock = FakeClock()
    invoker = ScriptedInvoker(*[error() for _ in range(10)])
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        max_retries=10,
        initial_retry_delay=1.0,
        max_retry_delay=1.0,
        total_timeout=2.5,
        invoker=invoker,
        clock=clock,
        rng=random.Random(1),
    )
    response = await adapter.execute_async(request())
    assert response.error_code == "deadline_exceeded"
    assert "total_timeout ran out" in (response.error or "")
    assert sum(clock.sleeps) < 2.5
    assert clock.monotonic() - 1000.0 < 2.5
    assert invoker.attempts == len(clock.sleeps) + 1


async def test_deadline_counts_time_spent_before_the_retry_loop() -> None:
    """A rate-limit wait uses up the deadline that the retries then have."""
    from module_sdk.resilience.ratelimit import RateLimit

    clock = FakeClock()
    invoker = ScriptedInvoker(*[error() for _ in range(10)])
    adapter = LambdaAdapter(
        "dice",
        "us-east-1",
        "dice",
        max_retries=10,
        initial_retry_delay=0.4,
        max_retry_delay=0.4,
        total_timeout=2.0,
        rate_limit=RateLimit(rate=1.0, burst=1, mode="wait", max_wait=None),
        invoker=invoker,
        clock=clock,
        rng=random.Random(2),
    )
    invoker.errors.clear()
    assert (await adapter.execute_async(request())).success  # takes the only token
    invoker.errors.extend(error() for _ in range(10))
    response = await adapter.execute_async(request())
    assert response.error_code == "deadline_exceeded"
    assert clock.sleeps[0] == 1.0  # the rate-limit wait
    assert sum(clock.sleeps[1:]) < 1.0  # backoff got only what was left


class SlowInvoker:
    """A function that takes ``seconds`` of the fake clock's time, then answers."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.started = 0
        self.finished = 0
        self.cancelled = 0

    async def invoke(self, call: InvokeCall) -> InvocationResult:
        """Advance the clock by ``seconds`` while "running", then reply."""
        self.started += 1
        try:
            self.clock.advance(self.seconds)
            await asyncio.sleep(0)  # the event loop runs; a due deadline fires here
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return InvocationResult(200, b'{"success": true}')

    async def aclose(self) -> None:
        """Nothing to release."""


@pytest.mark.parametrize(("seconds", "expired"), [(1.5, False), (2.5, True)])
async def test_deadline_expires_mid_attempt_on_the_adapter_clock(
    seconds: float, expired: bool
) -> None:
    """The deadline runs on the adapter's clock: fake time crossing it mid-attempt cancels
    the attempt with deadline_exceeded; an attempt that ends in time is answered."""
    clock = FakeClock()
    invoker = SlowInvoker(clock, seconds)
    adapter = LambdaAdapter(
        "dice", "us-east-1", "dice", total_timeout=2.0, invoker=invoker, clock=clock
    )
    response = await adapter.execute_async(request())
    if expired:
        assert response.error_code == "deadline_exceeded"
        assert "total_timeout ran out after 2.50s and 1 attempt(s)" in (response.error or "")
        assert (invoker.started, invoker.cancelled, invoker.finished) == (1, 1, 0)
    else:
        assert response.success
        assert (invoker.started, invoker.cancelled, invoker.finished) == (1, 0, 1)
    assert clock.sleeps == []
