"""daphne on uvloop: the WebSocket server supervisor runs for /ws/ (deploy/supervisor/supervisord.conf.j2).

    python -m herald.wsserver <daphne's own arguments> herald.asgi:application

daphne runs Twisted's asyncio reactor on a new event loop of the current policy. With the standard
library's loop every frame sent re-registers its socket twice — Twisted starts writing, writes, stops
— and the selectors module rebuilds a namedtuple and calls epoll_ctl each time: 31 % of daphne's
Python time while fanning out (py-spy, docs/benchmarks.md). uvloop does the same bookkeeping in C.
The policy has to be set before daphne.server is imported, which creates the loop at import time.
"""

import asyncio

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402

if __name__ == "__main__":
    CommandLineInterface.entrypoint()
