"""What every Herald socket shares (deploys/consumers/base.py, fanout.py): dispatch without channels'
per-message database clean-up, group messages taken in order through one subscription per process,
and one database trip per connect."""

import asyncio
import threading

import channels.consumer
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from deploys import operations
from deploys.consumers import fanout
from deploys.consumers.base import HeraldConsumer
from deploys.events import NewEvent, record
from deploys.models import Deploy
from deploys.publisher import deploy_group

from .conftest import Socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_send_paths")]


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


class Probe(HeraldConsumer):
    """A consumer whose handler notes what it handled, can be made to wait, and checks that no two of
    its handlers ever run at once; `probe.*` messages come from the client side or from offer()."""

    def __init__(self):
        super().__init__()
        self.seen, self.running = [], 0
        self.tasks_seen = set()

    def quick(self, message):
        return message.get("quick", False)

    async def probe_note(self, message):
        self.running += 1
        assert self.running == 1, f"{message['n']} ran beside another handler"
        self.tasks_seen.add(asyncio.current_task())
        if "gate" in message:
            await message["gate"].wait()
        if message.get("fail"):
            self.running -= 1
            raise RuntimeError("handler broke")
        self.seen.append(message["n"])
        self.running -= 1


async def started_probe():
    """A Probe running its real __call__ on a fake socket: (probe, client queue, sent messages, task)."""
    probe, client, sent = Probe(), asyncio.Queue(), []

    async def send(message):
        sent.append(message)

    task = asyncio.ensure_future(probe(scope={"type": "websocket"}, receive=client.get, send=send))
    await asyncio.sleep(0)  # __call__ is now waiting on the client
    return probe, client, sent, task


def note(n, **kw):
    return {"type": "probe.note", "n": n, **kw}


async def test_an_idle_socket_handles_a_quick_message_inside_the_offer():
    """No task of the socket's own wakes up: the group reader's call does the work."""
    probe, _client, _sent, task = await started_probe()
    await probe.offer(note(1, quick=True))
    assert probe.seen == [1] and probe.tasks_seen == {asyncio.current_task()}
    task.cancel()


async def test_messages_offered_while_a_handler_runs_follow_it_in_order():
    probe, client, _sent, task = await started_probe()
    gate = asyncio.Event()
    client.put_nowait(note("client-1", gate=gate))  # a client message whose handler waits (a DB read)
    await asyncio.sleep(0.01)
    for n in range(5):
        await probe.offer(note(n, quick=True))  # quick, but the socket is busy: held
    client.put_nowait(note("client-2"))
    assert probe.seen == [] and len(probe.held) == 5
    gate.set()
    while len(probe.seen) < 7:
        await asyncio.sleep(0.001)
    # Held group messages run right after the handler that held them up, before the next client one.
    assert probe.seen == ["client-1", 0, 1, 2, 3, 4, "client-2"]
    task.cancel()


async def test_a_slow_message_runs_in_its_own_task_and_later_quick_ones_wait_behind_it():
    probe, _client, _sent, task = await started_probe()
    gate = asyncio.Event()
    await probe.offer(note("slow", gate=gate))  # not quick: returns at once, handled in a task
    await probe.offer(note("quick", quick=True))  # must not overtake the slow one
    await asyncio.sleep(0.01)
    assert probe.seen == [] and asyncio.current_task() not in probe.tasks_seen
    gate.set()
    while len(probe.seen) < 2:
        await asyncio.sleep(0.001)
    assert probe.seen == ["slow", "quick"]
    task.cancel()


async def test_a_failed_group_message_closes_the_socket_and_drops_the_rest():
    """The socket may have missed events: it closes with 1011, and the client resumes by seq."""
    probe, _client, sent, task = await started_probe()
    await probe.offer(note("bad", quick=True, fail=True))
    await probe.offer(note("after", quick=True))
    await asyncio.sleep(0.01)
    assert probe.seen == []
    assert {"type": "websocket.close", "code": 1011} in sent
    task.cancel()


