"""Function definitions: discovered from ``DIR/*.py`` and declared in ``DIR/functions.toml``."""

from __future__ import annotations

import ast
import math
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from module_sdk.errors import FunctionConfigError

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIMEOUT",
    "RUNTIME_INTERFACE_CLIENTS",
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
_PYTHON_RE = re.compile(r"^python3\.\d+$")
_NODE_RE = re.compile(r"^nodejs\d+\.x$")
_PROVIDED = ("provided", "provided.al2", "provided.al2023")
_NODE_HANDLER_RE = re.compile(r"^[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.[A-Za-z_$][A-Za-z0-9_$]*$")
_PROVIDED_HANDLER_RE = re.compile(r"^[^\s]{1,128}$")
NODE_EXTENSIONS = (".js", ".mjs", ".cjs")
RUNTIME_INTERFACE_CLIENTS = ("awslambdaric",)
"""The Python runtime interface clients a function may run through instead of the worker."""
DEFAULT_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
"""What a function without ``runtime`` runs on: the Python running the local runtime."""
_KEYS = (
    "handler",
    "runtime",
    "code",
    "runtime_interface_client",
    "tenant_isolation",
    "timeout",
    "reserved_concurrency",
    "environment",
    "memory_size",
    "aliases",
    "description",
)


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
        runtime: ``python3.N`` (the Python running the local runtime runs it, whatever N),
            ``nodejs*`` (the machine's ``node``) or ``provided``, ``provided.al2``,
            ``provided.al2023`` (``code_dir/bootstrap`` is executed).
        runtime_interface_client: ``"awslambdaric"`` runs a Python function through AWS's
            own runtime interface client and the Runtime API instead of the built-in worker.
        tenant_isolation: ``"PER_TENANT"``: every call names a tenant (``X-Amz-Tenant-Id``)
            and each tenant gets its own execution environments.
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
    runtime: str = DEFAULT_RUNTIME
    runtime_interface_client: str | None = None
    tenant_isolation: str | None = None

    def __post_init__(self) -> None:
        where = f"function {self.name!r}"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise FunctionConfigError(
                f"function name {self.name!r} is invalid: use 1-64 letters, digits, '-' or '_'"
            )
        _check_runtime(where, self.runtime, self.runtime_interface_client)
        _check_handler(where, self.handler, self.kind)
        if self.tenant_isolation not in (None, "PER_TENANT"):
            raise FunctionConfigError(
                f"{where}: tenant_isolation = {self.tenant_isolation!r} is invalid: use "
                '"PER_TENANT" (each tenant gets its own environments), or leave it out'
            )
        object.__setattr__(self, "code_dir", Path(self.code_dir))
        _check_timeout(where, self.timeout)
        object.__setattr__(self, "timeout", float(self.timeout))
        _check_concurrency(where, self.reserved_concurrency)
        _check_environment(where, self.environment)
        object.__setattr__(self, "environment", dict(self.environment))
        _check_memory(where, self.memory_size)
        _check_aliases(where, self.aliases)
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def kind(self) -> str:
        """How it runs: ``worker`` (the built-in Python worker), ``awslambdaric``, ``node``
        or ``provided`` (the last three through the Runtime API)."""
        if self.runtime.startswith("nodejs"):
            return "node"
        if self.runtime.startswith("provided"):
            return "provided"
        return self.runtime_interface_client or "worker"


def _check_runtime(where: str, runtime: object, client: object) -> None:
    if not isinstance(runtime, str) or not (
        _PYTHON_RE.match(runtime) or _NODE_RE.match(runtime) or runtime in _PROVIDED
    ):
        raise FunctionConfigError(
            f"{where}: runtime = {runtime!r} is not supported: use python3.N (for example "
            f'"{DEFAULT_RUNTIME}"), nodejsN.x (for example "nodejs20.x", run with the '
            'machine\'s node), "provided.al2023", "provided.al2" or "provided" '
            "(a custom runtime: CODE/bootstrap is executed)"
        )
    if client is None:
        return
    if client not in RUNTIME_INTERFACE_CLIENTS:
        raise FunctionConfigError(
            f"{where}: runtime_interface_client = {client!r} is not supported: use "
            f"{' or '.join(repr(c) for c in RUNTIME_INTERFACE_CLIENTS)} (PyPI), or leave it "
            "out for the built-in worker"
        )
    if not _PYTHON_RE.match(runtime):
        raise FunctionConfigError(
            f"{where}: runtime_interface_client = {client!r} needs a python3.N runtime, "
            f"not {runtime!r}: remove it, or set the runtime to python"
        )


def _check_handler(where: str, value: object, kind: str = "worker") -> None:
    if kind == "node":
        if not isinstance(value, str) or not _NODE_HANDLER_RE.match(value):
            raise FunctionConfigError(
                f'{where}: handler = {value!r} is invalid: use "file.export" (for example '
                '"index.handler" for index.js exporting handler), relative to the code folder'
            )
        return
    if kind == "provided":
        if not isinstance(value, str) or not _PROVIDED_HANDLER_RE.match(value):
            raise FunctionConfigError(
                f"{where}: handler = {value!r} is invalid: use 1-128 characters without "
                "spaces (the bootstrap reads it from _HANDLER)"
            )
        return
    if not isinstance(value, str) or not _HANDLER_RE.match(value):
        raise FunctionConfigError(
            f'{where}: handler = {value!r} is invalid: use "module.function" '
            '(for example "dice.handler"), relative to the functions directory'
        )


def check_code(spec: FunctionSpec) -> str | None:
    """What is missing from ``spec.code_dir`` for its handler to load, or None."""
    root = spec.code_dir
    if spec.kind == "provided":
        bootstrap = root / "bootstrap"
        if not bootstrap.is_file():
            return f"no bootstrap file in {root}: a {spec.runtime} function runs CODE/bootstrap"
        if not os.access(bootstrap, os.X_OK):
            return f"{bootstrap} is not executable: run chmod +x on it"
        return None
    module = spec.handler.rpartition(".")[0]
    if spec.kind == "node":
        if not any((root / (module + ext)).is_file() for ext in NODE_EXTENSIONS):
            return f"handler = {spec.handler!r}: no {module}.js, .mjs or .cjs in {root}"
        return None
    module_file = root / (module.replace(".", "/") + ".py")
    package_dir = root / module.replace(".", "/")
    if not module_file.exists() and not (package_dir / "__init__.py").exists():
        return f"handler = {spec.handler!r}: no module {module_file.name} in {root}"
    return None


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


def skipped_files(directory: str | Path, specs: Mapping[str, FunctionSpec]) -> dict[str, str]:
    """The ``*.py`` files of ``directory`` that are not functions, by the name a call would
    use, with the reason: no top-level ``handler`` and not a module any function's handler
    names (helper modules that a handler names are not listed)."""
    root = Path(directory).resolve()
    used = {spec.handler.rpartition(".")[0].partition(".")[0] for spec in specs.values()}
    skipped: dict[str, str] = {}
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_") or path.stem in specs or path.stem in used:
            continue
        if not _defines_handler(path):
            skipped[path.stem] = (
                f"{path.name} was skipped: it defines no top-level handler; add "
                "`def handler(event, context):` to it, or name its function in "
                f'functions.toml ([functions.{path.stem}] handler = "{path.stem}.NAME")'
            )
    return skipped


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

        [functions.hello-node]
        runtime = "nodejs20.x"          # nodejs*, provided.al2023 / provided.al2, python3.N
        code = "hello-node"             # its code folder, relative to the directory
        handler = "index.handler"

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
        code = settings.get("code")
        if code is None:
            code_dir = root
        elif not isinstance(code, str) or not code or Path(code).is_absolute():
            raise FunctionConfigError(
                f"{where}: code = {code!r} is invalid: use a folder relative to {root}"
            )
        else:
            code_dir = (root / code).resolve()
            if not code_dir.is_dir():
                raise FunctionConfigError(
                    f"{where}: code = {code!r}: no folder {code_dir}: create it or fix the path"
                )
        try:
            spec = FunctionSpec(
                name=name,
                handler=settings["handler"],
                code_dir=code_dir,
                runtime=settings.get("runtime", DEFAULT_RUNTIME),
                runtime_interface_client=settings.get("runtime_interface_client"),
                tenant_isolation=settings.get("tenant_isolation"),
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
        missing = check_code(spec)
        if missing is not None:
            raise FunctionConfigError(f"{where}: {missing}")
        specs[name] = spec
    return specs
