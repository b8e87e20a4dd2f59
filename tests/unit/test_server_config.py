"""The module server's TOML configuration: validation, environment overrides, the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from module_sdk.cli import main
from module_sdk.errors import ConfigurationError
from module_sdk.server import (
    ModuleServer,
    ServerConfig,
    ServerConfigError,
    load_config,
    parse_config,
)

ISSUE_EXAMPLE = """\
service_api_key = "change-me"        # or SERVICE_API_KEY in the environment
[aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:3001"   # optional: the local runtime, LocalStack, ...
function_prefix = "waddlebot-"           # optional
[[modules]]
name = "dice"
function = "dice"                        # name, ARN, or name:qualifier
commands = ["!roll", "!dice"]
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write ``modules.toml`` in ``tmp_path``."""
    path = tmp_path / "modules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config(**overrides: Any) -> dict[str, Any]:
    """A minimal valid document with top-level overrides."""
    data: dict[str, Any] = {
        "service_api_key": "k",
        "aws": {"region": "us-east-1"},
        "modules": [{"name": "dice", "commands": ["!roll"]}],
    }
    data.update(overrides)
    return data


def kwargs(cfg: ServerConfig, index: int = 0) -> dict[str, Any]:
    """The LambdaAdapter keyword arguments of one module."""
    return dict(cfg.modules[index].adapter_kwargs)


def test_the_issue_example_works_verbatim(tmp_path: Path) -> None:
    """The example configuration from the issue loads as written."""
    cfg = load_config(write(tmp_path, ISSUE_EXAMPLE), env={})
    assert cfg.service_api_key == "change-me"
    assert (cfg.host, cfg.port) == ("0.0.0.0", 8000)
    [dice] = cfg.modules
    assert (dice.name, dice.commands) == ("dice", ("!roll", "!dice"))
    with pytest.raises(ConfigurationError, match="at least 32 random characters"):
        ModuleServer(cfg)  # the example's placeholder is too short to start with
    server = ModuleServer(dataclasses.replace(cfg, service_api_key="k" * 32))
    adapter = server.modules["dice"]
    assert adapter.get_module_info()["function_name"] == "waddlebot-dice"
    assert kwargs(cfg)["endpoint_url"] == "http://127.0.0.1:3001"


def test_every_key_is_accepted(tmp_path: Path) -> None:
    """A file using every documented key loads, and per-module keys override [aws]."""
    text = """
service_api_key = "s3cret-key-0123456789abcdef-0123456789"
[server]
host = "127.0.0.1"
port = 9000
max_body_bytes = 65536
shutdown_grace = 5.5
max_in_flight = 50
retry_after = 3
busy_error_codes = ["throttled"]
default_platform = "discord"
[aws]
region = "eu-west-1"
function_prefix = "wb-"
endpoint_url = "http://127.0.0.1:3001"
invocation_type = "RequestResponse"
connect_timeout = 2
read_timeout = 20.0
total_timeout = 25.0
max_retries = 2
initial_retry_delay = 0.1
max_retry_delay = 2.0
retry_on_timeout = false
max_connections = 64
log_type = "Tail"
http_client = "aiobotocore"
profile = "waddlebot"
[aws.adapter]
observers = []
[[modules]]
name = "dice"
function = "dice:prod"
commands = ["!roll"]
required_scopes = ["chat:write"]
version = "2.1.0"
max_in_flight = 5
read_timeout = 5.0
max_retries = 0
http_client = "lean"
[[modules]]
name = "weather"
function = "arn:aws:lambda:us-west-2:123456789012:function:weather"
qualifier = "live"
invocation_type = "Event"
commands = ["!weather", "!w"]
[modules.adapter]
policies = []
"""
    cfg = load_config(write(tmp_path, text), env={})
    assert (cfg.host, cfg.port, cfg.max_body_bytes, cfg.shutdown_grace) == (
        "127.0.0.1",
        9000,
        65536,
        5.5,
    )
    assert (cfg.retry_after, cfg.busy_error_codes, cfg.default_platform) == (
        3,
        frozenset({"throttled"}),
        "discord",
    )
    dice, weather = cfg.modules
    assert (dice.max_in_flight, weather.max_in_flight) == (5, 50)
    d = kwargs(cfg, 0)
    assert (d["read_timeout"], d["max_retries"], d["connect_timeout"]) == (5.0, 0, 2)
    assert (d["module_version"], d["required_scopes"], d["profile_name"]) == (
        "2.1.0",
        ["chat:write"],
        "waddlebot",
    )
    assert d["observers"] == []
    assert "policies" not in d
    w = kwargs(cfg, 1)
    assert (w["qualifier"], w["invocation_type"], w["policies"]) == ("live", "Event", [])
    assert (d["http_client"], w["http_client"]) == ("lean", "aiobotocore")
    server = ModuleServer(cfg)
    info = server.modules["dice"].get_module_info()
    assert (info["function_name"], info["qualifier"], info["region"]) == (
        "wb-dice",
        "prod",
        "eu-west-1",
    )
    assert server.modules["weather"].get_module_info()["region"] == "us-west-2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[modules]\n", "is not valid TOML"),
        ('service_api_key = "k"\n[aws]\nregion = "us-east-1"\n', "modules is missing"),
        ('modules = "dice"\n', "modules is invalid"),
        ('typo = 1\n[[modules]]\nname = "d"\n', "typo: unknown key"),
    ],
    ids=["syntax", "no-modules", "modules-not-tables", "unknown-top-key"],
)
def test_file_level_errors_name_the_file(tmp_path: Path, text: str, expected: str) -> None:
    """Broken files fail at load with the file name and the problem."""
    path = write(tmp_path, text)
    with pytest.raises(ServerConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    """A missing file names the path and the option."""
    with pytest.raises(ServerConfigError, match="no such file: pass --config PATH"):
        load_config(tmp_path / "absent.toml", env={})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            config(modules=[{"name": "dice", "comands": ["!roll"]}]),
            "modules[0].comands: unknown key (did you mean 'commands'?)",
        ),
        (
            config(modules=[{"name": "dice", "commands": "!roll"}]),
            "modules[0].commands = '!roll' is invalid: use a list of command strings",
        ),
        (
            config(modules=[{"name": "dice", "commands": ["!roll dice"]}]),
            "contains whitespace",
        ),
        (config(modules=[{"commands": ["!roll"]}]), "modules[0].name is missing"),
        (config(modules=[{"name": "bad name"}]), "modules[0].name = 'bad name' is invalid"),
        (
            config(modules=[{"name": "a", "commands": ["!x"]}, {"name": "a"}]),
            "modules[1] (a): name 'a' is already used by modules[0]",
        ),
        (
            config(
                modules=[{"name": "a", "commands": ["!roll"]}, {"name": "b", "commands": ["!ROLL"]}]
            ),
            "modules[1] (b): commands: '!ROLL' is already answered by module 'a'",
        ),
        (config(aws={}), "aws.region is missing"),
        (config(aws={"region": "us-east-1", "read_timeout": -1}), "aws.read_timeout = -1"),
        (config(aws={"region": "us-east-1", "max_retries": 1.5}), "aws.max_retries = 1.5"),
        (config(aws={"region": "us-east-1", "endpoint_url": "localhost"}), "http:// or https://"),
        (config(aws={"region": "us-east-1", "log_type": "All"}), "aws.log_type = 'All'"),
        (
            config(aws={"region": "us-east-1", "http_client": "requests"}),
            "aws.http_client = 'requests'",
        ),
        (config(aws="x"), "aws must be a table"),
        (config(server={"port": 70000}), "server.port = 70000 is invalid"),
        (config(server={"busy_error_codes": ["nope"]}), "unknown error code(s) ['nope']"),
        (config(server={"hots": "x"}), "server.hots: unknown key (did you mean 'host'?)"),
        (config(service_api_key=""), "service_api_key is invalid"),
        (
            config(modules=[{"name": "dice", "function": "bad name!"}]),
            "modules[0] (dice): function_identifier='bad name!' is invalid",
        ),
        (
            config(modules=[{"name": "dice", "function": "dice:a", "qualifier": "b"}]),
            "modules[0] (dice): function_identifier='dice:a' names qualifier 'a'",
        ),
        (
            config(aws={"region": "us-east-1", "adapter": {"retri_budget": 1}}),
            "aws.adapter.retri_budget: LambdaAdapter has no parameter 'retri_budget' "
            "(did you mean 'retry_budget'?)",
        ),
        (
            config(modules=[{"name": "dice", "adapter": {"read_timeout": 1}}]),
            "modules[0].adapter.read_timeout: set it as the key 'read_timeout' instead",
        ),
        (
            config(modules=[{"name": "dice", "adapter": {"clock": 1}}]),
            "modules[0].adapter.clock: takes a Python object",
        ),
        (
            config(modules=[{"name": "dice", "adapter": "x"}]),
            "modules[0].adapter = 'x' is invalid: use a table",
        ),
        (
            config(modules=[{"name": "dice", "read_timeout": "soon"}]),
            "modules[0].read_timeout = 'soon' is invalid: use a finite number > 0, or \"auto\"",
        ),
        (
            config(aws={"region": "us-east-1", "retry_on_timeout": "no"}),
            "aws.retry_on_timeout = 'no' is invalid: use true or false",
        ),
        (
            config(modules=[{"name": "dice", "invocation_type": "Sync"}]),
            "modules[0].invocation_type = 'Sync' is invalid: use one of RequestResponse, Event",
        ),
        (
            config(aws={"region": "us-east-1", "aws_access_key_id": "AKIDEXAMPLE"}),
            "aws: aws_access_key_id and aws_secret_access_key must be given together",
        ),
        (
            config(
                aws={"region": "us-east-1", "max_connections": 0},
                modules=[{"name": "dice", "max_connections": 8}],
            ),
            "aws.max_connections = 0 is invalid: use an integer >= 1",
        ),
    ],
    ids=[
        "typo-suggestion",
        "commands-type",
        "command-whitespace",
        "no-name",
        "bad-name",
        "duplicate-name",
        "duplicate-command",
        "no-region",
        "negative-timeout",
        "float-retries",
        "bad-endpoint",
        "bad-log-type",
        "bad-http-client",
        "aws-not-table",
        "bad-port",
        "bad-busy-code",
        "server-typo",
        "empty-key",
        "adapter-rejects-function",
        "conflicting-qualifier",
        "unknown-adapter-kwarg",
        "managed-adapter-kwarg",
        "object-adapter-kwarg",
        "adapter-not-table",
        "module-setting",
        "not-a-bool",
        "not-an-invocation-type",
        "credentials-go-together",
        "aws-value-overridden-everywhere",
    ],
)
def test_invalid_values_name_the_key(data: dict[str, Any], expected: str) -> None:
    """Each invalid setting fails at start, naming the source, the key and the problem."""
    with pytest.raises(ServerConfigError) as info:
        parse_config(data, source="m.toml", env={})
    assert str(info.value).startswith("m.toml: ")
    assert expected in str(info.value)


def test_secret_values_never_appear_in_errors() -> None:
    """A mistyped credential is reported without its value."""
    data = config(aws={"region": "us-east-1", "aws_secret_access_key": ["hunter2-secret"]})
    with pytest.raises(ServerConfigError) as info:
        parse_config(data, env={})
    assert "aws.aws_secret_access_key = <hidden> is invalid" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_the_service_key_stays_out_of_repr() -> None:
    """ServerConfig's repr does not show the service key."""
    cfg = parse_config(config(service_api_key="very-secret-value"), env={})
    assert "very-secret-value" not in repr(cfg)
    assert "very-secret-value" not in repr(cfg.modules)


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        ({"AWS_REGION": "eu-central-1"}, "region", "eu-central-1"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "region", "us-east-1"),
        ({"LAMBDA_FUNCTION_PREFIX": "prod-"}, "function_prefix", "prod-"),
        ({"LAMBDA_FUNCTION_PREFIX": ""}, "function_prefix", None),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "endpoint_url", "http://127.0.0.1:1"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_LAMBDA": "http://h:2"},
            "endpoint_url",
            "http://h:2",
        ),
        ({"AWS_PROFILE": "ops"}, "profile_name", "ops"),
        ({"AWS_REGION": ""}, "region", "us-east-1"),
    ],
    ids=[
        "region",
        "default-region-loses-to-file",
        "prefix",
        "empty-prefix-clears",
        "endpoint",
        "lambda-endpoint-wins",
        "profile",
        "empty-region-ignored",
    ],
)
def test_environment_overrides_the_aws_table(
    env: dict[str, str], key: str, expected: object
) -> None:
    """WaddleBot's environment variables override the file's [aws] values."""
    data = config(aws={"region": "us-east-1", "function_prefix": "waddlebot-"})
    assert kwargs(parse_config(data, env=env)).get(key) == expected


