"""A module server in its own process, for the hostile-network tests (memory, descriptors).

Usage: ``python tests/support/hostile_server.py '<json>'`` where the JSON object has ``server`` (the
``[server]`` table), ``endpoint`` (the Lambda endpoint; nothing is called unless a test sends
a keyed command) and optionally ``nofile`` (a soft open-files limit to set first). Prints
``PORT <n>`` once listening, then serves until SIGTERM; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys

from module_sdk.server import ModuleServer, parse_config
from module_sdk.server.run import serve_until_stopped

KEY = "hostile-network-test-key-0123456789abcdef"


def main() -> None:
    options = json.loads(sys.argv[1])
    if options.get("nofile"):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(options["nofile"]), hard))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = parse_config(
        {
            "service_api_key": KEY,
            "server": options.get("server", {}),
            "aws": {"region": "us-east-1", "endpoint_url": options["endpoint"], "max_retries": 0},
            "modules": [{"name": "dice", "function": "dice", "commands": ["!roll"]}],
        },
        source="hostile.toml",
        env={},
    )
    server = ModuleServer(config, host="127.0.0.1", port=0, metrics=False)

    def ready(url: str) -> None:
        print("PORT", url.rsplit(":", 1)[1], flush=True)

    asyncio.run(serve_until_stopped(server, on_ready=ready))


if __name__ == "__main__":
    main()
