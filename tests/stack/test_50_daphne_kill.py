"""SIGKILL the daphne process that holds a watching browser: supervisor restarts it, the browser
reconnects with after=<last seq> and ends with every event exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from tests.stack.wsclient import DeployFollower, assert_exactly_once


async def test_sigkilled_daphne_restarts_and_the_client_resumes_without_loss(herald_stack, session_cookie):
    stack = herald_stack
    # Other sockets stay open during the session (the idle test's, for one), so "the daphne with the
    # most connections" may be the wrong one: the victim is the one whose count the follower raised.
    before = await asyncio.to_thread(stack.daphne_connections)
    deploy_id = stack.start_deploy("steady-b")
    follower = DeployFollower(stack, session_cookie, deploy_id)
    task = asyncio.create_task(follower.run(timeout=90))
    await follower.wait_for_events(5)
    after = await asyncio.to_thread(stack.daphne_connections)
    gained = [pid for pid, n in after.items() if n > before.get(pid, 0)]
    assert len(gained) == 1, f"cannot tell which daphne holds the follower: before {before}, after {after}"
    victim = gained[0]
    names = {pid: name for name, (_, pid) in (await asyncio.to_thread(stack.programs)).items()}
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    await task
    assert follower.connects >= 2, f"the socket never dropped (drops: {follower.drops})"
    _status, stored = await asyncio.to_thread(stack.wait_deploy, deploy_id, {"succeeded"}, 60)
    assert_exactly_once(follower, stored)
    programs = await asyncio.to_thread(stack.wait_programs_running, 30)
    name = names[victim]
    assert programs[name][0] == "RUNNING" and programs[name][1] != victim
    print(f"{name} (pid {victim}) killed; client reconnected {follower.connects - 1}×, "
          f"deploy done {time.monotonic() - killed_at:.1f} s later")
