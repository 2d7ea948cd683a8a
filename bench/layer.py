"""Group-send benchmark: the desk's Redis channel layer against channels_redis's, in one run.

Every push to a desk is a group send. ``--sends`` group sends of a card-sized message (2 KiB), at most
``--in-flight`` at once as a session worker sends them (``calls.services.PUBLISH_CONCURRENCY``), each to
one of ``--groups`` agents' groups whose members are two process channels (two daphne processes), are
timed on channels_redis's ``RedisChannelLayer`` and on ``calls.layer.DeskRedisChannelLayer``, taking
turns ``--rounds`` times. Printed per layer and round: sends a second, this process's CPU per send, and
the p50 and p99 of one send; then the ratios of the medians over the rounds.

    .venv/bin/python bench/layer.py
    .venv/bin/python bench/layer.py --sends 20000 --rounds 5

Needs Redis on 127.0.0.1:6379; flushes database ``--redis-db`` (10) before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]  # noqa: E402

from calls.layer import DeskRedisChannelLayer  # noqa: E402

MESSAGE = {"type": "desk.push", "html": "x" * 2048}
LAYERS: dict[str, type[Any]] = {"channels_redis": RedisChannelLayer, "desk": DeskRedisChannelLayer}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def one_round(kind: type[Any], args: argparse.Namespace) -> dict[str, float]:
    hosts = [{"address": f"redis://127.0.0.1:6379/{args.redis_db}", "socket_timeout": None}]
    layer = kind(hosts=hosts, capacity=args.sends + 1)
    await layer.flush()
    daphnes = [await layer.new_channel(), await layer.new_channel()]
    for group in range(args.groups):
        await layer.group_add(f"desk.agent.{group}", daphnes[group % 2])
    slots = asyncio.Semaphore(args.in_flight)
    seconds: list[float] = []

    async def send(index: int) -> None:
        async with slots:
            started = time.perf_counter()
            await layer.group_send(f"desk.agent.{index % args.groups}", MESSAGE)
            seconds.append(time.perf_counter() - started)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(send(index) for index in range(args.sends)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await layer.flush()
    await layer.close_pools()
    return {
        "sends_per_s": args.sends / wall,
        "cpu_ms_per_send": cpu / args.sends * 1000,
        "p50_ms": percentile(seconds, 0.5) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in LAYERS}
    for number in range(1, args.rounds + 1):
        for name, kind in LAYERS.items():
            figures = await one_round(kind, args)
            rounds[name].append(figures)
            print(
                f"round {number} {name:>14}: {figures['sends_per_s']:7.0f} sends/s, "
                f"{figures['cpu_ms_per_send']:.3f} ms CPU per send, "
                f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms",
                flush=True,
            )
    medians = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in rounds.items()
    }
    desk, stock = medians["desk"], medians["channels_redis"]
    ratios = {key: desk[key] / stock[key] for key in desk}
    print(
        f"desk / channels_redis, medians of {args.rounds} rounds: "
        f"sends/s {ratios['sends_per_s']:.2f}x, CPU per send {ratios['cpu_ms_per_send']:.2f}x, "
        f"p50 {ratios['p50_ms']:.2f}x, p99 {ratios['p99_ms']:.2f}x"
    )
    return {"medians": medians, "ratios": ratios}


def parse(argv: list[str]) -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--sends", type=int, default=5000, help="group sends per layer and round (5000)")
    parser.add_argument("--in-flight", type=int, default=32, help="group sends at once (32)")
    parser.add_argument("--groups", type=int, default=1000, help="agents' groups sent to in turn (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the layers taking turns (3)")
    parser.add_argument("--redis-db", type=int, default=10, help="Redis database index, flushed (10)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print("parameters:", json.dumps(vars(arguments)))
    result = asyncio.run(main(arguments))
    print("LAYER-RESULT", json.dumps(result))
