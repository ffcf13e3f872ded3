"""Celery tasks: thin wrappers that hand work to the runner, the log follower and housekeeping."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from channels.exceptions import ChannelFull

from . import operations, publisher
from . import redis as herald_redis
from .runner import deploy_runner
from .tail import FileFollower

log = logging.getLogger(__name__)

FOLLOW_POLL_SECONDS = 0.2
FOLLOW_LEASE_PREFIX = "herald:follow:"


@shared_task(name="deploys.tasks.run_deploy")
def run_deploy(deploy_id: int) -> str:
    """Run a queued deploy's steps. Idempotent: a redelivered message for a deploy that is no longer
    queued does nothing (acks_late redelivers after a worker dies)."""
    return deploy_runner.run_deploy(deploy_id)


@shared_task(name="deploys.tasks.mark_interrupted_deploys")
def mark_interrupted_deploys() -> list[int]:
    """Housekeeping (Celery beat): running deploys whose runner went silent end `interrupted`."""
    ended = operations.mark_interrupted()
    if ended:
        log.warning("marked interrupted: %s", ended)
    return ended


def follow_lease_key(follow_id: str) -> str:
    return FOLLOW_LEASE_PREFIX + follow_id


@shared_task(name="deploys.tasks.follow_log", acks_late=False)
def follow_log(follow_id: str, channel_name: str, path: str) -> str:
    """Send new lines of a whitelisted file to one socket's channel while that socket holds its lease.

    The consumer deletes the lease key when the socket closes (and refreshes its TTL while open),
    so this loop ends within FOLLOW_POLL_SECONDS of the close — cooperatively, no worker is killed.
    acks_late is off: a follow is worthless after a worker restart, the browser starts a new one.
    """
    redis = herald_redis.client()
    follower = FileFollower(path)
    reason = "lease-gone"
    try:
        while redis.exists(follow_lease_key(follow_id)):
            lines = follower.read_lines()
            if lines:
                try:
                    publisher.send_to_channel(channel_name, {"type": "log.lines", "lines": lines})
                except ChannelFull:
                    reason = "reader-stalled"  # nobody drains the channel: the socket is gone
                    break
            time.sleep(FOLLOW_POLL_SECONDS)
    finally:
        follower.close()
    return reason
