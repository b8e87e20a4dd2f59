"""Run the module server until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from module_sdk.server._protection import raise_open_files_limit
from module_sdk.server.app import ModuleServer
from module_sdk.server.config import ServerConfig

__all__ = ["run_server", "serve_until_stopped"]

logger = logging.getLogger(__name__)


async def serve_until_stopped(
    server: ModuleServer,
    stop: asyncio.Event | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Start ``server``, wait for SIGTERM/SIGINT (or ``stop``), then shut it down gracefully.

    ``on_ready`` receives the address the server listens on (``http://0.0.0.0:8000`` when it
    listens on every interface). The signals only set the stop event: the listener closes,
    in-flight requests get up to ``shutdown_grace`` seconds to finish, and the adapters' AWS
    clients are closed.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        async with server:
            if on_ready is not None:
                on_ready(server.bind_url)
            await stop.wait()
            logger.info("stop requested: draining")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_server(
    config: ServerConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    insecure_no_auth: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Build the server, serve until SIGTERM/SIGINT, shut down gracefully; returns 0.

    The process's soft open-files limit is raised to its hard limit first.
    """
    server = ModuleServer(config, host=host, port=port, insecure_no_auth=insecure_no_auth)
    raise_open_files_limit()  # a connection flood must meet max_connections first
    asyncio.run(serve_until_stopped(server, on_ready=on_ready))
    return 0
