"""``serve --workers N``: N server processes sharing one port through ``SO_REUSEPORT``.

The parent process only supervises: it picks the port (a free one for port 0, held with
``SO_REUSEPORT`` until every worker listens), starts the workers (``spawn``: each loads the
configuration itself and runs its own event loop), waits until each reports that it listens,
and forwards SIGTERM/SIGINT to them. Each worker drains on SIGTERM exactly like a single
server. When a worker exits on its own, the parent stops the others and exits with an error,
so the container's restart policy starts a clean set; the parent exits 0 only when every
worker did.

Why processes and not threads: a module server spends its CPU on JSON, HTTP parsing and
SigV4 signing in Python; one event loop uses one core. Linux spreads incoming connections
over the listening sockets of a ``SO_REUSEPORT`` group (by a hash of the connection), so each
keep-alive connection stays with one worker. The re-send guard's memory is per worker:
configure ``[redis]`` so that a re-send that lands on another worker finds the first run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from module_sdk.server._protection import raise_open_files_limit

__all__ = ["run_workers"]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 60.0


def _worker(
    config_path: str,
    host: str,
    port: int,
    insecure_no_auth: bool,
    ready: Any,
    log_level: int,
) -> None:
    """One worker process: the module server with ``SO_REUSEPORT``, until SIGTERM."""
    import asyncio

    from module_sdk.server._access import ACCESS_LOGGER
    from module_sdk.server.app import ModuleServer
    from module_sdk.server.config import load_config
    from module_sdk.server.run import serve_until_stopped

    logging.basicConfig(
        level=log_level, format=f"%(levelname)s %(name)s [worker {os.getpid()}]: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    config = load_config(config_path)
    if config.access_log != "off":
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    server = ModuleServer(
        config, host=host, port=port, insecure_no_auth=insecure_no_auth, reuse_port=True
    )
    asyncio.run(serve_until_stopped(server, on_ready=lambda url: ready.put((os.getpid(), url))))


def _hold_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT: reserves ``port`` (a free one for 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host or "0.0.0.0", port))
    return holder


def run_workers(
    config_path: str,
    workers: int,
    *,
    host: str,
    port: int,
    insecure_no_auth: bool = False,
    on_ready: Callable[[str, list[int]], None] | None = None,
) -> int:
    """Run ``workers`` server processes on ``host:port`` until SIGTERM/SIGINT; the exit status.

    ``on_ready(url, pids)`` is called once every worker listens.
    """
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Linux and the BSDs have it
        raise OSError("--workers needs SO_REUSEPORT, which this platform lacks")
    raise_open_files_limit()  # the workers inherit it: a flood meets max_connections first
    holder = _hold_port(host, port)
    port = holder.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    level = logging.getLogger().getEffectiveLevel()
    processes = [
        context.Process(
            target=_worker,
            args=(config_path, host, port, insecure_no_auth, ready, level),
            name=f"waddlebot-worker-{i}",
        )
        for i in range(workers)
    ]
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        url = ""
        for _ in processes:
            try:
                _, url = ready.get(timeout=_START_TIMEOUT)
            except Exception:  # queue.Empty: a worker failed to start (its error is printed)
                stop(signal.SIGTERM, None)
                break
        else:
            holder.close()  # every worker listens: the port is theirs now
            if on_ready is not None:
                on_ready(url, [p.pid for p in processes if p.pid is not None])
        status = 0
        remaining = list(processes)
        while remaining:
            for process in list(remaining):
                process.join(timeout=0.2)
                if process.exitcode is None:
                    continue
                remaining.remove(process)
                if process.exitcode != 0 or not stopping:
                    if not stopping:
                        print(
                            f"waddlebot-lambda: worker {process.pid} exited with status "
                            f"{process.exitcode}; stopping the others",
                            file=sys.stderr,
                            flush=True,
                        )
                        stop(signal.SIGTERM, None)
                    status = 1
        return status
    finally:
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ready.close()