def test_aws_default_region_fills_a_missing_region() -> None:
    """AWS_DEFAULT_REGION is used when neither the file nor AWS_REGION set one."""
    cfg = parse_config(config(aws={}), env={"AWS_DEFAULT_REGION": "ap-south-1"})
    assert kwargs(cfg)["region"] == "ap-south-1"


def test_a_module_override_beats_the_environment() -> None:
    """A module's own region is more specific than AWS_REGION."""
    data = config(modules=[{"name": "dice", "region": "sa-east-1"}, {"name": "other"}])
    cfg = parse_config(data, env={"AWS_REGION": "eu-west-3"})
    assert (kwargs(cfg, 0)["region"], kwargs(cfg, 1)["region"]) == ("sa-east-1", "eu-west-3")


def test_service_api_key_comes_from_the_environment() -> None:
    """SERVICE_API_KEY overrides (or supplies) the service key."""
    assert parse_config(config(), env={"SERVICE_API_KEY": "env-key"}).service_api_key == "env-key"
    data = config()
    del data["service_api_key"]
    assert parse_config(data, env={"SERVICE_API_KEY": "env-key"}).service_api_key == "env-key"


def test_an_invalid_environment_value_is_named() -> None:
    """A bad AWS_ENDPOINT_URL fails at start like a bad file value."""
    with pytest.raises(ServerConfigError, match=r"aws\.endpoint_url = 'nope' is invalid"):
        parse_config(config(), env={"AWS_ENDPOINT_URL": "nope"})


