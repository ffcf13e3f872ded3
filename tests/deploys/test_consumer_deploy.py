"""The deploy socket (deploys/consumers/deploy.py): resume, the replay/live seam, actions, refusals."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async

from deploys import operations
from deploys.consumers import fanout
from deploys.events import NewEvent, record
from deploys.models import Deploy
from deploys.publisher import deploy_group

from .conftest import Socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_send_paths")]


@sync_to_async
def external_deploy(service, lines: int = 0) -> Deploy:
    deploy = operations.start_deploy(service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL)
    for start in range(0, lines, 500):
        record(deploy.pk, [NewEvent("log", {"line": f"line {i}"}) for i in range(start, min(lines, start + 500))])
    return Deploy.objects.get(pk=deploy.pk)


async def collect_until(sock: Socket, last_seq: int, timeout: float = 10) -> list[int]:
    """Every seq the socket receives until it has `last_seq`."""
    seen = []
    while not seen or seen[-1] < last_seq:
        frame = await sock.recv(timeout)
        if frame["type"] == "events":
            seen += [e["seq"] for e in frame["events"]]
    return seen


@pytest.mark.parametrize("after", [0, 1, 2, 37, 251, 252])
async def test_resume_from_any_position_sends_exactly_what_follows(engineer, service, after):
    deploy = await external_deploy(service, lines=250)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/?after={after}", engineer)
    hello = await sock.recv()
    assert hello["type"] == "hello" and hello["deploy"]["last_seq"] == 252 and hello["after"] == after
    seen = []
    while True:
        frame = await sock.recv()
        if frame["type"] == "live":
            break
        seen += [e["seq"] for e in frame["events"]]
    assert seen == list(range(after + 1, 253))
    assert frame["last_seq"] == 252
    await sock.close()


async def test_no_gap_and_no_duplicate_at_the_replay_live_seam(engineer, service):
    """Events keep arriving while a 5,000-event replay runs: each is received once, in order."""
    deploy = await external_deploy(service, lines=5000)
    produced = []

    def producer():
        from django.db import connection

        for i in range(60):
            produced.append(record(deploy.pk, [NewEvent("log", {"line": f"live {i}"}), NewEvent("log", {"line": "x"})]))
        connection.close()

    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/?after=0", engineer)
    assert (await sock.recv())["type"] == "hello"  # the replay starts right after this frame
    thread = threading.Thread(target=producer)
    thread.start()
    frames = []
    while not frames or frames[-1]["type"] != "live":
        frames.append(await sock.recv())
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    final = produced[-1].last_seq
    assert final == 5002 + 120
    replayed_last = frames[-1]["last_seq"]
    assert 5002 <= replayed_last <= final
    seen = [e["seq"] for f in frames if f["type"] == "events" for e in f["events"]]
    if replayed_last < final:
        seen += await collect_until(sock, final)
    assert seen == list(range(1, final + 1))
    # Nothing trickles in after the end: the next frame after a ping is the pong, at the same seq.
    await sock.send({"action": "ping"})
    assert await sock.recv() == {"type": "pong", "id": None, "last_seq": final}
    await sock.close()


async def test_live_events_reach_every_watcher(engineer, watcher, service):
    deploy = await external_deploy(service)
    a = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    b = await Socket.open(f"/ws/deploys/{deploy.pk}/", watcher)
    for sock in (a, b):
        await sock.recv_until("live")
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "hello \x1b[32mworld\x1b[0m"})])
    for sock in (a, b):
        frame = await sock.recv_until("events")
        assert [e["data"]["line"] for e in frame["events"]] == ["hello \x1b[32mworld\x1b[0m"]
        await sock.close()


async def test_a_comment_is_stored_and_broadcast_to_everyone(engineer, watcher, service):
    deploy = await external_deploy(service)
    a = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    b = await Socket.open(f"/ws/deploys/{deploy.pk}/", watcher)
    for sock in (a, b):
        await sock.recv_until("live")
    await b.send({"action": "comment", "text": "<b>ship it</b>", "id": 7})
    ack = await b.recv_until("ack")
    assert ack["id"] == 7 and ack["seq"] == 3
    for sock in (a, b):
        events = (await sock.recv_until("events"))["events"]
        assert events == [
            {"seq": 3, "ts": events[0]["ts"], "kind": "comment", "data": {"user": "walt", "text": "<b>ship it</b>"}}
        ]
        await sock.close()


BAD_FRAMES = [
    ("{not json", "bad_json"),
    ("[1, 2]", "not_an_object"),
    ('"ping"', "not_an_object"),
    (json.dumps({"id": 1}), "missing_field"),
    (json.dumps({"action": "explode"}), "unknown_action"),
    (json.dumps({"action": "comment"}), "missing_field"),
    (json.dumps({"action": "comment", "text": 5}), "invalid_field"),
    (json.dumps({"action": "comment", "text": "x" * 2001}), "field_too_long"),
    (json.dumps({"action": "comment", "text": "   "}), "invalid_field"),
    (json.dumps({"action": "comment", "text": "y" * 17000}), "frame_too_large"),
]


async def test_every_bad_frame_gets_an_error_and_the_socket_stays_usable(engineer, service):
    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await sock.recv_until("live")
    for text, code in BAD_FRAMES:
        await sock.send(text)
        frame = await sock.recv()
        assert (frame["type"], frame["code"]) == ("error", code), text[:40]
        assert frame["message"]
    await sock.comm.send_to(bytes_data=b"\x00\x01")
    assert (await sock.recv())["code"] == "bad_json"
    await sock.send({"action": "ping", "id": "p"})
    assert await sock.recv() == {"type": "pong", "id": "p", "last_seq": 2}
    await sock.close()


async def test_actions_are_rate_limited_per_connection(engineer, service):
    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await sock.recv_until("live")
    for _ in range(30):
        await sock.send({"action": "ping"})
    replies = [await sock.recv() for _ in range(30)]
    limited = [r for r in replies if r["type"] == "error"]
    assert limited and all(r["code"] == "rate_limited" for r in limited)
    assert sum(r["type"] == "pong" for r in replies) >= 20
    await sock.close()


async def test_cancel_needs_the_deploy_permission(engineer, watcher, service):
    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", watcher)
    await sock.recv_until("live")
    await sock.send({"action": "cancel", "id": 1})
    assert (await sock.recv())["code"] == "forbidden"
    await sock.close()
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await sock.recv_until("live")
    await sock.send({"action": "cancel", "id": 2})
    status = None
    while status is None:
        frame = await sock.recv()
        if frame["type"] == "events":
            status = next((e["data"] for e in frame["events"] if e["kind"] == "status"), None)
    assert status == {"status": "cancelled", "by": "rita"}
    await sock.send({"action": "cancel", "id": 3})
    assert (await sock.recv_until("error"))["code"] == "conflict"
    await sock.close()


async def test_anonymous_sockets_are_closed_with_4401(service):
    deploy = await external_deploy(service)
    for path in (f"/ws/deploys/{deploy.pk}/", "/ws/dashboard/", "/ws/logs/"):
        sock = await Socket.open(path, None)
        assert (await sock.recv())["code"] == "unauthenticated"
        assert await sock.expect_close() == 4401


async def test_cross_origin_sockets_are_refused_at_the_handshake(engineer, service):
    deploy = await external_deploy(service)
    accepted, _ = await Socket.open(
        f"/ws/deploys/{deploy.pk}/", engineer, origin=b"https://evil.example", expect_accept=False
    )
    assert accepted is False


@pytest.mark.parametrize(
    ("query", "code", "error"),
    [("?after=abc", 4400, "bad_request"), ("?after=-1", 4400, "bad_request"), ("?after=3", 4416, "resume_beyond_end")],
)
async def test_bad_resume_positions_get_a_clear_error(engineer, service, query, code, error):
    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/{query}", engineer)
    frame = await sock.recv()
    assert frame["code"] == error and frame["message"]
    assert await sock.expect_close() == code


async def test_unknown_deploy_is_closed_with_4404(engineer, transactional_db):
    sock = await Socket.open("/ws/deploys/999999/", engineer)
    assert (await sock.recv())["code"] == "not_found"
    assert await sock.expect_close() == 4404


async def test_a_lost_live_message_is_filled_from_the_database(engineer, service, monkeypatch):
    """If a channel message never arrives (Redis hiccup, full channel), the next one fills the gap."""
    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await sock.recv_until("live")
    from deploys import publisher

    real = publisher.publish_batch
    monkeypatch.setattr(publisher, "publish_batch", lambda *a, **k: None)  # the message for seq 3 is lost
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "lost in transit"})])
    monkeypatch.setattr(publisher, "publish_batch", real)
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "next"})])
    assert await collect_until(sock, 4) == [3, 4]
    await sock.close()


async def test_ping_delivers_stored_events_the_socket_missed(engineer, service, monkeypatch):
    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    await sock.recv_until("live")
    from deploys import publisher

    monkeypatch.setattr(publisher, "publish_batch", lambda *a, **k: None)
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "never published"})])
    await sock.send({"action": "ping"})
    assert [e["seq"] for e in (await sock.recv())["events"]] == [3]
    assert (await sock.recv())["type"] == "pong"
    await sock.close()


async def test_watchers_are_announced_on_join_and_leave(engineer, watcher, service):
    from deploys import redis as herald_redis

    deploy = await external_deploy(service)
    a = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    assert (await a.recv_until("watchers")) == {"type": "watchers", "count": 1, "users": ["rita"]}
    await sync_to_async(herald_redis.client().delete)(f"herald:watchers:{deploy.pk}:sent")  # skip the 2 s limit
    b = await Socket.open(f"/ws/deploys/{deploy.pk}/", watcher)
    assert (await a.recv_until("watchers"))["users"] == ["rita", "walt"]
    assert (await b.recv_until("watchers"))["count"] == 2
    await sync_to_async(herald_redis.client().delete)(f"herald:watchers:{deploy.pk}:sent")
    await b.close()
    assert (await a.recv_until("watchers"))["users"] == ["rita"]
    await a.send({"action": "ping"})  # every pong is followed by the current list
    assert (await a.recv())["type"] == "pong"
    assert (await a.recv_until("watchers"))["users"] == ["rita"]
    await a.close()


async def test_hello_and_the_first_replay_page_take_one_database_trip(engineer, service, monkeypatch):
    """A resume of fewer than a page of events needs no second read (daphne's one database thread)."""
    from deploys.consumers import deploy as consumer

    deploy = await external_deploy(service, lines=40)

    def no_second_trip(*args):
        raise AssertionError("the first page must come with the summary")

    monkeypatch.setattr(consumer, "_events_after", no_second_trip)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/?after=5", engineer)
    assert (await sock.recv())["type"] == "hello"
    assert [e["seq"] for e in (await sock.recv())["events"]] == list(range(6, 43))
    assert await sock.recv() == {"type": "live", "last_seq": 42}
    await sock.close()


async def test_a_refused_resume_leaves_the_group_it_joined(engineer, service):
    """The socket joins before it reads (join-before-replay), so a refusal must leave again."""
    from channels.layers import get_channel_layer

    deploy = await external_deploy(service)
    sock = await Socket.open(f"/ws/deploys/{deploy.pk}/?after=9", engineer)
    assert (await sock.recv())["code"] == "resume_beyond_end"
    assert await sock.expect_close() == 4416
    assert get_channel_layer().groups == {}  # the pub/sub layer's groups of this process: none left
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "nobody is listening"})])


