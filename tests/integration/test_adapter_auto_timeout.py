"""``LambdaAdapter(read_timeout="auto")``: the function's configured timeout, read once with
GetFunctionConfiguration from the local runtime, decides how long an attempt may wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.aws_lambda.configuration import AUTO_CEILING, auto_margin
from module_sdk.errors import ConfigurationError
from module_sdk.local import LocalLambdaRuntime
from support.local import write_functions

TOML = """
    [functions.slow]
    timeout = 4
"""


def _adapter(url: str, http_client: str, **kw: Any) -> LambdaAdapter:
    return LambdaAdapter(
        "slow",
        "us-east-1",
        "slow",
        endpoint_url=url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        http_client=http_client,
        max_retries=0,
        **kw,
    )


def _request(sleep: float) -> ExecuteRequest:
    return ExecuteRequest(
        command="!slow",
        args=[str(sleep)],
        user_id="u-1",
        entity_id="e-1",
        community_id="c-1",
        session_id="auto-1",
        platform="twitch",
    )


def _folder(tmp_path: Path) -> Path:
    directory = write_functions(tmp_path / "fns", [], TOML)
    (directory / "slow.py").write_text(
        "import time\n\n"
        "def handler(event, context):\n"
        "    time.sleep(float(event['trigger']['context_text'] or 0))\n"
        "    return {'success': True, 'message': 'done'}\n"
    )
    return directory


@pytest.mark.parametrize("http_client", ["lean", "aiobotocore"])
async def test_auto_waits_for_a_run_a_fixed_timeout_abandons(
    tmp_path: Path, http_client: str
) -> None:
    """A 1.5 s run: read_timeout=1 gives up on it; auto (4 s + margin) gets its answer."""
    async with LocalLambdaRuntime(_folder(tmp_path)) as rt:
        async with _adapter(rt.url, http_client, read_timeout=1.0) as fixed:
            abandoned = await fixed.execute_async(_request(1.5))
        async with _adapter(rt.url, http_client, read_timeout="auto") as auto:
            answered = await auto.execute_async(_request(1.5))
            again = await auto.execute_async(_request(0))
            assert auto.read_timeout == 4 + auto_margin(4)
        assert rt.stats.control_reads["GetFunctionConfiguration"] == 1  # read once, cached
    assert abandoned.error_code == "timeout"
    assert answered.success and answered.message == "done"
    assert again.success


async def test_auto_without_a_control_plane_waits_for_the_longest_timeout(
    tmp_path: Path,
) -> None:
    """An endpoint that cannot answer GetFunctionConfiguration: Lambda's largest timeout."""
    async with (
        LocalLambdaRuntime(_folder(tmp_path)) as rt,
        LambdaAdapter(
            "arn:aws:lambda:us-east-1:123456789012:function:nothere",
            "us-east-1",
            "slow",
            endpoint_url=rt.url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            read_timeout="auto",
            max_retries=0,
        ) as adapter,
    ):
        response = await adapter.execute_async(_request(0))
        assert adapter.read_timeout == AUTO_CEILING
    assert response.error_code == "not_found"


def test_read_timeout_must_be_seconds_or_auto() -> None:
    """Any other text is refused with the two allowed forms."""
    with pytest.raises(ConfigurationError, match="auto"):
        LambdaAdapter("f", "us-east-1", "m", read_timeout="forever")  # type: ignore[arg-type]