def test_the_server_refuses_to_start_without_a_key() -> None:
    """No key and no insecure_no_auth: a ConfigurationError saying how to fix it."""
    data = config()
    del data["service_api_key"]
    cfg = parse_config(data, env={})
    with pytest.raises(ConfigurationError, match="--insecure-no-auth"):
        ModuleServer(cfg)
    assert ModuleServer(cfg, insecure_no_auth=True).modules["dice"].module_name == "dice"


def test_cli_reports_config_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve`` with a bad file exits 2 and prints the file, key and problem."""
    path = write(tmp_path, '[aws]\nregion = "us-east-1"\n[[modules]]\nname = "d"\ncomands = []\n')
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("waddlebot-lambda: error: ")
    assert f"{path}: modules[0].comands: unknown key" in err
    assert "Traceback" not in err


def test_cli_refuses_to_serve_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` without a key exits 2 and points at SERVICE_API_KEY / --insecure-no-auth."""
    monkeypatch.delenv("SERVICE_API_KEY", raising=False)
    path = write(tmp_path, '[aws]\nregion = "us-east-1"\n[[modules]]\nname = "d"\n')
    assert main(["serve", "--config", str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "SERVICE_API_KEY" in err
    assert "--insecure-no-auth" in err


def test_cli_rejects_a_bad_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range --port is refused before anything starts."""
    assert main(["serve", "--config", str(write(tmp_path, ISSUE_EXAMPLE)), "--port", "-1"]) == 2
    assert "--port -1 is invalid" in capsys.readouterr().err


def test_policy_tables_become_config_objects(tmp_path: Path) -> None:
    """[aws.adapter]/[modules.adapter] tables build the breaker, rate-limit and cache configs."""
    from module_sdk.resilience.breaker import CircuitBreakerConfig
    from module_sdk.resilience.cache import ResponseCacheConfig
    from module_sdk.resilience.ratelimit import Limit, RateLimit

    text = ISSUE_EXAMPLE + (
        "[modules.adapter]\n"
        "rate_limit = { rate = 5, burst = 10, per_user = { rate = 1, burst = 2 } }\n"
        'cache = { commands = { "!roll" = 5.0 } }\n'
        "[aws.adapter]\n"
        'circuit_breaker = { consecutive_failures = 3, failure_codes = ["timeout"] }\n'
    )
    cfg = load_config(write(tmp_path, text), env={})
    args = kwargs(cfg)
    assert args["circuit_breaker"] == CircuitBreakerConfig(
        consecutive_failures=3, failure_codes=frozenset({"timeout"})
    )
    assert args["rate_limit"] == RateLimit(rate=5, burst=10, per_user=Limit(rate=1, burst=2))
    assert isinstance(args["cache"], ResponseCacheConfig)
    assert dict(args["cache"].commands) == {"!roll": 5.0}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"circuit_breaker": {"consecutive_failure": 3}},
            "aws.adapter.circuit_breaker is invalid (CircuitBreakerConfig): unknown key "
            "'consecutive_failure' (did you mean 'consecutive_failures'?); the keys are ",
        ),
        (
            {"rate_limit": {"rate": 1, "burst": 2, "per_user": {"rate": 1, "brust": 2}}},
            "aws.adapter.rate_limit is invalid (RateLimit): unknown key 'brust' "
            "(did you mean 'burst'?)",
        ),
        ({"rate_limit": {"rate": -1}}, "aws.adapter.rate_limit is invalid (RateLimit): "),
        ({"dead_letter_sync": True}, "modules[0] (dice): dead_letter_sync=True needs a sink"),
    ],
    ids=["unknown-field", "unknown-nested-field", "bad-value", "adapter-refuses"],
)
def test_policy_table_errors_name_the_key(table: dict[str, Any], expected: str) -> None:
    """A bad policy table fails at start with the policy's own message and the key."""
    data = config(aws={"region": "us-east-1", "adapter": table})
    with pytest.raises(ServerConfigError) as info:
        parse_config(data, source="m.toml", env={})
    assert str(info.value).startswith("m.toml: ")
    assert expected in str(info.value)