async def test_a_live_frame_is_encoded_once_per_process_and_only_for_its_deploy(engineer, watcher, service):
    """Two sockets on a deploy get the same frame text, encoded once; another deploy's batch with the
    same seq range gets its own frame."""
    one = await external_deploy(service)
    two = await sync_to_async(operations.start_deploy)(
        service, "staging", "v2", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    assert (one.last_seq, two.last_seq) == (2, 2)  # so both batches below are seq 3..3
    a = await Socket.open(f"/ws/deploys/{one.pk}/", engineer)
    b = await Socket.open(f"/ws/deploys/{one.pk}/", watcher)
    c = await Socket.open(f"/ws/deploys/{two.pk}/", watcher)
    for sock in (a, b, c):
        await sock.recv_until("live")
    await sync_to_async(record)(one.pk, [NewEvent("log", {"line": "to one"})])
    await sync_to_async(record)(two.pk, [NewEvent("log", {"line": "to two"})])
    texts = []
    for sock in (a, b):
        while True:
            text = await sock.comm.receive_from(timeout=5)
            if '"type":"events"' in text:
                texts.append(text)
                break
    assert texts[0] is texts[1]  # the very same string object: encoded once in this process
    assert '"to one"' in texts[0]
    assert [e["data"]["line"] for e in (await c.recv_until("events"))["events"]] == ["to two"]
    for sock in (a, b, c):
        await sock.close()


async def test_joins_are_not_broadcast_to_a_large_audience(engineer, watcher, service, monkeypatch):
    """Above BROADCAST_WATCHERS_UP_TO sockets of a deploy in this process, a join is told to the joining
    socket only; the others learn the list at their next pong. Sockets count, not users."""
    from deploys import redis as herald_redis
    from deploys.consumers import watching

    monkeypatch.setattr(watching, "BROADCAST_WATCHERS_UP_TO", 1)
    deploy = await external_deploy(service)
    a = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)
    assert (await a.recv_until("watchers"))["users"] == ["rita"]
    await sync_to_async(herald_redis.client().delete)(f"herald:watchers:{deploy.pk}:sent")  # skip the 2 s limit
    b = await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer)  # a second tab: still one user
    assert (await b.recv_until("watchers")) == {"type": "watchers", "count": 1, "users": ["rita"]}
    await sync_to_async(herald_redis.client().delete)(f"herald:watchers:{deploy.pk}:sent")
    c = await Socket.open(f"/ws/deploys/{deploy.pk}/", watcher)
    assert (await c.recv_until("watchers"))["users"] == ["rita", "walt"]  # the joiner hears it
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "after the join"})])
    frame = await a.recv(watchers=True)  # the next frame a sees is the event, not a watchers broadcast
    assert frame["type"] == "events", frame
    await a.send({"action": "ping"})
    assert (await a.recv())["type"] == "pong"
    assert (await a.recv(watchers=True))["users"] == ["rita", "walt"]
    for sock in (a, b, c):
        await sock.close()
    assert fanout.local_group(deploy_group(deploy.pk)) is None  # the last one out unsubscribed


