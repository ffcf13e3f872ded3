"""Micro-benchmarks behind choices in Herald and its harness, each side by side in one run. They print
figures and take no decision; docs/benchmarks.md quotes them with this command:

    .venv/bin/python -m bench.micro fanout     # a group message to N sockets: channel per socket vs fanout.py
    .venv/bin/python -m bench.micro watchers   # a join into a deploy watched by N sockets (own Redis)
    .venv/bin/python -m bench.micro client     # the bench client's CPU per frame, this tree's against
                                               # the asyncio-websockets one of b0392d7 (git), one ceiling

`--sockets` and `--messages` (fanout, client) or `--sizes` (watchers) shrink them; the smoke test does.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.hist import Hist

ROOT = Path(__file__).resolve().parents[1]
# The last commit whose bench/client.py ran on asyncio `websockets`: what `client` compares against.
WEBSOCKETS_CLIENT = "b0392d7399a1ea3d9f526cdc1618b502a1782335"


def _django() -> None:
    """Herald's modules need Django set up; nothing here touches the database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings.base")
    sys.path.insert(0, str(ROOT / "app"))
    import django

    django.setup()


FRAME = '{"type":"events","events":[]}'  # the same text for both: the mechanism is timed, not JSON


async def _per_socket_channels(sockets: int, messages: int, raw: bytes) -> float:
    """channels_redis' pub/sub layer as it ships: the shard copies each group message into every member
    channel's asyncio.Queue, each socket's receive() unpacks its own copy, and each socket's task runs
    channels' await_many_dispatch. CPU µs per delivered message."""
    from channels.utils import await_many_dispatch
    from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection

    layer = RedisPubSubLoopLayer(channel_layer=RedisPubSubChannelLayer())
    shard = RedisSingleShardConnection("redis://unused", layer)  # _receive_message needs no connection
    group = layer._get_group_channel_name("deploy.1")
    layer.groups[group] = set()
    left, done = sockets * messages, asyncio.Event()

    async def handle(_message):
        nonlocal left
        await _sink(FRAME)
        left -= 1
        if left == 0:
            done.set()

    never = asyncio.Event()
    tasks = []
    for i in range(sockets):
        name = f"specific.bench!{i}"
        layer.channels[name] = asyncio.Queue()
        layer.groups[group].add(name)
        receive = functools.partial(layer.receive, name)
        tasks.append(asyncio.ensure_future(await_many_dispatch([never.wait, receive], handle)))
    await asyncio.sleep(0.05)  # every socket waits on its queue
    started = time.process_time()
    for _ in range(messages):
        shard._receive_message({"channel": group.encode(), "data": raw})
        await asyncio.sleep(0)
    await done.wait()
    spent = time.process_time() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return spent / (sockets * messages) * 1e6


async def _herald_fanout(sockets: int, messages: int, raw: bytes) -> float:
    """Herald's consumers/fanout.py: one channel for the group, each message unpacked once and offered to
    every member (the real LocalGroup reader and HeraldConsumer.offer). CPU µs per delivered message."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from deploys.consumers import fanout
    from deploys.consumers.base import HeraldConsumer

    serializer = RedisPubSubChannelLayer()
    inbox: asyncio.Queue = asyncio.Queue()
    left, done = sockets * messages, asyncio.Event()

    class Layer:  # the one channel the group reader listens on, fed as the shard would
        async def new_channel(self):
            return "specific.bench!group"

        async def group_add(self, group, channel):
            pass

        async def group_discard(self, group, channel):
            pass

        async def receive(self, channel):
            return serializer.deserialize(await inbox.get())

    class Member(HeraldConsumer):
        def quick(self, message):
            return True

        async def deploy_events(self, message):
            nonlocal left
            await self.send(text_data=FRAME)
            left -= 1
            if left == 0:
                done.set()

    never = asyncio.Event()

    async def receive():
        await never.wait()

    async def send(message):
        await _sink(message["text"])

    members = [Member() for _ in range(sockets)]
    tasks = [asyncio.ensure_future(m({"type": "websocket"}, receive, send)) for m in members]
    await asyncio.sleep(0.05)
    local = fanout.LocalGroup("deploy.1", asyncio.get_running_loop())
    local.layer = Layer()
    for member in members:
        local.members[member] = None
    await local.subscribe()
    started = time.process_time()
    for _ in range(messages):
        inbox.put_nowait(raw)
        await asyncio.sleep(0)
    await done.wait()
    spent = time.process_time() - started
    await local.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return spent / (sockets * messages) * 1e6


async def _sink(text: str) -> None:
    """Stands in for daphne's send: both variants pay the same for it."""


