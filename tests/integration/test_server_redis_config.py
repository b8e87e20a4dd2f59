"""``[redis]`` in modules.toml: URL from the file or REDIS_URL, the password never shown."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import aiohttp
import pytest

from module_sdk.server import ModuleServer, ServerConfigError, parse_config
from module_sdk.server.config import url_without_password
from module_sdk.testing import RedisServer, ScriptedLambdaServer
from support.router import router_body


def document(**redis: Any) -> dict[str, Any]:
    """A minimal configuration with a ``[redis]`` table."""
    return {
        "service_api_key": "redis-config-test-key-0123456789abcdef",
        "redis": redis,
        "aws": {"region": "us-east-1"},
        "modules": [{"name": "dice", "commands": ["!roll"]}],
    }


def test_url_from_the_file_and_the_environment_wins() -> None:
    """REDIS_URL overrides the file's url; prefix and socket_timeout come from the file."""
    config = parse_config(
        document(url="redis://file:6379/0", prefix="bot:", socket_timeout=0.5),
        env={"REDIS_URL": "redis://:pw@env:6379/1"},
    )
    assert config.redis_url == "redis://:pw@env:6379/1"
    assert (config.redis_prefix, config.redis_socket_timeout) == ("bot:", 0.5)
    assert "pw" not in repr(config)
    assert parse_config(document(), env={}).redis_url is None


@pytest.mark.parametrize(
    ("redis", "env", "fragment"),
    [
        ({"url": "http://:hunter2@host/"}, {}, "redis.url = <hidden> is invalid"),
        ({}, {"REDIS_URL": "localhost:hunter2"}, "REDIS_URL environment variable is invalid"),
        ({"urll": "redis://h"}, {}, "did you mean 'url'?"),
        ({"socket_timeout": 0}, {}, "redis.socket_timeout = 0 is invalid"),
    ],
    ids=["bad-scheme", "bad-env", "typo", "timeout"],
)
def test_bad_redis_settings_name_the_key_never_the_password(
    redis: dict[str, Any], env: dict[str, str], fragment: str
) -> None:
    """Each error names the key and the fix and never repeats the URL."""
    with pytest.raises(ServerConfigError) as caught:
        parse_config(document(**redis), source="m.toml", env=env)
    assert fragment in caught.value.message
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://***@host:6379/0"),
        ("rediss://user:pw@host:6380/2?ssl_cert_reqs=none", "rediss://***@host:6380/2?..."),
        ("redis://host:6379", "redis://host:6379"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("garbage", "<hidden>"),
    ],
)
def test_url_without_password(url: str, shown: str) -> None:
    """Logs show where Redis is, never who logs in."""
    assert url_without_password(url) == shown


async def test_the_server_logs_where_redis_is_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Building the server logs the Redis location with the password masked."""
    caplog.set_level(logging.INFO)
    config = parse_config(document(), env={"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    server = ModuleServer(config, host="127.0.0.1", port=0)
    assert server.redis is not None
    await server.aclose()
    assert "redis://***@127.0.0.1:1/0" in caplog.text
    assert "hunter2" not in caplog.text


async def test_two_servers_share_one_rate_budget_through_redis(
    scripted: ScriptedLambdaServer, redis_server: RedisServer
) -> None:
    """[redis] reaches the adapters' policies: a budget of one call is spent across replicas."""
    data = document(prefix=f"budget-{uuid.uuid4().hex[:8]}:")
    data["aws"]["endpoint_url"] = scripted.url
    data["modules"][0]["adapter"] = {"rate_limit": {"rate": 0.001, "burst": 1}}
    config = parse_config(data, env={"REDIS_URL": redis_server.url})
    statuses = []
    async with (
        ModuleServer(config, host="127.0.0.1", port=0) as first,
        ModuleServer(config, host="127.0.0.1", port=0) as second,
        aiohttp.ClientSession(headers={"X-Service-Key": data["service_api_key"]}) as session,
    ):
        for server in (first, second):
            async with session.post(
                server.url + "/api/v1/execute", json=router_body("!roll")
            ) as reply:
                statuses.append((reply.status, (await reply.json())["error_code"]))
    assert statuses == [(200, None), (429, "rate_limited")]
    assert scripted.count() == 1
