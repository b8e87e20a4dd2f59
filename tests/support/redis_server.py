"""Whether the Redis tests can run here: skipped with a reason only where nothing can fix it."""

from __future__ import annotations

import os
import shutil

import pytest

MISSING = (
    "redis-server is not installed and installing it needs root: the Redis tests are skipped "
    "(run `sudo apt-get install redis-server`, then `make test` again)"
)


def require_redis_server(is_root: bool | None = None) -> None:
    """Skip when ``redis-server`` is missing for a user who cannot install it; as root (CI,
    where ``make test`` installs it) a missing one is a failure, never a silent skip."""
    if shutil.which("redis-server") is not None:
        return
    root = os.geteuid() == 0 if is_root is None else is_root
    if root:
        pytest.fail("redis-server is not installed: `make test` installs it (apt-get)")
    pytest.skip(MISSING)
