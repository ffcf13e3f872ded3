"""What every Herald socket shares (deploys/consumers/base.py): message dispatch without channels'
per-message database clean-up and task juggling."""

import asyncio

import channels.consumer
import pytest
from asgiref.sync import sync_to_async
from channels.exceptions import StopConsumer

from deploys import operations
from deploys.consumers.base import pump_into
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


class Source:
    """A message source like the ASGI receive or the channel layer's: hands out queued messages and
    counts how many of its awaits are in flight at once."""

    def __init__(self, name: str):
        self.name, self.queue = name, asyncio.Queue()
        self.waiting = self.most_waiting = 0
        self.cancelled = False

    async def __call__(self):
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            return await self.queue.get()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.waiting -= 1


async def test_pump_dispatches_both_sources_one_at_a_time_in_order():
    client, layer = Source("client"), Source("layer")
    seen, busy = [], []

    async def dispatch(message):
        assert not busy, f"{message} dispatched while {busy} was still running"
        busy.append(message)
        await asyncio.sleep(0)  # give the other source's message every chance to barge in
        busy.pop()
        seen.append(message)
        if message == "stop":
            raise StopConsumer

    for i in range(20):
        client.queue.put_nowait(f"c{i}")
        layer.queue.put_nowait(f"l{i}")
    pump = asyncio.ensure_future(pump_into(dispatch, client, layer))
    while len(seen) < 40:
        await asyncio.sleep(0.001)
    client.queue.put_nowait("stop")
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(pump, 5)
    assert [m for m in seen if m.startswith("c")] == [f"c{i}" for i in range(20)]
    assert [m for m in seen if m.startswith("l")] == [f"l{i}" for i in range(20)]
    assert seen[-1] == "stop"
    # A source is asked for its next message only once the last one was dispatched (back-pressure).
    assert client.most_waiting == layer.most_waiting == 1
    assert layer.cancelled and layer.waiting == 0  # the other source's await does not outlive the consumer


async def test_pump_passes_on_a_failing_source_and_stops_the_other():
    layer = Source("layer")

    async def broken():
        raise ConnectionError("redis went away")

    async def dispatch(message):
        raise AssertionError("nothing to dispatch")

    with pytest.raises(ConnectionError, match="redis went away"):
        await asyncio.wait_for(pump_into(dispatch, broken, layer), 5)
    assert layer.cancelled


async def test_cancelling_the_consumer_cancels_its_sources():
    client, layer = Source("client"), Source("layer")

    async def dispatch(message):
        pass

    pump = asyncio.ensure_future(pump_into(dispatch, client, layer))
    await asyncio.sleep(0.01)
    pump.cancel()  # what daphne does to an application that outlives its socket
    with pytest.raises(asyncio.CancelledError):
        await pump
    assert client.cancelled and layer.cancelled


async def test_the_handshake_is_accepted_before_the_user_is_looked_up(engineer, service, monkeypatch):
    """daphne rejects a handshake not accepted within 5 s; in a reconnect storm the lookup waits behind
    thousands of others on the database thread, so it must not stand before the accept."""
    import herald.ws_auth

    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    lookup_may_finish = asyncio.Event()
    real_lookup = herald.ws_auth.user_for_session

    async def queued_lookup(session):
        await lookup_may_finish.wait()
        return await real_lookup(session)

    monkeypatch.setattr(herald.ws_auth, "user_for_session", queued_lookup)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)  # accepted while the lookup waits
    assert await sock.comm.receive_nothing(timeout=0.3)  # and nothing is sent before the user is known
    lookup_may_finish.set()
    hello = await sock.recv()
    assert hello["type"] == "hello" and hello["deploy"]["id"] == deploy.pk
    await sock.close()
