"""Hot reload: watch the functions folder (watchfiles) and apply each change to the runtime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from module_sdk.errors import ConfigurationError
from module_sdk.local._config import FunctionConfigError, FunctionSpec, load_functions
from module_sdk.local._environments import FunctionPool

__all__ = ["ReloadReport", "Watcher", "affected", "apply_reload"]

logger = logging.getLogger("module_sdk.local")


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What one reload did.

    Attributes:
        added / removed / restarted: function names (restarted: new code or settings, its
            environments replaced by warm ones running the new version).
        failed: function name to the error of its new version; the old version keeps
            serving (a new function is served anyway, answering its init error).
        error: why the folder could not be read at all (``functions.toml`` invalid); nothing
            changed then.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def changed(self) -> bool:
        """Whether anything at all changed."""
        return bool(self.added or self.removed or self.restarted or self.failed or self.error)


def affected(specs: Iterable[FunctionSpec], paths: Iterable[Path]) -> set[str]:
    """The functions whose code a change of ``paths`` touches.

    A file belongs to the function with the deepest code folder holding it, so editing a
    Node function's folder inside the functions folder does not restart the Python
    functions of the folder itself.
    """
    specs = list(specs)
    touched: set[str] = set()
    for path in paths:
        owners = [s for s in specs if path.is_relative_to(s.code_dir)]
        if not owners:
            continue
        deepest = max(len(s.code_dir.parts) for s in owners)
        touched.update(s.name for s in owners if len(s.code_dir.parts) == deepest)
    return touched


class Watcher:
    """Calls ``apply(paths)`` after each batch of changes under ``directory``."""

    def __init__(
        self,
        directory: Path,
        apply: Callable[[set[Path]], Awaitable[object]],
        *,
        debounce_ms: int = 50,
    ) -> None:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "hot reload needs watchfiles: pip install 'waddlebot-module-sdk[reload]'"
            ) from None
        self.directory = directory
        self._apply = apply
        self._debounce_ms = debounce_ms
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching; return once the watch is in place (later edits are all seen)."""
        self._task = asyncio.create_task(self._watch())
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self._task  # it failed: raise its error

    async def _watch(self) -> None:
        from watchfiles import awatch

        watch = awatch(
            self.directory,
            stop_event=self._stop,
            debounce=self._debounce_ms,
            step=10,
            yield_on_timeout=True,
            rust_timeout=100,
        )
        async for changes in watch:
            self._ready.set()
            if not changes:
                continue
            paths = {Path(p) for _, p in changes}
            try:
                await self._apply(paths)
            except Exception:
                logger.exception("hot reload failed")

    async def aclose(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                logger.exception("the file watcher failed")
            self._task = None


async def apply_reload(
    functions_dir: Path,
    in_code: Mapping[str, FunctionSpec],
    pools: dict[str, FunctionPool],
    retired: list[FunctionPool],
    base_env: dict[str, str],
    paths: set[Path] | None,
) -> ReloadReport:
    """Apply ``functions_dir`` to a runtime's ``pools`` (see ``LocalLambdaRuntime.reload``):
    replaced pools go to ``retired``, where their calls in progress finish."""
    try:
        specs = load_functions(functions_dir)
    except FunctionConfigError as exc:
        return ReloadReport(error=str(exc))
    specs.update(in_code)
    old = {name: pool.spec for name, pool in pools.items()}
    touched = (
        set(specs)
        if paths is None
        else affected(old.values(), paths) | affected(specs.values(), paths)
    )
    removed = tuple(sorted(n for n in old if n not in specs))
    added = tuple(sorted(n for n in specs if n not in old))
    changed = sorted(n for n in specs if n in old and (specs[n] != old[n] or n in touched))
    retired[:] = [p for p in retired if p.all]
    for name in removed:
        pool = pools.pop(name)
        pool.retire()
        retired.append(pool)

    async def warm(name: str) -> tuple[str, FunctionPool, str | None]:
        previous = pools.get(name)
        pool = FunctionPool(specs[name], base_env)
        count = 1 if previous is None else max(1, min(4, len(previous.idle)))
        return name, pool, await pool.warm(count)

    failed: dict[str, str] = {}
    restarted: list[str] = []
    for name, pool, error in await asyncio.gather(*(warm(n) for n in (*added, *changed))):
        previous = pools.get(name)
        if error is not None:
            failed[name] = error
            if previous is not None:
                await pool.aclose()  # the old version keeps serving
                continue
        pools[name] = pool
        if previous is not None:
            previous.retire()
            retired.append(previous)
            restarted.append(name)
    return ReloadReport(
        added=added,
        removed=removed,
        restarted=tuple(restarted),
        failed=failed,
    )
