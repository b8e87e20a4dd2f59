"""The module server: any Lambda function as a WaddleBot module the router can call over HTTP.

Start it with ``waddlebot-lambda serve --config modules.toml`` or in-process::

    from module_sdk.server import ModuleServer, load_config

    async with ModuleServer(load_config("modules.toml"), port=0) as server:
        print(server.url)

See ``docs/server.md`` for the protocol, the status codes and every configuration key.
"""

from module_sdk.aws_lambda.args import split_args
from module_sdk.server.app import SERVICE_KEY_HEADER, ModuleServer
from module_sdk.server.config import (
    ModuleSpec,
    ServerConfig,
    ServerConfigError,
    build_adapter,
    load_config,
    parse_config,
)
from module_sdk.server.run import run_server, serve_until_stopped

__all__ = [
    "SERVICE_KEY_HEADER",
    "ModuleServer",
    "ModuleSpec",
    "ServerConfig",
    "ServerConfigError",
    "build_adapter",
    "load_config",
    "parse_config",
    "run_server",
    "serve_until_stopped",
    "split_args",
]
