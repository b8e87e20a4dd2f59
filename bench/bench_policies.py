"""What the resilience policies cost per call.

Every call goes over the real HTTP path: aiobotocore to ``bench/lambda_stub.py``, a Lambda-API
endpoint in its own process (so its CPU is not counted here). ``--in-process`` uses an
in-process function instead (``HandlerInvoker``), which magnifies the policies' share. The
adapters:

- ``off``: no policy at all (the baseline);
- ``on (memory)``: circuit breaker, adapter-wide rate limit, a retry budget and the response
  cache (on for ``!help``; the benchmarked ``!roll`` passes through it), all in this process;
- ``on (memory), +user/community``: the same plus per-user and per-community buckets (50
  users in rotation);
- ``on (memory), cache misses``: all of that with ``!roll`` cached too, every request with
  different args, so each is looked up, missed and stored (the cache's worst case);
- ``on (memory), cache hits``: the same, with repeated requests answered from the cache;
- ``on (Redis)``: the same policies with their state in a real local redis-server.

CPU is this process's CPU time (``time.process_time``) over sequential calls. The variants
alternate within every round and the "vs off" column is the median of the per-round ratios,
which holds up on a machine shared with other work. For Redis the added wall-clock latency
per call is what matters (each call makes a few round trips to the server).

Run: .venv/bin/python bench/bench_policies.py [--calls 200] [--rounds 30] [--no-redis]
[--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import lambda_stub
from module_sdk import ExecuteRequest, LambdaAdapter
from module_sdk.resilience.breaker import CircuitBreakerConfig
from module_sdk.resilience.budget import StandardRetryBudget
from module_sdk.resilience.cache import ResponseCacheConfig
from module_sdk.resilience.ratelimit import Limit, RateLimit
from module_sdk.resilience.redis_state import RedisState
from module_sdk.testing import HandlerInvoker, RedisServer

COMMAND = "!roll"

# The stub checks no signature; botocore signs every call, so it needs some credentials.
CREDS = {"aws_access_key_id": "AKIDBENCH00000000000", "aws_secret_access_key": "bench-secret"}

ENDPOINT: str | None = None
"""The Lambda stub's URL (None: the in-process function)."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A small function: answers with the args it got."""
    return {"success": True, "message": f"rolled {event['trigger']['context_text']}"}


def requests(count: int, *, distinct: bool, tag: str = "") -> list[ExecuteRequest]:
    """``count`` requests, all different (cache misses) or all the same (hits)."""
    return [
        ExecuteRequest(
            COMMAND,
            [f"{tag}{i}d6" if distinct else "2d6"],
            f"u-{i % 50}",
            "e-1",
            "c-1",
            f"sess-{i}",
            "twitch",
        )
        for i in range(count)
    ]


def make_adapter(
    *,
    policies: bool,
    state: RedisState | None = None,
    cached: tuple[str, ...] = (COMMAND,),
    keyed: bool = True,
) -> LambdaAdapter:
    """An adapter with every policy on (rates high enough never to refuse) or none.

    ``cached`` lists the commands the cache keeps; without ``!roll`` the cache is on (for
    ``!help``) but the benchmarked command only passes through it.
    """
    extra: dict[str, Any] = {}
    if policies:
        extra = {
            "circuit_breaker": CircuitBreakerConfig(),
            "rate_limit": RateLimit(
                rate=1e9,
                burst=1e9,
                per_user=Limit(1e9, 1e9) if keyed else None,
                per_community=Limit(1e9, 1e9) if keyed else None,
            ),
            "retry_budget": StandardRetryBudget(),
            "cache": ResponseCacheConfig(
                commands=dict.fromkeys((*cached, "!help"), 3600), max_entries=1024
            ),
            "state": state,
        }
    name = f"bench-{'on' if policies else 'off'}-{id(state)}"
    if ENDPOINT is None:
        extra["invoker"] = HandlerInvoker(handler)
    else:
        extra.update(CREDS, endpoint_url=ENDPOINT)
    return LambdaAdapter(name, "us-east-1", "bench", **extra)


