"""deploys.publisher against the real channel layer on a real Redis: what it PUBLISHes from sync code is
what the layer's own receivers get, on the channels the layer's group_add and new_channel subscribe."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from deploys import publisher


async def _receive(layer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout=5)


async def test_a_batch_reaches_the_deploys_group_and_a_summary_the_dashboards():
    layer = get_channel_layer()
    deploy_socket, dashboard_socket, other_deploy = [await layer.new_channel() for _ in range(3)]
    await layer.group_add(publisher.deploy_group(7), deploy_socket)
    await layer.group_add(publisher.DASHBOARD_GROUP, dashboard_socket)
    await layer.group_add(publisher.deploy_group(8), other_deploy)
    wire = [{"seq": 4, "ts": "2026-12-07T18:00:00.000Z", "kind": "log", "data": {"line": "é ✓", "stream": "stdout"}}]
    summary = {"id": 7, "status": "running"}
    notice = {"id": "7-started", "text": "started"}

    await asyncio.to_thread(publisher.publish_batch, 7, wire, summary, True, [notice])

    message = await _receive(layer, deploy_socket)
    assert message == {"type": "deploy.events", "first": 4, "last": 4, "summary": summary, "events": wire}
    assert await _receive(layer, dashboard_socket) == {
        "type": "dashboard.update",
        "deploy": summary,
        "notices": [notice],
    }
    # The same notice published again (a retried task) reaches no dashboard a second time.
    await asyncio.to_thread(publisher.publish_batch, 7, wire, None, False, [notice])
    assert (await _receive(layer, deploy_socket))["summary"] is None
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(dashboard_socket), timeout=0.5)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(other_deploy), timeout=0.2)
    await layer.flush()


async def test_a_message_to_one_channel_reaches_only_that_consumer():
    layer = get_channel_layer()
    mine, theirs = await layer.new_channel(), await layer.new_channel()
    await asyncio.to_thread(publisher.send_to_channel, mine, {"type": "log.lines", "lines": ["a", "b"]})
    assert await _receive(layer, mine) == {"type": "log.lines", "lines": ["a", "b"]}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(theirs), timeout=0.2)
    await layer.flush()


def test_an_unreachable_redis_loses_the_message_not_the_request(settings, caplog):
    """Publishing is after the commit: a dead Redis is logged and the caller goes on (sockets read
    the stored events back by seq when the next message or their reconnect shows the gap)."""
    from deploys import redis as herald_redis

    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    layer = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [settings.REDIS_URL]}}}
    herald_redis.reset()
    wire = [{"seq": 9, "ts": "2026-12-07T18:00:00.000Z", "kind": "log", "data": {"line": "x"}}]
    with caplog.at_level(logging.WARNING, logger="deploys.publisher"):
        publisher.publish_batch(3, wire, None, False, [])
    assert "could not publish events 9–9 of deploy 3" in caplog.text


def test_a_sharded_layer_is_refused_rather_than_published_to_the_wrong_host(settings):
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    settings.CHANNEL_LAYERS = {
        "default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {**config, "hosts": [settings.REDIS_URL] * 2}}
    }
    with pytest.raises(ImproperlyConfigured, match="hosts must be"):
        publisher.send_to_channel("specific.x", {"type": "log.lines", "lines": []})
    with pytest.raises(ImproperlyConfigured, match="hosts must be"):
        publisher._send(1, {"type": "deploy.events"}, None, [])
