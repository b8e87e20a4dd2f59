"""Function definitions: discovered from ``DIR/*.py`` and declared in ``DIR/functions.toml``."""

from __future__ import annotations

import ast
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from module_sdk.errors import ConfigurationError

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIMEOUT",
    "FunctionConfigError",
    "FunctionSpec",
    "load_functions",
]

DEFAULT_TIMEOUT = 3.0
"""Lambda's default function timeout, in seconds."""
DEFAULT_MEMORY_MB = 128
MAX_TIMEOUT = 900.0
CONFIG_FILE = "functions.toml"

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_HANDLER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_ALIAS_RE = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}$")
_ENV_KEY_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
_KEYS = (
    "handler",
    "timeout",
    "reserved_concurrency",
    "environment",
    "memory_size",
    "aliases",
    "description",
)


class FunctionConfigError(ConfigurationError):
    """A function definition is invalid; the message names the file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One local function.

    Attributes:
        name: the Lambda function name (``[a-zA-Z0-9_-]``, at most 64 characters).
        handler: ``module.function``, importable from ``code_dir``.
        code_dir: the directory put first on the worker's ``sys.path`` (its task root).
        timeout: seconds before the run is killed with ``Sandbox.Timedout`` (Lambda: 1-900;
            fractions are allowed locally so tests stay fast).
        reserved_concurrency: the most simultaneous runs; further calls are throttled (429).
            ``None`` means no reservation (only the runtime's overall limit applies).
        environment: extra environment variables for the handler.
        memory_size: reported in the context and the log's REPORT line (not enforced).
        aliases: qualifiers accepted besides ``$LATEST`` (they all run ``$LATEST``).
    """

    name: str
    handler: str
    code_dir: Path
    timeout: float = DEFAULT_TIMEOUT
    reserved_concurrency: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    memory_size: int = DEFAULT_MEMORY_MB
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        where = f"function {self.name!r}"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise FunctionConfigError(
                f"function name {self.name!r} is invalid: use 1-64 letters, digits, '-' or '_'"
            )
        _check_handler(where, self.handler)
        object.__setattr__(self, "code_dir", Path(self.code_dir))
        _check_timeout(where, self.timeout)
        object.__setattr__(self, "timeout", float(self.timeout))
        _check_concurrency(where, self.reserved_concurrency)
        _check_environment(where, self.environment)
        object.__setattr__(self, "environment", dict(self.environment))
        _check_memory(where, self.memory_size)
        _check_aliases(where, self.aliases)
        object.__setattr__(self, "aliases", tuple(self.aliases))


def _check_handler(where: str, value: object) -> None:
    if not isinstance(value, str) or not _HANDLER_RE.match(value):
        raise FunctionConfigError(
            f'{where}: handler = {value!r} is invalid: use "module.function" '
            '(for example "dice.handler"), relative to the functions directory'
        )


