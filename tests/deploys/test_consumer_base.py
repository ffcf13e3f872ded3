"""What every Herald socket shares (deploys/consumers/base.py): message dispatch without channels'
per-message database clean-up."""

import channels.consumer
import pytest
from asgiref.sync import sync_to_async

from deploys import operations
from deploys.events import NewEvent, record
from deploys.models import Deploy

from .conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_live_messages_do_not_hop_to_the_database_thread(engineer, service, monkeypatch):
    """channels' own dispatch calls aclose_old_connections() before every message; Herald's must not."""
    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await sock.recv_until("live")
    calls = []

    async def counting():
        calls.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting)
    for i in range(3):
        await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": f"line {i}"})])
        frame = await sock.recv_until("events")
        assert [e["data"]["line"] for e in frame["events"]] == [f"line {i}"]
    await sock.send({"action": "ping"})
    assert (await sock.recv_until("pong"))["last_seq"] == deploy.last_seq + 3
    assert calls == []
    await sock.close()


async def test_a_message_without_a_handler_is_an_error(engineer, service):
    from deploys.consumers.deploy import DeployConsumer

    with pytest.raises(ValueError, match=r"No handler for message type deploy\.unknown"):
        await DeployConsumer().dispatch({"type": "deploy.unknown"})
