"""The dashboard socket: deploy summaries as they change, and started/finished notices once each."""

from __future__ import annotations

from ..models import Deploy
from ..publisher import DASHBOARD_GROUP
from ..summary import deploy_summary
from .base import HeraldConsumer

RECENT = 50


def _recent() -> list[dict]:
    deploys = Deploy.objects.select_related("service", "environment").prefetch_related("steps")[:RECENT]
    return [deploy_summary(d, list(d.steps.all())) for d in deploys]


class DashboardConsumer(HeraldConsumer):
    """`/ws/dashboard/`. Joins the group before taking the snapshot, so nothing falls between them;
    a client keeps the summary with the highest last_seq per deploy."""

    ACTIONS = {"ping": ()}

    async def prepare(self):
        await self.join(DASHBOARD_GROUP)  # before load() reads the snapshot

    def load(self):
        return _recent()

    async def start(self, loaded):
        await self.send_json({"type": "hello", "deploys": loaded})

    def quick(self, message: dict) -> bool:
        return True  # updates only send

    async def dashboard_update(self, message):
        """A deploy changed (from publisher.publish_batch)."""
        if message.get("deploy"):
            await self.send_shared(message, "summary", {"type": "summary", "deploy": message["deploy"]})
        for i, notice in enumerate(message.get("notices", [])):
            await self.send_shared(message, f"notice{i}", {"type": "notice", "deploy": message.get("deploy"), **notice})

    async def on_ping(self, frame_id):
        await self.send_json({"type": "pong", "id": frame_id})
