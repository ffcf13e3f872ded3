"""The log-follow socket: tail one whitelisted file on one host, for this socket only."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings

from .. import redis as herald_redis
from ..tasks import follow_lease_key, follow_log
from .base import HeraldConsumer
from .frames import Field, FrameError

LEASE_SECONDS = 30
LEASE_REFRESH_SECONDS = 10


class LogFollowConsumer(HeraldConsumer):
    """`/ws/logs/`. A Celery task on the host's queue reads the file and sends lines to this socket's
    channel while the socket holds a lease in Redis; closing the socket deletes the lease, and the
    task notices within a fraction of a second. The lease also expires if daphne dies uncleanly."""

    ACTIONS = {
        "follow": (Field("host", str, max_length=100), Field("name", str, max_length=100)),
        "stop": (),
        "ping": (),
    }
    OWN_CHANNEL = True  # the follow task sends lines to this socket's channel

    def quick(self, message: dict) -> bool:
        return True  # lines only send

    async def start(self, loaded):
        self.follow_id = None
        self.refresher = None
        files = {host: sorted(names) for host, names in settings.HERALD_LOG_FILES.items()}
        await self.send_json({"type": "hello", "files": files})

    async def disconnect(self, code):
        """Called when the socket closes: end the follow (the task stops within a second)."""
        await self._stop()

    async def on_follow(self, frame_id, host, name):
        path = settings.HERALD_LOG_FILES.get(host, {}).get(name)
        if path is None:
            raise FrameError(
                "unknown_file", f"{host}:{name} is not in HERALD_LOG_FILES; it cannot be followed", frame_id
            )
        await self._stop()
        self.follow_id = uuid.uuid4().hex
        await sync_to_async(herald_redis.client().set)(follow_lease_key(self.follow_id), 1, ex=LEASE_SECONDS)
        await sync_to_async(follow_log.apply_async)(
            args=[self.follow_id, self.channel_name, path], queue=f"logs.{host}"
        )
        self.refresher = asyncio.create_task(self._refresh_lease(self.follow_id))
        await self.send_json({"type": "following", "id": frame_id, "host": host, "name": name})

    async def on_stop(self, frame_id):
        await self._stop()
        await self.send_json({"type": "stopped", "id": frame_id, "reason": "client"})

    async def on_ping(self, frame_id):
        await self.send_json({"type": "pong", "id": frame_id})

    async def log_lines(self, message):
        """New lines from the follow task."""
        await self.send_json({"type": "lines", "lines": message["lines"]})

    async def _refresh_lease(self, follow_id: str):
        key = follow_lease_key(follow_id)
        while True:
            await asyncio.sleep(LEASE_REFRESH_SECONDS)
            await sync_to_async(herald_redis.client().expire)(key, LEASE_SECONDS)

    async def _stop(self):
        if self.refresher:
            self.refresher.cancel()
            self.refresher = None
        if self.follow_id:
            await sync_to_async(herald_redis.client().delete)(follow_lease_key(self.follow_id))
            self.follow_id = None
