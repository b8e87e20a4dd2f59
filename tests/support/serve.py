"""``waddlebot-lambda serve`` in a child process on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

SERVE_CODE = "import sys; from module_sdk.cli import main; sys.exit(main())"


async def start_serve(
    config: Path, *args: str, env: Mapping[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str, str]:
    """Start ``serve --config CONFIG --host 127.0.0.1 --port 0 ARGS``; wait for its banner.

    Returns the process (stderr piped, positioned after the banner), its URL and the banner
    line. Lines before the banner (start-up warnings) are skipped. ``SERVICE_API_KEY`` is
    removed from the environment unless ``env`` sets it.
    """
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environ.pop("SERVICE_API_KEY", None)
    environ.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE_CODE,
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    assert process.stderr is not None
    banner = ""
    try:
        while "waddlebot-lambda: serving" not in banner:
            banner = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert banner, "the server exited before its banner"
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert " on http://127.0.0.1:" in banner, banner
    url = banner.split(" on ", 1)[1].split(" ", 1)[0]
    return process, url, banner
