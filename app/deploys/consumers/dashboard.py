"""The dashboard socket: deploy summaries as they change, and started/finished notices once each."""

from __future__ import annotations

from channels.db import database_sync_to_async

from ..models import Deploy
from ..publisher import DASHBOARD_GROUP
from ..summary import deploy_summary
from .base import HeraldConsumer

RECENT = 50


@database_sync_to_async
def _recent() -> list[dict]:
    deploys = Deploy.objects.select_related("service", "environment").prefetch_related("steps")[:RECENT]
    return [deploy_summary(d, list(d.steps.all())) for d in deploys]


class DashboardConsumer(HeraldConsumer):
    """`/ws/dashboard/`. Joins the group before taking the snapshot, so nothing falls between them;
    a client keeps the summary with the highest last_seq per deploy."""

    ACTIONS = {"ping": ()}

    async def start(self):
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)
        self.joined = True
        await self.send_json({"type": "hello", "deploys": await _recent()})

    async def disconnect(self, code):
        """Called when the socket closes: leave the group."""
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name)

    async def dashboard_update(self, message):
        """A deploy changed (from publisher.publish_batch)."""
        if message.get("deploy"):
            await self.send_json({"type": "summary", "deploy": message["deploy"]})
        for notice in message.get("notices", []):
            await self.send_json({"type": "notice", "deploy": message.get("deploy"), **notice})

    async def on_ping(self, frame_id):
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)  # survives a Redis restart
        await self.send_json({"type": "pong", "id": frame_id})
