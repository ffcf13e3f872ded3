"""The dashboard socket: a snapshot, then summaries as deploys change, each notice exactly once."""

import pytest
from asgiref.sync import sync_to_async

from deploys import operations, publisher
from deploys.models import Deploy

from .conftest import Socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_send_paths")]


async def test_snapshot_then_live_summaries_and_single_notices(engineer, service):
    first = await sync_to_async(operations.start_deploy)(service, "production", "v1", runner=Deploy.Runner.EXTERNAL)
    sock = await Socket.open("/ws/dashboard/", engineer)
    hello = await sock.recv()
    assert hello["type"] == "hello" and [d["id"] for d in hello["deploys"]] == [first.pk]

    await sync_to_async(operations.finish)(first.pk, "succeeded", by="ci")
    summary = await sock.recv_until("summary")
    assert summary["deploy"]["status"] == "succeeded" and summary["deploy"]["progress"] == 100
    notice = await sock.recv_until("notice")
    assert notice["id"] == f"{first.pk}:succeeded" and notice["event"] == "finished"
    assert notice["text"] == "billing-api v1 to production succeeded"

    second = await sync_to_async(operations.start_deploy)(service, "production", "v2", runner=Deploy.Runner.EXTERNAL)
    started = await sock.recv_until("notice")
    assert started["id"] == f"{second.pk}:running" and started["event"] == "started"
    await sock.close()


async def test_a_notice_published_twice_reaches_dashboards_once(engineer, service):
    deploy = await sync_to_async(operations.start_deploy)(service, "production", "v1", runner=Deploy.Runner.EXTERNAL)
    sock = await Socket.open("/ws/dashboard/", engineer)
    await sock.recv()
    from deploys.models import DeployEvent
    from deploys.summary import deploy_summary

    @sync_to_async
    def republish():
        row = DeployEvent.objects.filter(deploy=deploy).last()
        d = Deploy.objects.select_related("service", "environment").get(pk=deploy.pk)
        notice = {"id": f"{deploy.pk}:running", "event": "started", "text": "again"}
        publisher.publish_batch(deploy.pk, [row], deploy_summary(d), True, [notice])

    await republish()  # the start notice was already sent when the deploy began
    frame = await sock.recv()
    assert frame["type"] == "summary"
    await sock.send({"action": "ping"})
    assert (await sock.recv())["type"] == "pong"  # no notice came between
    await sock.close()