def fanout(sockets: int, messages: int, rounds: int) -> list[dict]:
    """One group message delivered to `sockets` sockets of a process, both ways, alternating rounds."""
    _django()
    from channels_redis.pubsub import RedisPubSubChannelLayer

    inline = [
        {"seq": n, "kind": "log", "ts": "2026-12-01T00:00:00.000Z", "data": {"line": "x" * 120}} for n in range(5)
    ]
    raw = RedisPubSubChannelLayer().serialize({"type": "deploy.events", "first": 1, "last": 5, "events": inline})
    variants = {
        "channel per socket (pub/sub layer)": _per_socket_channels,
        "herald fanout": _herald_fanout,
    }
    rows = []
    for r in range(rounds):  # alternate, so drift on a shared machine hits both
        for name, impl in variants.items():
            cpu_us = asyncio.run(impl(sockets, messages, raw))
            rows.append({"round": r + 1, "delivery": name, "cpu_us_per_message": cpu_us})
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


def _client_tree(ref: str, dest: Path) -> Path:
    """The bench client of commit `ref` (bench/client.py and what it imports) unpacked under dest."""
    files = ["bench/__init__.py", "bench/client.py", "bench/hist.py"]
    git = subprocess.run(["git", "archive", ref, *files], cwd=ROOT, capture_output=True)
    if git.returncode != 0:  # e.g. a shallow clone without that commit
        raise SystemExit(f"git archive {ref}: {git.stderr.decode().strip()} (pass --against REF)")
    archive = git.stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _client_frames(server, pin, root: Path, sockets: int, messages: int, batch: int, rate: float) -> dict:
    """One client process (the tree at `root`) with `sockets` subscribers; `messages` requests of
    `batch` events at `rate`/s, each one frame to every socket. Its own CPU over that window."""
    from bench.load import ClientProc, produce

    deploy_id, last = server.create_deploy("micro-client")
    cfg = {
        "url": server.ws_url(deploy_id),
        "headers": server.ws_headers,
        "count": sockets,
        "after": last,
        "connect_concurrency": 64,
        "ready_timeout": 120,
    }
    proc = ClientProc(cfg, pin, root)
    try:
        ready = proc.read(150)
        if ready["connected"] != sockets:
            raise RuntimeError(f"{root}: {ready['connected']} of {sockets} sockets subscribed")
        proc.send({"cmd": "mark"})
        proc.read(60)
        sent = produce(
            {
                "host": "127.0.0.1",
                "port": server.api_port,
                "path": server.events_path(deploy_id),
                "headers": server.api_headers,
                "rate": rate,
                "batch": batch,
                "duration": (messages - 0.5) / rate,  # exactly `messages` requests
                "connections": 1,
                "line_bytes": 120,
            },
            pin,
            timeout=messages / rate + 120,
        )
        proc.send({"cmd": "report", "final_seq": sent["last_seq"], "timeout": 60, "stall": 5})
        r = proc.read(120)
        proc.send({"cmd": "quit"})
        proc.read(30)
    finally:
        proc.kill()
    cpu = r["client_cpu_s"]
    return {
        "frames": r["frames"],
        "events": r["events"],
        "wrong": r["lost"] + r["behind"] + r["dups"] + r["reordered"] + r["failed"] + r["unexpected_closes"],
        "client_cpu_s": round(cpu, 3),
        "cpu_us_per_frame": cpu / r["frames"] * 1e6 if r["frames"] else 0.0,
        "frames_per_cpu_s": round(r["frames"] / cpu) if cpu else 0,
        "latency_p50_ms": Hist.from_json(r["h_send"]).pct(50) or 0.0,
        "latency_p99_ms": Hist.from_json(r["h_send"]).pct(99) or 0.0,
    }


def client(sockets: int, messages: int, batches: list[int], rate: float, rounds: int, against: str) -> list[dict]:
    """The earlier client (commit `against`) and this tree's, alternating, against one ceiling server
    on the server core(s); the clients on the load core, as `make bench` pins them."""
    from bench.load import Pinning
    from bench.targets import CeilingTarget

    pin = Pinning("auto")
    pin.apply_to_self()  # the ceiling server started below inherits the server core(s)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp, CeilingTarget() as server:
        variants = {f"client at {against[:7]}": _client_tree(against, Path(tmp)), "this tree": ROOT}
        rows = []
        for r in range(rounds):  # alternate, so drift on a shared machine hits both
            for batch in batches:
                for name, root in variants.items():
                    figures = _client_frames(server, pin, root, sockets, messages, batch, rate)
                    rows.append({"round": r + 1, "client": name, "events_per_frame": batch, **figures})
        return rows


def _print(rows: list[dict]) -> None:
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["fanout", "watchers", "client"])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--batches", default="1,5", help="client: events per frame, one step each")
    parser.add_argument("--rate", type=float, default=10, help="client: producer requests (frames per socket) per s")
    parser.add_argument("--against", default=WEBSOCKETS_CLIENT, help="client: the commit whose client to compare")
    args = parser.parse_args(argv)
    if args.which == "fanout":
        _print(fanout(args.sockets, args.messages, args.rounds))
    elif args.which == "watchers":
        _print(watchers([int(s) for s in args.sizes.split(",")]))
    else:
        batches = [int(b) for b in args.batches.split(",")]
        _print(client(args.sockets, args.messages, batches, args.rate, args.rounds, args.against))
    return 0


if __name__ == "__main__":
    sys.exit(main())
