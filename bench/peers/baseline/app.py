"""The whole baseline: an ingest view that does one group_send per line, and a group consumer."""

import itertools
import json
import os
import threading
from datetime import UTC, datetime

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.baseline.settings")

import django

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

_ids = itertools.count(1)
_seq: dict[int, int] = {}
_lock = threading.Lock()


def now_iso() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@csrf_exempt
def create_deploy(request):
    deploy_id = next(_ids)
    _seq[deploy_id] = 0
    return JsonResponse({"id": deploy_id, "last_seq": 0}, status=201)


@csrf_exempt
def events(request, deploy_id):
    items = json.loads(request.body)["events"]
    layer = get_channel_layer()
    first = None
    for item in items:
        with _lock:
            _seq[deploy_id] = seq = _seq.get(deploy_id, 0) + 1
        first = first or seq
        event = {"seq": seq, "ts": now_iso(), "kind": item["kind"], "data": item["data"]}
        async_to_sync(layer.group_send)(f"deploy_{deploy_id}", {"type": "deploy.event", "event": event})
    return JsonResponse({"first_seq": first, "last_seq": seq}, status=202)


class DeployConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.deploy_id = int(self.scope["url_route"]["kwargs"]["deploy_id"])
        self.group = f"deploy_{self.deploy_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "live", "last_seq": _seq.get(self.deploy_id, 0)}))

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def deploy_event(self, message):
        await self.send(text_data=json.dumps({"type": "events", "events": [message["event"]]}))


urlpatterns = [
    path("api/v1/deploys/", create_deploy),
    path("api/v1/deploys/<int:deploy_id>/events/", events),
]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/deploys/<int:deploy_id>/", DeployConsumer.as_asgi())]),
    }
)
