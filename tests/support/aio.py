"""Run a coroutine to completion from a synchronous test, whatever else the test process is doing.

`asyncio.run()` refuses to start while another event loop runs in the calling thread, and
Playwright's session-scoped sync browser (tests/web) keeps one running in the main thread for the
rest of the session. A fresh thread has no loop, so the coroutine gets its own there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() in a thread of its own; returns the result or raises what the coroutine raised."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coroutine).result()