def count_reads(monkeypatch) -> list:
    """Every trip to the database for stored events after `after` (gap fills, pages, catch-ups)."""
    from deploys.consumers import deploy as consumer

    reads, real = [], consumer._events_after

    async def counting(deploy_id, after, until):
        reads.append((after, until))
        return await real(deploy_id, after, until)

    monkeypatch.setattr(consumer, "_events_after", counting)
    return reads


async def test_a_lost_message_is_read_once_per_process_however_many_sockets(engineer, watcher, service, monkeypatch):
    """After a lost message (Redis was away) the next batch shows the gap: the process reads it once and
    offers it to all its sockets, instead of each socket queueing its own read on the database thread."""
    from deploys import publisher

    deploy = await external_deploy(service)
    sockets = [await Socket.open(f"/ws/deploys/{deploy.pk}/", (engineer, watcher)[i % 2]) for i in range(5)]
    for sock in sockets:
        await sock.recv_until("live")
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "seen by the feed"})])  # seq 3
    for sock in sockets:
        assert await collect_until(sock, 3) == [3]
    reads = count_reads(monkeypatch)
    real = publisher.publish_batch
    monkeypatch.setattr(publisher, "publish_batch", lambda *a, **k: None)
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": f"lost {i}"}) for i in range(3)])  # 4-6
    monkeypatch.setattr(publisher, "publish_batch", real)
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "next"})])  # 7
    for sock in sockets:
        assert await collect_until(sock, 7) == [4, 5, 6, 7]
    assert reads == [(3, 6)]
    for sock in sockets:
        await sock.close()


