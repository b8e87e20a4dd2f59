"""Replaying the dead-letter queue: one LambdaAdapter per stored target.

``waddlebot-lambda dlq replay`` uses it; so can your own code::

    adapters = ReplayAdapters(max_retries=3)
    try:
        results = await replay_entries(sink, adapters, limit=100)
    finally:
        await adapters.aclose()
"""

from __future__ import annotations

from typing import Any

from module_sdk.adapters.lambda_adapter import LambdaAdapter
from module_sdk.aws_lambda.api import invocation_type
from module_sdk.resilience.deadletter import DeadLetterEntry

__all__ = ["ReplayAdapters"]


class ReplayAdapters:
    """Builds (once per target) the LambdaAdapter that replays an entry.

    ``region`` overrides every entry's stored region; the other keyword arguments go to each
    :class:`~module_sdk.adapters.lambda_adapter.LambdaAdapter` (``endpoint_url``,
    ``max_retries``, credentials, ``clock``...). Close with ``await adapters.aclose()``.
    """

    def __init__(self, *, region: str | None = None, **adapter_kwargs: Any) -> None:
        self.region = region
        self.adapter_kwargs = adapter_kwargs
        self._adapters: dict[tuple[str, str | None, str, str, str], LambdaAdapter] = {}

    def __call__(self, entry: DeadLetterEntry) -> LambdaAdapter:
        """The adapter for ``entry``'s function, qualifier, region and invocation type."""
        region = self.region or entry.region
        key = (
            entry.function_name,
            entry.qualifier,
            region,
            entry.invocation_type,
            entry.module_name,
        )
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = LambdaAdapter(
                entry.function_name,
                region,
                entry.module_name,
                invocation_type=invocation_type(entry.invocation_type),
                qualifier=entry.qualifier,
                **self.adapter_kwargs,
            )
            self._adapters[key] = adapter
        return adapter

    async def aclose(self) -> None:
        """Close every adapter built."""
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.aclose()