async def test_one_subscription_per_deploy_and_process_however_many_sockets(engineer, watcher, service):
    """The pub/sub layer holds one channel in the deploy's group for this process, not one per socket;
    every socket still gets every event; the last one out unsubscribes."""
    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    sockets = [await Socket.open(f"/ws/deploys/{deploy.pk}/", (engineer, watcher)[i % 2]) for i in range(6)]
    for sock in sockets:
        await sock.recv_until("live")
    layer = get_channel_layer()
    group_channel = layer._get_layer()._get_group_channel_name(deploy_group(deploy.pk))
    assert len(layer._get_layer().groups[group_channel]) == 1
    assert len(fanout.local_group(deploy_group(deploy.pk)).members) == 6
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "to all six"})])
    for sock in sockets:
        assert [e["data"]["line"] for e in (await sock.recv_until("events"))["events"]] == ["to all six"]
    for sock in sockets:
        await sock.close()
    assert fanout.local_group(deploy_group(deploy.pk)) is None
    assert layer._get_layer().groups == {}


async def test_a_member_that_fails_does_not_starve_the_group(engineer, service):
    """A socket whose offer raises is logged and skipped; the others still hear the group."""
    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    good = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await good.recv_until("live")

    class Broken:
        def offer_now(self, message):
            return False  # take the coroutine path, which fails

        async def offer(self, message):
            raise RuntimeError("a broken member")

    broken = Broken()
    await fanout.join(deploy_group(deploy.pk), broken)
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "still delivered"})])
    assert [e["data"]["line"] for e in (await good.recv_until("events"))["events"]] == ["still delivered"]
    await fanout.leave(deploy_group(deploy.pk), broken)
    await good.close()


async def test_the_handshake_is_accepted_before_the_user_is_looked_up(engineer, service, monkeypatch):
    """daphne rejects a handshake not accepted within its connect timeout; in a reconnect storm the
    lookup waits behind thousands of others on the database thread, so it must not stand before the accept."""
    from deploys.consumers import trips

    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    lookup_may_finish = threading.Event()
    real_lookup = trips.users_for_session_keys

    def queued_lookup(keys):  # runs on the database thread, like the real one
        assert lookup_may_finish.wait(10)
        return real_lookup(keys)

    monkeypatch.setattr(trips, "users_for_session_keys", queued_lookup)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)  # accepted while the lookup waits
    assert await sock.comm.receive_nothing(timeout=0.3)  # and nothing is sent before the user is known
    lookup_may_finish.set()
    hello = await sock.recv()
    assert hello["type"] == "hello" and hello["deploy"]["id"] == deploy.pk
    await sock.close()


async def test_a_connect_takes_one_database_trip(engineer, service, monkeypatch):
    """The user, the summary and the first replay page come back together (daphne's one database
    thread is where a crowd of connects queues)."""
    from deploys.consumers import trips as consumer_trips

    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    for i in range(3):
        await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": f"line {i}"})])
    trips, real = [], consumer_trips._run_all

    def counting(lookups):
        trips.append([load.__name__ for _, load in lookups])
        return real(lookups)

    monkeypatch.setattr(consumer_trips, "_run_all", counting)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/?after=1", engineer)
    assert (await sock.recv())["type"] == "hello"
    assert [e["seq"] for e in (await sock.recv())["events"]] == [2, 3, 4, 5]
    assert await sock.recv() == {"type": "live", "last_seq": 5}
    assert trips == [["load"]]  # one hop to the database thread, one lookup in it
    await sock.close()


async def test_a_socket_counts_as_connecting_only_until_its_first_frames(engineer, service):
    """fanout.connecting (a reconnect storm's sign) goes up for each connect and back down whether the
    socket starts, is refused or closes mid-connect."""
    from deploys.consumers import fanout

    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    before = fanout.connecting
    live = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await live.recv_until("live")
    anonymous = await Socket.open(f"/ws/deploys/{deploy.pk}/")
    assert (await anonymous.recv())["code"] == "unauthenticated"
    assert await anonymous.expect_close() == 4401
    missing = await Socket.open("/ws/deploys/999999/", engineer)
    assert (await missing.recv())["code"] == "not_found"
    assert await missing.expect_close() == 4404
    assert fanout.connecting == before
    await live.close()