async def test_a_batch_too_big_to_inline_is_read_once_per_process(engineer, watcher, service, monkeypatch):
    from deploys import publisher

    deploy = await external_deploy(service)
    sockets = [await Socket.open(f"/ws/deploys/{deploy.pk}/", (engineer, watcher)[i % 2]) for i in range(4)]
    for sock in sockets:
        await sock.recv_until("live")
    reads = count_reads(monkeypatch)
    monkeypatch.setattr(publisher, "INLINE_EVENTS", 2)  # so the next batch travels as a seq range
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": f"big {i}"}) for i in range(5)])  # 3-7
    for sock in sockets:
        assert await collect_until(sock, 7) == [3, 4, 5, 6, 7]
    assert reads == [(2, 7)]
    await sockets[0].send({"action": "ping"})  # and nothing more follows: the range itself adds nothing
    assert await sockets[0].recv() == {"type": "pong", "id": None, "last_seq": 7}
    for sock in sockets:
        await sock.close()


async def test_batches_that_pile_up_while_the_process_is_busy_arrive_once_in_order(engineer, service):
    """While the event loop is held up (a storm of handshakes; here a blocking sleep), three batches are
    published; the group's offering task then gets several at once and merges them (tests/deploys/
    test_consumer_fanout.py shows that deterministically). Whatever the merge, each socket gets every
    event once, in order, and the last batch's summary after all of them."""
    import time

    deploy = await external_deploy(service)
    socks = [await Socket.open(f"/ws/deploys/{deploy.pk}/", engineer) for _ in range(2)]
    for sock in socks:
        await sock.recv_until("live")

    def produce():
        from django.db import connection

        record(deploy.pk, [NewEvent("log", {"line": "one"})])
        record(deploy.pk, [NewEvent("log", {"line": "two"}), NewEvent("log", {"line": "three"})])
        record(deploy.pk, [NewEvent("progress", {"progress": 40})])
        connection.close()

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()
    time.sleep(1)  # the loop is blocked: all three messages are in Redis' socket before anyone reads them
    for sock in socks:
        seen, frame = [], {}
        while frame.get("type") != "summary":
            frame = await sock.recv()
            assert frame["type"] in ("events", "summary"), frame
            seen += [(e["seq"], e["data"].get("line")) for e in frame.get("events", [])]
        assert seen == [(3, "one"), (4, "two"), (5, "three"), (6, None)]
        assert frame["deploy"]["progress"] == 40 and frame["deploy"]["last_seq"] == 6
    for sock in socks:
        await sock.close()
