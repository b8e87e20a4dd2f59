"""Function discovery, functions.toml, and fault-plan configuration of the local runtime."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from module_sdk.errors import ConfigurationError
from module_sdk.local import (
    FaultDecision,
    FaultPlan,
    Faults,
    FunctionConfigError,
    FunctionSpec,
    load_functions,
)


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def test_every_file_defining_handler_is_a_function(tmp_path: Path) -> None:
    """Files with a top-level handler become functions; helpers and private files do not."""
    directory = _write(
        tmp_path,
        {
            "dice.py": "def handler(event, context):\n    return {}\n",
            "ball.py": "async def handler(event, context):\n    return {}\n",
            "alias.py": "from dice import handler\n",
            "helpers.py": "def roll():\n    return 4\n",
            "_private.py": "def handler(event, context):\n    return {}\n",
        },
    )
    specs = load_functions(directory)
    assert sorted(specs) == ["alias", "ball", "dice"]
    dice = specs["dice"]
    assert dice.handler == "dice.handler"
    assert dice.timeout == 3.0
    assert dice.reserved_concurrency is None
    assert dice.code_dir == directory.resolve()


def test_functions_toml_overrides_and_declares(tmp_path: Path) -> None:
    """functions.toml overrides a discovered function and declares new ones."""
    directory = _write(
        tmp_path,
        {
            "slow.py": "def handler(event, context):\n    return {}\n",
            "tools.py": "def run(event, context):\n    return {}\n",
            "functions.toml": """
                [functions.slow]
                timeout = 1
                reserved_concurrency = 1
                environment = { GREETING = "hi" }

                [functions.waddlebot-tools]
                handler = "tools.run"
                memory_size = 256
                aliases = ["live"]
            """,
        },
    )
    specs = load_functions(directory)
    assert specs["slow"].timeout == 1.0
    assert specs["slow"].reserved_concurrency == 1
    assert specs["slow"].environment == {"GREETING": "hi"}
    assert specs["waddlebot-tools"].handler == "tools.run"
    assert specs["waddlebot-tools"].memory_size == 256
    assert specs["waddlebot-tools"].aliases == ("live",)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[functions.dice]\ntimeout = -1\n", "[functions.dice]: timeout = -1 is invalid"),
        ("[functions.dice]\ntimeout = 'soon'\n", "timeout = 'soon' is invalid"),
        ("[functions.dice]\nreserved_concurrency = -2\n", "reserved_concurrency = -2"),
        ("[functions.dice]\nenvironment = { N = 3 }\n", "environment.N = 3 is invalid"),
        ("[functions.dice]\nmemory = 128\n", "unknown key(s) memory: the allowed keys are"),
        ("[functions.dice]\nhandler = 'dice'\n", "handler = 'dice' is invalid"),
        ("[functions.ghost]\ntimeout = 1\n", "no handler and no ghost.py"),
        ("[functions.other]\nhandler = 'missing.handler'\n", "no module missing.py"),
        ("[functions.dice]\naliases = '7'\n", "aliases = '7' is invalid"),
        ("[server]\nport = 1\n", "unknown top-level key(s) server"),
        ("[functions.dice\n", "not valid TOML"),
        ("[functions.'bad name']\nhandler = 'dice.handler'\n", "the function name is invalid"),
    ],
    ids=[
        "negative-timeout",
        "text-timeout",
        "negative-concurrency",
        "number-env",
        "unknown-key",
        "bad-handler",
        "no-handler",
        "missing-module",
        "alias-string",
        "top-level",
        "bad-toml",
        "bad-name",
    ],
)
def test_config_errors_name_the_file_the_key_and_the_problem(
    tmp_path: Path, toml: str, expected: str
) -> None:
    """Every configuration error names functions.toml, the key and what to do."""
    directory = _write(
        tmp_path,
        {"dice.py": "def handler(event, context):\n    return {}\n", "functions.toml": toml},
    )
    with pytest.raises(FunctionConfigError) as info:
        load_functions(directory)
    message = str(info.value)
    assert "functions.toml" in message
    assert expected in message
    assert isinstance(info.value, ConfigurationError)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A functions directory that does not exist is named in the error."""
    with pytest.raises(FunctionConfigError, match="does not exist"):
        load_functions(tmp_path / "nope")


def test_function_spec_validates_its_fields(tmp_path: Path) -> None:
    """FunctionSpec refuses bad names and timeouts with the field named."""
    with pytest.raises(FunctionConfigError, match="function name 'no spaces'"):
        FunctionSpec(name="no spaces", handler="a.handler", code_dir=tmp_path)
    with pytest.raises(FunctionConfigError, match="timeout = 901"):
        FunctionSpec(name="ok", handler="a.handler", code_dir=tmp_path, timeout=901)


def test_fault_decisions_are_deterministic_with_a_seed() -> None:
    """The same seed gives the same faults; each function has its own sequence."""
    faults = Faults(throttle_rate=0.3, error_rate=0.2, drop_rate=0.1, slow_rate=0.2)

    def run(seed: int, interleave: bool) -> list[FaultDecision]:
        plan = FaultPlan(faults, seed=seed)
        decisions = []
        for _ in range(50):
            decisions.append(plan.decide("dice"))
            if interleave:
                plan.decide("other")
        return decisions

    assert run(7, False) == run(7, True)
    assert run(7, False) != run(8, False)
    kinds = run(7, False)
    assert any(d.throttle for d in kinds)
    assert any(d.error for d in kinds)


def test_fault_plan_per_function_overrides() -> None:
    """A function's own Faults replace the global ones; set() changes them at run time."""
    plan = FaultPlan(Faults(throttle_rate=1.0), {"calm": Faults()}, seed=1)
    assert plan.decide("busy").throttle
    assert not plan.decide("calm").throttle
    plan.set(Faults(error_rate=1.0), "calm")
    assert plan.decide("calm").error
    plan.set(None, "calm")
    assert plan.decide("calm").throttle
    plan.set(None)
    assert not plan.decide("busy").throttle


@pytest.mark.parametrize(
    "kwargs",
    [{"throttle_rate": 1.5}, {"error_rate": -0.1}, {"latency": -1}, {"slow_seconds": float("nan")}],
    ids=["rate-above-1", "negative-rate", "negative-latency", "nan-seconds"],
)
def test_faults_validate_their_values(kwargs: dict[str, float]) -> None:
    """Out-of-range fault settings are refused with the field named."""
    with pytest.raises(ConfigurationError, match=f"Faults.{next(iter(kwargs))}"):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_local_package_exports_exactly_its_all() -> None:
    """module_sdk.local's public names are exactly __all__."""
    import module_sdk.local as local

    # name.isidentifier(): pytest rewrites the asserts of packages that ship a pytest plugin
    # (this one does) and leaves @py_builtins and @pytest_ar in their namespaces.
    public = {n for n in dir(local) if not n.startswith("_") and n.isidentifier()}
    assert public == set(local.__all__)


def test_scripted_decisions_come_before_random_draws() -> None:
    """Scripted decisions are used first, in order, then the random faults apply."""
    plan = FaultPlan(Faults(error_rate=1.0), seed=3)
    plan.script("dice", FaultDecision(throttle=True), FaultDecision())
    assert plan.decide("dice") == FaultDecision(throttle=True)
    assert plan.decide("dice") == FaultDecision()
    assert plan.decide("dice").error
    assert plan.decide("other").error
