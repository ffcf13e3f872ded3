"""Faults in the middle of a deploy: Redis restarts, the Celery worker is SIGKILLed. Browsers must end
with every event exactly once; a deploy whose runner vanished must end `interrupted`."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.stack.wsclient import DeployFollower, assert_exactly_once


async def test_redis_restart_mid_deploy_loses_and_duplicates_nothing(herald_stack, session_cookie):
    stack = herald_stack
    deploy_id = stack.start_deploy("steady")
    follower = DeployFollower(stack, session_cookie, deploy_id)
    task = asyncio.create_task(follower.run(timeout=90))
    await follower.wait_for_events(10)
    started = time.monotonic()
    await asyncio.to_thread(stack.redis.restart)  # every connection drops, every key is gone
    print(f"redis restarted in {time.monotonic() - started:.2f} s at event {follower.last_seq}")
    await task
    # How the deploy ends is the app's choice (Celery cancels a late-acked task whose broker connection
    # dropped, and housekeeping then marks it interrupted); what the bundle guarantees is the stream.
    status, stored = await asyncio.to_thread(stack.wait_deploy, deploy_id, {"succeeded", "interrupted"}, 60)
    print(f"deploy after the Redis restart ended {status} with {stored} events")
    assert follower.final_status == status
    assert_exactly_once(follower, stored)
    await asyncio.to_thread(stack.wait_healthy, 30)
    # Celery's worker may exit after losing Redis ("Unrecoverable error"); supervisor restarts it.
    programs = await asyncio.to_thread(stack.wait_programs_running, 90)
    print(f"after the Redis restart: {programs}")


async def test_sigkilled_worker_leaves_the_deploy_interrupted(herald_stack, session_cookie):
    stack = herald_stack
    deploy_id = stack.start_deploy("sleeper")
    await asyncio.to_thread(stack.wait_deploy, deploy_id, {"running"}, 60)
    follower = DeployFollower(stack, session_cookie, deploy_id)
    task = asyncio.create_task(follower.run(timeout=90))
    await follower.wait_for_events(3)
    killed = await asyncio.to_thread(stack.signal_program, "worker", signal.SIGKILL)
    started = time.monotonic()
    await task
    print(f"interrupted {time.monotonic() - started:.1f} s after SIGKILL of worker pid {killed}")
    assert follower.final_status == "interrupted"
    status, stored = await asyncio.to_thread(stack.deploy_state, deploy_id)
    assert status == "interrupted"
    assert_exactly_once(follower, stored)
    # supervisor brought the worker back
    programs = await asyncio.to_thread(stack.wait_programs_running, 60)
    assert programs["worker"][1] != killed
