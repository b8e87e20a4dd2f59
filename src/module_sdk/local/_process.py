"""Starting and stopping environment processes so that none outlives the runtime.

Every environment process is started in its own session (so a Ctrl-C in the terminal reaches
the runtime only, and the runtime can kill the process together with everything it started,
such as a shell bootstrap's ``curl``) and, on Linux, with ``PR_SET_PDEATHSIG``: if the
runtime dies without cleaning up (``SIGKILL``, a crash), the kernel kills its environment
processes at once instead of leaving them polling a Runtime API that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["kill_group", "spawn"]

_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the runtime died before prctl took effect
            os._exit(1)

    return preexec


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
) -> asyncio.subprocess.Process:
    """Start an environment process (own session, killed with the runtime on Linux)."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        preexec_fn=_parent_death_signal(),
    )


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process and every process of its session (started with :func:`spawn`)."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            # Not proc.kill() as well: Popen.send_signal() polls first, and reaping the
            # process there steals its exit status from asyncio's child watcher.
            return
        except (ProcessLookupError, PermissionError):
            pass
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return
    # The leader has exited (and may be reaped): its session id may still name children.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
