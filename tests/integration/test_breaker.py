"""The circuit breaker: its state machine on a fake clock, and the adapter behind it."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest

from module_sdk import ConfigurationError, ExecuteRequest, LambdaAdapter
from module_sdk.resilience.breaker import (
    BreakerState,
    CircuitBreakerConfig,
    CircuitState,
    Outcome,
)
from module_sdk.testing import FakeClock, HandlerInvoker, Reply, ScriptedLambdaServer


def request(session: str = "s-1") -> ExecuteRequest:
    """A chat command."""
    return ExecuteRequest(
        command="!roll",
        args=["2d6"],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id=session,
        platform="twitch",
    )


def unique() -> str:
    """A function name no other test uses (breakers are shared per function)."""
    return f"fn-{uuid.uuid4().hex[:10]}"


class Flaky:
    """A handler that fails (a 5xx-like outage) while ``failing`` is True."""

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls += 1
        return {"success": True, "message": "ok"}


class OutageInvoker(HandlerInvoker):
    """An in-process invoker that raises a classified service error while failing."""

    def __init__(self) -> None:
        self.flaky = Flaky()
        super().__init__(self.flaky)

    async def invoke(self, call: Any) -> Any:
        from module_sdk.errors import ErrorCode, InvocationError

        if self.flaky.failing:
            self.flaky.calls += 1
            raise InvocationError(
                "Service unavailable",
                error_code=ErrorCode.SERVICE_ERROR,
                retryable=True,
                status_code=503,
            )
        return await super().invoke(call)


CONFIG = CircuitBreakerConfig(
    failure_rate_threshold=0.5,
    window_size=10,
    minimum_calls=4,
    consecutive_failures=3,
    open_duration=30.0,
    half_open_max_calls=2,
)


def test_consecutive_failures_open_the_breaker() -> None:
    """Three failures in a row open it, whatever the window says."""
    state = BreakerState()
    config = CircuitBreakerConfig(consecutive_failures=3, minimum_calls=10, window_size=20)
    for _ in range(2):
        assert state.record(config, 0.0, Outcome.FAILURE, False) is CircuitState.CLOSED
    assert state.record(config, 0.0, Outcome.FAILURE, False) is CircuitState.OPEN


def test_failure_rate_needs_minimum_calls() -> None:
    """The rate is judged only once minimum_calls calls are in the window."""
    state = BreakerState()
    config = CircuitBreakerConfig(
        failure_rate_threshold=0.5, window_size=10, minimum_calls=4, consecutive_failures=None
    )
    outcomes = [Outcome.FAILURE, Outcome.SUCCESS, Outcome.FAILURE]
    for outcome in outcomes:
        assert state.record(config, 0.0, outcome, False) is CircuitState.CLOSED
    # 3 of 4 calls failed: 75 % >= 50 %, and the window now holds the minimum of 4.
    assert state.record(config, 0.0, Outcome.FAILURE, False) is CircuitState.OPEN


def test_sliding_window_forgets_old_calls() -> None:
    """Only the last window_size calls count toward the rate."""
    state = BreakerState()
    config = CircuitBreakerConfig(
        failure_rate_threshold=0.5, window_size=4, minimum_calls=4, consecutive_failures=None
    )
    for outcome in [Outcome.FAILURE, Outcome.SUCCESS, Outcome.SUCCESS, Outcome.SUCCESS]:
        state.record(config, 0.0, outcome, False)
    # The old failure slid out: window = S S S F -> 25 %, still closed.
    assert state.record(config, 0.0, Outcome.FAILURE, False) is CircuitState.CLOSED
    assert state.failures == 1
    assert len(state.window) == 4


def test_open_then_half_open_trials_then_closed() -> None:
    """After open_duration, half_open_max_calls trials; all succeed and it closes."""
    state = BreakerState()
    for _ in range(3):
        state.record(CONFIG, 100.0, Outcome.FAILURE, False)
    assert state.state is CircuitState.OPEN
    refused = state.allow(CONFIG, 129.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1.0)
    first = state.allow(CONFIG, 130.0)
    second = state.allow(CONFIG, 130.0)
    third = state.allow(CONFIG, 130.0)
    assert (first.allowed, first.trial, first.state) == (True, True, CircuitState.HALF_OPEN)
    assert second.allowed
    assert second.trial
    assert not third.allowed  # only two trial slots
    assert state.record(CONFIG, 131.0, Outcome.SUCCESS, True) is CircuitState.HALF_OPEN
    assert state.record(CONFIG, 131.0, Outcome.SUCCESS, True) is CircuitState.CLOSED
    assert state.allow(CONFIG, 131.0).allowed


def test_failed_trial_reopens_for_another_cool_down() -> None:
    """A failing trial call opens the breaker again from that moment."""
    state = BreakerState()
    for _ in range(3):
        state.record(CONFIG, 0.0, Outcome.FAILURE, False)
    assert state.allow(CONFIG, 30.0).trial
    assert state.record(CONFIG, 31.0, Outcome.FAILURE, True) is CircuitState.OPEN
    assert not state.allow(CONFIG, 60.0).allowed
    assert state.allow(CONFIG, 61.0).allowed


def test_lost_trial_slot_is_freed_after_open_duration() -> None:
    """A trial whose result never comes back cannot keep the breaker half-open forever."""
    config = CircuitBreakerConfig(consecutive_failures=1, open_duration=10.0)
    state = BreakerState()
    state.record(config, 0.0, Outcome.FAILURE, False)
    assert state.allow(config, 10.0).trial
    assert not state.allow(config, 15.0).allowed
    assert state.allow(config, 20.0).trial


def test_ignored_and_late_outcomes_change_nothing() -> None:
    """Refusals are not counted, and calls finishing after it opened are too late."""
    state = BreakerState()
    state.record(CONFIG, 0.0, Outcome.IGNORED, False)
    assert len(state.window) == 0
    for _ in range(3):
        state.record(CONFIG, 0.0, Outcome.FAILURE, False)
    assert state.record(CONFIG, 1.0, Outcome.SUCCESS, False) is CircuitState.OPEN


@pytest.mark.parametrize(
    ("code", "attempts", "expected"),
    [
        (None, 1, Outcome.SUCCESS),
        ("service_error", 1, Outcome.FAILURE),
        ("throttled", 4, Outcome.FAILURE),
        ("timeout", 1, Outcome.FAILURE),
        ("deadline_exceeded", 2, Outcome.FAILURE),
        ("deadline_exceeded", 0, Outcome.IGNORED),
        ("function_error", 1, Outcome.SUCCESS),
        ("module_error", 1, Outcome.SUCCESS),
        ("rate_limited", 0, Outcome.IGNORED),
        ("invalid_request", 0, Outcome.IGNORED),
        ("not_found", 1, Outcome.SUCCESS),
    ],
    ids=lambda v: str(v),
)
def test_default_classification(code: str | None, attempts: int, expected: Outcome) -> None:
    """Outages count as failures; the function's own answers and refusals do not."""
    assert CircuitBreakerConfig().classify(code, attempts) is expected


