"""Micro-benchmarks behind two of Herald's choices, each side by side in one process. They print
figures and take no decision; docs/benchmarks.md quotes them with this command:

    .venv/bin/python -m bench.micro dispatch   # channels' await_many_dispatch vs Herald's pump_into()
    .venv/bin/python -m bench.micro watchers   # a join into a deploy watched by N sockets (own Redis)

`--sockets` and `--messages` (dispatch) or `--sizes` (watchers) shrink them; the smoke test does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def _deliver(loop_impl, sockets: int, messages: int) -> float:
    """CPU µs per message handed to `sockets` consumers × `messages`, each consumer with two sources."""
    left = sockets * messages
    all_done = asyncio.Event()

    async def dispatch(_message):
        nonlocal left
        left -= 1
        if left == 0:
            all_done.set()

    layer_queues, consumers = [], []
    for _ in range(sockets):
        client, layer = asyncio.Queue(), asyncio.Queue()
        layer_queues.append(layer)
        consumers.append(asyncio.ensure_future(loop_impl(dispatch, client.get, layer.get)))
    await asyncio.sleep(0.05)  # every consumer waits on its sources
    started = time.process_time()
    for i in range(messages):
        for queue in layer_queues:  # one group message reaching every socket of the process
            queue.put_nowait({"type": "deploy.events", "n": i})
        await asyncio.sleep(0)
    await all_done.wait()
    spent = time.process_time() - started
    for consumer in consumers:
        consumer.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    return spent / (sockets * messages) * 1e6


def _django() -> None:
    """Herald's modules need Django set up; nothing here touches the database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings.base")
    sys.path.insert(0, str(ROOT / "app"))
    import django

    django.setup()


def dispatch(sockets: int, messages: int, rounds: int) -> list[dict]:
    from channels.utils import await_many_dispatch

    _django()
    from deploys.consumers.base import pump_into

    variants = {
        "channels await_many_dispatch": lambda d, *sources: await_many_dispatch(list(sources), d),
        "herald pump_into": pump_into,
    }
    rows = []
    for r in range(rounds):  # alternate, so drift on a shared machine hits both
        for name, impl in variants.items():
            rows.append(
                {"round": r + 1, "loop": name, "cpu_us_per_message": asyncio.run(_deliver(impl, sockets, messages))}
            )
    return rows


def watchers(sizes: list[int]) -> list[dict]:
    from tests.support.servers import RedisServer

    with RedisServer() as server:
        os.environ["REDIS_URL"] = server.url
        _django()
        from deploys import redis as herald_redis
        from deploys import watchers as herald_watchers

        rows = []
        client = herald_redis.client()
        for size in sizes:
            client.flushall()
            deploy_id, last = 1, max(1, size // 10)
            for i in range(size - last):
                herald_watchers.seen(deploy_id, f"specific.{i:08x}!bench", "bench")
            client.config_resetstat()
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(size - last, size):  # the joins that bring the deploy to `size` sockets
                frame = herald_watchers.seen(deploy_id, f"specific.{i:08x}!bench", "bench")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            redis_us = sum(stat["usec"] for stat in client.info("commandstats").values())
            assert frame["count"] == 1, frame  # one user however many sockets
            rows.append(
                {
                    "sockets": size,
                    "joins_timed": last,
                    "wall_us_per_join": wall / last * 1e6,
                    "client_cpu_us_per_join": cpu / last * 1e6,
                    "redis_us_per_join": redis_us / last,
                }
            )
        return rows


def _print(rows: list[dict]) -> None:
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["dispatch", "watchers"])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args(argv)
    if args.which == "dispatch":
        _print(dispatch(args.sockets, args.messages, args.rounds))
    else:
        _print(watchers([int(s) for s in args.sizes.split(",")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
