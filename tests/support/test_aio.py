"""run_coroutine must work exactly where asyncio.run() does not: inside a running event loop."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.aio import run_coroutine


async def answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def fail() -> None:
    raise LookupError("raised inside the coroutine")


def test_runs_while_this_thread_has_a_running_loop():
    async def outer() -> int:
        refused = answer(0)
        with pytest.raises(RuntimeError, match="running event loop"):
            asyncio.run(refused)  # what broke the Docker tests after the browser tests
        refused.close()  # never started; closing it keeps "never awaited" out of the output
        return run_coroutine(answer(42))

    assert asyncio.run(outer()) == 42


def test_the_coroutines_exception_reaches_the_caller():
    with pytest.raises(LookupError, match="inside the coroutine"):
        run_coroutine(fail())