def test_function_errors_trip_only_when_configured() -> None:
    """Adding function_error to failure_codes makes the function's errors count."""
    config = CircuitBreakerConfig(failure_codes=frozenset({"function_error", "timeout"}))
    assert config.classify("function_error", 1) is Outcome.FAILURE
    assert config.classify("service_error", 1) is Outcome.SUCCESS


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 30, "window_size": 20}, "minimum_calls"),
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"open_duration": -1}, "open_duration"),
        ({"half_open_max_calls": True}, "half_open_max_calls"),
        ({"failure_codes": frozenset({"bogus"})}, "unknown codes"),
        ({"failure_codes": "timeout"}, "failure_codes"),
    ],
    ids=lambda v: str(v),
)
def test_bad_config_is_named(kwargs: dict[str, Any], fragment: str) -> None:
    """Each invalid setting raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=fragment):
        CircuitBreakerConfig(**kwargs)


def test_adapter_rejects_a_wrong_breaker_type() -> None:
    """circuit_breaker=<not a config> is refused with the fix."""
    with pytest.raises(ConfigurationError, match="CircuitBreakerConfig"):
        LambdaAdapter(
            unique(),
            "us-east-1",
            "dice",
            circuit_breaker={"open_duration": 5},  # type: ignore[arg-type]
        )


async def test_adapter_opens_recovers_and_reports_health() -> None:
    """Outage -> open (no calls) -> cool-down -> trial -> closed, visible in health."""
    invoker = OutageInvoker()
    clock = FakeClock()
    adapter = LambdaAdapter(
        unique(),
        "us-east-1",
        "dice",
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=3, open_duration=30.0),
        invoker=invoker,
        clock=clock,
    )
    assert adapter.get_health_status()["circuit_state"] == "closed"
    for _ in range(3):
        assert (await adapter.execute_async(request())).error_code == "service_error"
    assert adapter.get_health_status()["circuit_state"] == "open"
    calls = invoker.flaky.calls
    refused = await adapter.execute_async(request())
    assert refused.error_code == "circuit_open"
    assert "next trial call in 30.0s" in (refused.error or "")
    assert invoker.flaky.calls == calls
    assert adapter.get_health_status()["total_requests"] == 3  # refusals are not counted
    clock.advance(30.0)
    invoker.flaky.failing = False
    assert (await adapter.execute_async(request())).success
    assert adapter.get_health_status()["circuit_state"] == "closed"
    assert invoker.flaky.calls == calls + 1


async def test_adapters_of_one_function_share_a_breaker() -> None:
    """Two adapters for the same function and region share one in-process breaker."""
    name = unique()
    invoker = OutageInvoker()
    config = CircuitBreakerConfig(consecutive_failures=2)
    first = LambdaAdapter(
        name, "us-east-1", "a", max_retries=0, circuit_breaker=config, invoker=invoker
    )
    second = LambdaAdapter(
        name, "us-east-1", "b", max_retries=0, circuit_breaker=config, invoker=invoker
    )
    other_region = LambdaAdapter(
        name, "eu-west-1", "c", max_retries=0, circuit_breaker=config, invoker=invoker
    )
    for _ in range(2):
        await first.execute_async(request())
    assert (await second.execute_async(request())).error_code == "circuit_open"
    assert (await other_region.execute_async(request())).error_code == "service_error"


async def test_module_errors_do_not_trip_it() -> None:
    """A function answering success: false many times keeps the breaker closed."""
    invoker = HandlerInvoker(lambda event, context: {"success": False, "error": "no such die"})
    adapter = LambdaAdapter(
        unique(),
        "us-east-1",
        "dice",
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=2),
        invoker=invoker,
    )
    for _ in range(5):
        assert (await adapter.execute_async(request())).error_code == "module_error"
    assert adapter.get_health_status()["circuit_state"] == "closed"
    assert len(invoker.calls) == 5


async def test_cancelled_trial_frees_its_slot() -> None:
    """A half-open trial that is cancelled gives its slot back at once."""
    gate = asyncio.Event()
    running = asyncio.Event()

    async def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        running.set()
        await gate.wait()
        return {"success": True}

    invoker = OutageInvoker()
    clock = FakeClock()
    adapter = LambdaAdapter(
        unique(),
        "us-east-1",
        "dice",
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=1, open_duration=5.0),
        invoker=invoker,
        clock=clock,
    )
    await adapter.execute_async(request())
    clock.advance(5.0)
    invoker.flaky.failing = False
    invoker.handler = slow
    task = asyncio.create_task(adapter.execute_async(request()))
    async with asyncio.timeout(30):
        await running.wait()  # the trial call holds the half-open slot
    assert (await adapter.execute_async(request())).error_code == "circuit_open"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    assert (await adapter.execute_async(request())).success


async def test_open_breaker_makes_zero_calls_to_the_endpoint(
    scripted: ScriptedLambdaServer,
) -> None:
    """Behind an open breaker the real HTTP endpoint receives no invocation at all."""
    name = unique()
    scripted.script(name, *[Reply.aws_error(503, "ServiceException", "down")] * 6)
    adapter = LambdaAdapter(
        name,
        "us-east-1",
        "dice",
        endpoint_url=scripted.url,
        max_retries=1,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=2, open_duration=60.0),
        clock=FakeClock(),
        rng=random.Random(0),
    )
    async with adapter:
        for _ in range(2):
            assert (await adapter.execute_async(request())).error_code == "service_error"
        assert scripted.count(name) == 4  # two requests, one retry each
        for i in range(20):
            response = await adapter.execute_async(request(f"s-{i}"))
            assert response.error_code == "circuit_open"
    assert scripted.count(name) == 4


async def test_process_registry_reset_closes_breakers_in_place() -> None:
    """PROCESS_BREAKERS.reset(key) closes the breaker that existing adapters hold."""
    from module_sdk.resilience.breaker import PROCESS_BREAKERS, breaker_key

    invoker = OutageInvoker()
    adapter = LambdaAdapter(
        unique(),
        "us-east-1",
        "dice",
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=1),
        invoker=invoker,
    )
    await adapter.execute_async(request())
    assert adapter.get_health_status()["circuit_state"] == "open"
    PROCESS_BREAKERS.reset(breaker_key(adapter.target, adapter.invoke_region))
    assert adapter.get_health_status()["circuit_state"] == "closed"
    invoker.flaky.failing = False
    assert (await adapter.execute_async(request())).success


async def test_fake_clock_breaker_never_judged_on_the_real_clock() -> None:
    """A breaker opened on a FakeClock is not seen by an adapter on the real clock."""
    name = "dice"  # the same function name on purpose
    fake = LambdaAdapter(
        name,
        "us-east-1",
        "dice",
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=1, open_duration=60),
        invoker=OutageInvoker(),
        clock=FakeClock(start=1000.0),
    )
    assert (await fake.execute_async(request())).error_code == "service_error"
    assert fake.get_health_status()["circuit_state"] == "open"
    real = LambdaAdapter(
        name,
        "us-east-1",
        "dice",
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=1, open_duration=60),
        invoker=HandlerInvoker(lambda event, context: {"success": True}),
    )
    assert real.get_health_status()["circuit_state"] == "closed"
    assert (await real.execute_async(request())).success


async def test_breakers_are_per_endpoint(scripted: ScriptedLambdaServer) -> None:
    """A dead endpoint opens its own breaker, not the one of the same function elsewhere."""
    breaker = CircuitBreakerConfig(consecutive_failures=1, open_duration=60)
    dead = LambdaAdapter(
        "quote",
        "us-east-1",
        "quote",
        max_retries=0,
        circuit_breaker=breaker,
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        connect_timeout=1.0,
    )
    healthy = LambdaAdapter(
        "quote",
        "us-east-1",
        "quote",
        max_retries=0,
        circuit_breaker=breaker,
        endpoint_url=scripted.url,
    )
    scripted.script("quote", Reply.ok({"success": True, "message": "hi"}))
    async with dead, healthy:
        assert (await dead.execute_async(request())).error_code == "connection"
        assert dead.get_health_status()["circuit_state"] == "open"
        answer = await healthy.execute_async(request())
    assert answer.success, answer.error
    assert healthy.get_health_status()["circuit_state"] == "closed"


async def test_breakers_of_two_accounts_are_apart(scripted: ScriptedLambdaServer) -> None:
    """Same function name, same endpoint, other credentials: one account's outage leaves the
    other account's breaker closed."""
    name = unique()
    scripted.script(name, *[Reply.aws_error(503, "ServiceException", "down")] * 2)

    def adapter(key_id: str) -> LambdaAdapter:
        return LambdaAdapter(
            name,
            "us-east-1",
            "dice",
            endpoint_url=scripted.url,
            aws_access_key_id=key_id,
            aws_secret_access_key="not-a-real-secret",
            max_retries=0,
            circuit_breaker=CircuitBreakerConfig(consecutive_failures=2, open_duration=60.0),
        )

    async with adapter("AKIDACCOUNTONE000001") as one, adapter("AKIDACCOUNTTWO000002") as two:
        for _ in range(2):
            assert (await one.execute_async(request())).error_code == "service_error"
        assert (await one.execute_async(request())).error_code == "circuit_open"
        assert (await two.execute_async(request())).success
        assert two.get_health_status()["circuit_state"] == "closed"
    assert scripted.count(name) == 3


def test_breaker_key_names_account_and_endpoint_without_secrets() -> None:
    """The key holds the ARN's account or a digest of the credentials, and no userinfo."""
    from module_sdk.aws_lambda.clients import ClientSettings
    from module_sdk.aws_lambda.naming import resolve_function
    from module_sdk.resilience.breaker import breaker_key

    settings = ClientSettings(
        "us-east-1", aws_access_key_id="AKIDSECRETISH0001", aws_secret_access_key="s3cr3t"
    )
    plain = resolve_function("dice")
    key = breaker_key(plain, "us-east-1", "http://user:pa55@127.0.0.1:3001/", settings.identity())
    assert key.startswith("http://127.0.0.1:3001|key-")
    assert "AKIDSECRETISH0001" not in key and "s3cr3t" not in key and "pa55" not in key
    arn = resolve_function("arn:aws:lambda:us-west-2:123456789012:function:dice")
    assert breaker_key(arn, "us-west-2", None, settings.identity()).startswith(
        "aws|123456789012|us-west-2:"
    )
    assert breaker_key(plain, "us-east-1") == "aws|default|us-east-1:dice:$LATEST"
