"""The summary read shared by the sockets of a deploy that connect together (deploys/consumers/summaries.py):
shared only with sockets that joined before the read started, so nothing stored after a join is missed."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from deploys import operations
from deploys.consumers import summaries
from deploys.consumers.summaries import SummaryReads
from deploys.events import NewEvent, record
from deploys.models import Deploy

from .conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deploy(service) -> Deploy:
    return operations.start_deploy(service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL)


@pytest.fixture
def reads(monkeypatch):
    """Count the database reads of summaries."""
    count = []
    real = summaries.read_summary
    monkeypatch.setattr(summaries, "read_summary", lambda deploy_id: count.append(deploy_id) or real(deploy_id))
    return count


def test_a_read_that_started_after_the_join_is_shared(deploy, reads):
    shared = SummaryReads()
    joined = shared.clock()
    first = shared.since(deploy.pk, joined)
    assert shared.since(deploy.pk, joined) is first
    assert first["id"] == deploy.pk and reads == [deploy.pk]


def test_a_socket_that_joined_after_the_read_gets_a_read_of_its_own(deploy, reads):
    shared = SummaryReads()
    before = shared.since(deploy.pk, shared.clock())
    record(deploy.pk, [NewEvent("log", {"line": "stored after that read"})])
    after = shared.since(deploy.pk, shared.clock())
    assert after["last_seq"] == before["last_seq"] + 1
    assert len(reads) == 2


def test_a_missing_deploy_is_none_until_a_later_join(service, reads):
    shared = SummaryReads()
    assert shared.since(999, shared.clock()) is None
    assert len(reads) == 1


def test_only_the_latest_deploys_are_kept(deploy, reads, monkeypatch):
    monkeypatch.setattr(summaries, "DEPLOYS", 2)
    shared = SummaryReads()
    joined = shared.clock()
    for deploy_id in (deploy.pk, 998, 999):
        shared.since(deploy_id, joined)
    shared.since(999, joined)  # still kept
    shared.since(deploy.pk, joined)  # dropped: read again
    assert reads == [deploy.pk, 998, 999, deploy.pk]


async def test_a_socket_connecting_after_an_event_sees_it_though_others_connected_before(engineer, service):
    """The storm's hazard: a summary read for earlier sockets must not answer a socket that joined after
    an event was stored and published — it would never get that event."""
    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    early = await Socket.open(f"/ws/deploys/{deploy.pk}/?after=0", engineer)
    hello = await early.recv_until("hello")
    stored = await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": "between the two"})])
    assert stored.last_seq == hello["deploy"]["last_seq"] + 1
    late = await Socket.open(f"/ws/deploys/{deploy.pk}/?after=0", engineer)
    assert (await late.recv_until("hello"))["deploy"]["last_seq"] == stored.last_seq
    seen = []
    while True:
        frame = await late.recv()
        if frame["type"] == "live":
            break
        seen += [e["seq"] for e in frame.get("events", [])]
    assert seen == list(range(1, stored.last_seq + 1))
    await early.close()
    await late.close()


async def test_sockets_connecting_together_share_reads_and_all_get_every_event(engineer, service, reads):
    deploy = await sync_to_async(operations.start_deploy)(
        service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL
    )
    await sync_to_async(record)(deploy.pk, [NewEvent("log", {"line": f"line {i}"}) for i in range(30)])
    socks = await asyncio.gather(*(Socket.open(f"/ws/deploys/{deploy.pk}/?after=0", engineer) for _ in range(20)))
    for sock in socks:
        hello = await sock.recv_until("hello")
        assert hello["deploy"]["last_seq"] == 32
        assert [e["seq"] for e in (await sock.recv())["events"]] == list(range(1, 33))
        assert await sock.recv() == {"type": "live", "last_seq": 32}
    assert len(reads) < len(socks), reads
    for sock in socks:
        await sock.close()