def _check_timeout(where: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:  # type: ignore[operator,arg-type]
        raise FunctionConfigError(
            f"{where}: timeout = {value!r} is invalid: use a number of seconds above 0 and at "
            f"most {MAX_TIMEOUT:g} (Lambda's default is {DEFAULT_TIMEOUT:g})"
        )


def _check_concurrency(where: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FunctionConfigError(
            f"{where}: reserved_concurrency = {value!r} is invalid: use an integer >= 0 "
            "(0 throttles every call), or leave it out for no reservation"
        )


def _check_environment(where: str, value: object) -> None:
    if not isinstance(value, Mapping):
        raise FunctionConfigError(
            f"{where}: environment = {value!r} is invalid: use a table of strings, "
            'for example environment = { GREETING = "hi" }'
        )
    for key, item in value.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise FunctionConfigError(
                f"{where}: environment key {key!r} is invalid: use a letter followed by "
                "letters, digits or '_'"
            )
        if not isinstance(item, str):
            raise FunctionConfigError(
                f"{where}: environment.{key} = {item!r} is invalid: Lambda environment values "
                f'are strings, write {key} = "{item}"'
            )


def _check_memory(where: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 128 <= value <= 10240:
        raise FunctionConfigError(
            f"{where}: memory_size = {value!r} is invalid: use an integer number of MB "
            "from 128 to 10240"
        )


def _check_aliases(where: str, value: object) -> None:
    if not isinstance(value, list | tuple) or not all(
        isinstance(a, str) and _ALIAS_RE.match(a) for a in value
    ):
        raise FunctionConfigError(
            f"{where}: aliases = {value!r} is invalid: use a list of alias names "
            '(letters, digits, "-", "_"; not only digits), for example aliases = ["live"]'
        )


def _defines_handler(path: Path) -> bool:
    """Whether the file defines a top-level ``handler`` (without importing it)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return True  # let the worker report the syntax error on the first call
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "handler":
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "handler" for t in node.targets
        ):
            return True
        if isinstance(node, ast.ImportFrom) and any(
            (alias.asname or alias.name) == "handler" for alias in node.names
        ):
            return True
    return False


def load_functions(directory: str | Path) -> dict[str, FunctionSpec]:
    """Discover the functions of ``directory``.

    Every ``*.py`` file (not starting with ``_``) that defines a top-level ``handler`` is a
    function named after the file. ``functions.toml``, when present, declares more functions
    or overrides settings::

        [functions.slowpoke]
        handler = "slow.handler"        # module.function, relative to the directory
        timeout = 1                      # seconds (default 3)
        reserved_concurrency = 1
        environment = { GREETING = "hi" }

    Raises:
        FunctionConfigError: the directory or the file is invalid (the message says where).
    """
    root = Path(directory)
    if not root.is_dir():
        raise FunctionConfigError(
            f"functions directory {str(root)!r} does not exist or is not a directory"
        )
    root = root.resolve()
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_") or not _defines_handler(path):
            continue
        if not _NAME_RE.match(path.stem):
            continue
        found[path.stem] = {"handler": f"{path.stem}.handler"}

    config_path = root / CONFIG_FILE
    if config_path.exists():
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise FunctionConfigError(f"{config_path}: not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise FunctionConfigError(f"{config_path}: cannot be read: {exc}") from exc
        extra = sorted(set(document) - {"functions"})
        if extra:
            raise FunctionConfigError(
                f"{config_path}: unknown top-level key(s) {', '.join(extra)}: "
                "declare functions as [functions.NAME] tables"
            )
        tables = document.get("functions", {})
        if not isinstance(tables, dict):
            raise FunctionConfigError(
                f"{config_path}: 'functions' must be a table of [functions.NAME] tables"
            )
        for name, table in tables.items():
            where = f"{config_path}: [functions.{name}]"
            if not _NAME_RE.match(name):
                raise FunctionConfigError(
                    f"{where}: the function name is invalid: use 1-64 letters, digits, '-' or '_'"
                )
            if not isinstance(table, dict):
                raise FunctionConfigError(f"{where}: must be a table of settings")
            unknown = sorted(set(table) - set(_KEYS))
            if unknown:
                raise FunctionConfigError(
                    f"{where}: unknown key(s) {', '.join(unknown)}: "
                    f"the allowed keys are {', '.join(_KEYS)}"
                )
            merged = {**found.get(name, {}), **table}
            if "handler" not in merged:
                raise FunctionConfigError(
                    f"{where}: no handler and no {name}.py file defining handler(): "
                    'add handler = "module.function"'
                )
            found[name] = merged

    specs: dict[str, FunctionSpec] = {}
    for name, settings in found.items():
        where = f"{config_path}: [functions.{name}]"
        try:
            spec = FunctionSpec(
                name=name,
                handler=settings["handler"],
                code_dir=root,
                timeout=settings.get("timeout", DEFAULT_TIMEOUT),
                reserved_concurrency=settings.get("reserved_concurrency"),
                environment=settings.get("environment", {}),
                memory_size=settings.get("memory_size", DEFAULT_MEMORY_MB),
                aliases=settings.get("aliases", ()),
                description=str(settings.get("description", "")),
            )
        except FunctionConfigError as exc:
            message = exc.message.removeprefix(f"function {name!r}: ")
            raise FunctionConfigError(f"{where}: {message}") from None
        module = spec.handler.rpartition(".")[0]
        module_file = root / (module.replace(".", "/") + ".py")
        package_dir = root / module.replace(".", "/")
        if not module_file.exists() and not (package_dir / "__init__.py").exists():
            raise FunctionConfigError(
                f"{where}: handler = {spec.handler!r}: no module {module_file.name} in {root}"
            )
        specs[name] = spec
    return specs
