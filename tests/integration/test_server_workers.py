"""``waddlebot-lambda serve --workers N``: N processes on one port, each draining on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from module_sdk.testing import Reply, ScriptedLambdaServer
from support.router import router_body
from support.serve import start_serve

KEY = "workers-test-key-0123456789abcdef"


async def start_workers(
    config: Path, workers: int
) -> tuple[asyncio.subprocess.Process, str, list[int]]:
    """``serve --workers N`` on a free port; the process, its URL and the workers' pids."""
    process, url, _ = await start_serve(config, "--workers", str(workers))
    assert process.stderr is not None
    line = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()
    assert f"{workers} workers (pids " in line, line
    pids = [int(p) for p in line.split("pids ", 1)[1].rstrip(")\n").split(", ")]
    return process, url, pids


async def test_a_worker_that_dies_stops_the_others_and_fails(tmp_path: Path) -> None:
    """One worker killed: the parent stops the other and exits 1 (the orchestrator restarts)."""
    config = tmp_path / "modules.toml"
    config.write_text(
        f'service_api_key = "{KEY}"\n[aws]\nregion = "us-east-1"\n'
        'endpoint_url = "http://127.0.0.1:1"\n[[modules]]\nname = "dice"\n'
        'commands = ["!roll"]\n',
        encoding="utf-8",
    )
    process, _, pids = await start_workers(config, 2)
    try:
        os.kill(pids[0], signal.SIGKILL)
        status = await asyncio.wait_for(process.wait(), 30)
        assert process.stderr is not None
        rest = (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert status == 1
    assert f"worker {pids[0]} exited with status -9; stopping the others" in rest


async def test_two_workers_share_the_port_and_drain_on_sigterm(tmp_path: Path) -> None:
    """With max_in_flight = 1 per process, a burst is served by exactly two processes."""
    async with ScriptedLambdaServer(
        default=lambda event: Reply.slow(1.0, Reply.ok({"success": True}))
    ) as scripted:
        config = tmp_path / "modules.toml"
        config.write_text(
            f'service_api_key = "{KEY}"\n[server]\nmax_in_flight = 1\nshutdown_grace = 10\n'
            f'[aws]\nregion = "us-east-1"\nendpoint_url = "{scripted.url}"\nmax_retries = 0\n'
            '[[modules]]\nname = "dice"\ncommands = ["!roll"]\n',
            encoding="utf-8",
        )
        process, url, pids = await start_workers(config, 2)
        try:
            assert process.stderr is not None
            headers = {"X-Service-Key": KEY}

            async def call(session: aiohttp.ClientSession) -> int:
                async with session.post(
                    url + "/api/v1/execute", json=router_body("!roll"), headers=headers
                ) as reply:
                    return reply.status

            # One connection per call: SO_REUSEPORT spreads connections, not requests. All
            # 16 on one worker has a chance of 2 in 65,536.
            sessions = [aiohttp.ClientSession() for _ in range(16)]
            try:
                statuses = await asyncio.gather(*(call(s) for s in sessions))
            finally:
                for session in sessions:
                    await session.close()
            process.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(process.wait(), 30)
            rest = (await process.stderr.read()).decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert sorted(statuses).count(200) == 2, statuses
    assert statuses.count(429) == 14
    assert status == 0, rest
    assert "Traceback" not in rest
    for pid in pids:  # every worker is gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status"
        ).read_text(encoding="utf-8")