async def measure(adapter: LambdaAdapter, batch: list[ExecuteRequest]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) for the batch, sequentially; then close the adapter."""
    try:
        return await measure_open(adapter, batch)
    finally:
        await adapter.aclose()


async def measure_open(adapter: LambdaAdapter, batch: list[ExecuteRequest]) -> tuple[float, float]:
    """:func:`measure` without closing the adapter."""
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for request in batch:
        response = await adapter.execute_async(request)
        if not response.success:
            raise RuntimeError(f"benchmark call failed: {response.error}")
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def interleaved(
    rounds: int, makers: dict[str, Callable[[], LambdaAdapter]], batches: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Alternate the variants in every round (order reversed every other round).

    A busy neighbour on a shared machine slows whichever variant runs at that moment, so each
    variant's cost is compared with the baseline (the first variant) *in the same round*, and
    the median of those per-round ratios is reported with the best absolute times.
    """
    cpu: dict[str, list[float]] = {k: [] for k in makers}
    wall: dict[str, list[float]] = {k: [] for k in makers}
    for name, make in makers.items():
        warm = batches[name]
        await measure(make(), (warm(-1) if callable(warm) else warm)[:500])  # warm-up
    names = list(makers)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            batch = batches[name]
            if callable(batch):  # a fresh batch per round (a shared cache outlives adapters)
                batch = batch(index)
            spent, elapsed = await measure(makers[name](), batch)
            cpu[name].append(spent / len(batch))
            wall[name].append(elapsed / len(batch))
    base = names[0]
    return {
        name: {
            "cpu": min(cpu[name]),
            "wall": min(wall[name]),
            "wall_median": statistics.median(wall[name]),
            "ratio": statistics.median(c / b for c, b in zip(cpu[name], cpu[base], strict=True)),
            "wall_ratio_delta": statistics.median(
                w - b for w, b in zip(wall[name], wall[base], strict=True)
            ),
        }
        for name in names
    }


async def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds")
    parser.add_argument("--redis-calls", type=int, default=500, help="calls per Redis round")
    parser.add_argument("--redis-rounds", type=int, default=8, help="Redis rounds")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis rows")
    parser.add_argument(
        "--in-process", action="store_true", help="an in-process function instead of HTTP"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    global ENDPOINT
    if args.in_process:
        await run(args)
        return
    with lambda_stub.running() as url:
        ENDPOINT = url
        # Every adapter shares one pooled client (same settings); this one keeps it open
        # between rounds, so no round pays for creating it.
        keeper = make_adapter(policies=False)
        try:
            await measure_open(keeper, requests(1, distinct=True))
            await run(args)
        finally:
            await keeper.aclose()


async def run(args: argparse.Namespace) -> None:
    """The rounds and the tables."""
    misses = requests(args.calls, distinct=True)
    hits = requests(args.calls, distinct=False)
    memory = await interleaved(
        args.rounds,
        {
            "off": lambda: make_adapter(policies=False),
            "on (memory)": lambda: make_adapter(policies=True, cached=(), keyed=False),
            "on (memory), +user/community": lambda: make_adapter(policies=True, cached=()),
            "on (memory), cache misses": lambda: make_adapter(policies=True),
            "on (memory), cache hits": lambda: make_adapter(policies=True),
        },
        {
            "off": misses,
            "on (memory)": misses,
            "on (memory), +user/community": misses,
            "on (memory), cache misses": misses,
            "on (memory), cache hits": hits,
        },
    )
    path = "an in-process function" if ENDPOINT is None else "HTTP to bench/lambda_stub.py"
    print(
        f"{args.rounds} rounds of {args.calls:,} sequential calls per variant over {path}; "
        "CPU = best round"
    )
    print()
    print(f"| {'adapter':<29} | {'CPU µs/call':>11} | {'CPU vs off':>10} | {'wall µs/call':>12} |")
    print(f"|{'-' * 31}|{'-' * 12}:|{'-' * 11}:|{'-' * 13}:|")
    for name, row in memory.items():
        print(
            f"| {name:<29} | {row['cpu'] * 1e6:>11.1f} | {row['ratio']:>9.3f}x "
            f"| {row['wall'] * 1e6:>12.1f} |"
        )
    if args.no_redis:
        return
    with RedisServer() as server:
        state = RedisState(server.url, prefix="bench:")

        def batch(index: int) -> list[ExecuteRequest]:
            return requests(args.redis_calls, distinct=True, tag=f"r{index}")

        redis = await interleaved(
            args.redis_rounds,
            {
                "off": lambda: make_adapter(policies=False),
                "on (Redis)": lambda: make_adapter(policies=True, state=state, cached=()),
                "on (Redis), cache misses": lambda: make_adapter(policies=True, state=state),
            },
            {"off": batch, "on (Redis)": batch, "on (Redis), cache misses": batch},
        )
        await state.aclose()
    print()
    print(
        f"Redis state (local redis-server, loopback), {args.redis_rounds} rounds of "
        f"{args.redis_calls:,} calls:"
    )
    print()
    print(
        f"| {'adapter':<29} | {'median wall µs':>14} | {'added µs/call':>13} | {'CPU vs off':>10} |"
    )
    print(f"|{'-' * 31}|{'-' * 15}:|{'-' * 14}:|{'-' * 11}:|")
    for name, row in redis.items():
        print(
            f"| {name:<29} | {row['wall_median'] * 1e6:>14.1f} "
            f"| {row['wall_ratio_delta'] * 1e6:>13.1f} "
            f"| {row['ratio']:>9.2f}x |"
        )


if __name__ == "__main__":
    asyncio.run(main())
