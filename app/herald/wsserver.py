"""daphne on uvloop, with prepared frames: the WebSocket server supervisor runs for /ws/
(deploy/supervisor/supervisord.conf.j2).

    python -m herald.wsserver <daphne's own arguments> herald.asgi:application

daphne runs Twisted's asyncio reactor on a new event loop of the current policy. With the standard
library's loop every frame sent re-registers its socket twice — Twisted starts writing, writes, stops
— and the selectors module rebuilds a namedtuple and calls epoll_ctl each time: 31 % of daphne's
Python time while fanning out (py-spy, docs/benchmarks.md). uvloop does the same bookkeeping in C.
The policy has to be set before daphne.server is imported, which creates the loop at import time.

Every WebSocket scope also carries the herald.prepared_frames extension (herald/prepared_frames.py):
the consumers frame a live batch once and write the same bytes to each socket.

The garbage collector skips the start-up heap from the first socket on (herald/heap.py), and the
whole heap from the moment daphne is told to stop.

Each WebSocket protocol reads autobahn's options from daphne's factory instead of copying them
(FactoryOptionsProtocol).
"""

import asyncio
import gc
import logging
from functools import partial

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402
from daphne.server import Server  # noqa: E402
from daphne.ws_protocol import WebSocketProtocol  # noqa: E402
from twisted.internet import defer, main, reactor, tcp  # noqa: E402  (reactor: the asyncio one daphne.server installed)
from twisted.python import failure  # noqa: E402

from herald import prepared_frames  # noqa: E402
from herald.heap import freeze_startup_heap  # noqa: E402

log = logging.getLogger("herald.wsserver")


class FactoryOptionsProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol, reading autobahn's options from the factory that built it.

    On every new connection autobahn copies some forty options (CONFIG_ATTRS) from the factory onto
    the protocol and pretty-prints the list of them for a debug line — formatted whether or not debug
    logging is on: 4.6 % of daphne's CPU in a reconnect storm (py-spy, docs/benchmarks.md), plus forty
    entries in every socket's `__dict__`. daphne sets the options once, before it listens, and never
    per connection, so reading them from the factory gives each protocol the same values.
    """

    CONFIG_ATTRS = ()  # nothing to copy, nothing to print
    _FACTORY_OPTIONS = frozenset(WebSocketProtocol.CONFIG_ATTRS)

    def __getattr__(self, name):
        # Only reached for names not set on the instance or its class: an option, unless one was set here.
        if name in FactoryOptionsProtocol._FACTORY_OPTIONS:
            return getattr(self.factory, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class HeraldServer(Server):
    """daphne's server, offering the prepared-frames extension to every WebSocket application, with
    FactoryOptionsProtocol for its WebSocket connections."""

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory):
        # Server.run() creates the factory and sets its options before it listens: no connection has
        # been built from it yet.
        factory.protocol = FactoryOptionsProtocol
        self._ws_factory = factory

    def create_application(self, protocol, scope):
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[prepared_frames.EXTENSION] = {
                "prepare": prepared_frames.prepare,
                "send": partial(prepared_frames.send, protocol),
            }
        return super().create_application(protocol, scope)

    def kill_all_applications(self):
        """Cancel every application, wait for them, then leave the connections for the kernel to close
        when the process exits (the "before shutdown" step daphne's Server.run registers).

        daphne's own version reads each connection's application_instance, but a connection that has
        none yet — an HTTP request that just became a WebSocket, not reaped until the next
        application_checker round — raised KeyError and left the rest uncancelled: a storm always
        has some. After it Twisted calls connectionLost on every connection, one by one — autobahn's
        and daphne's bookkeeping, an access-log line each — though nothing is left to tell them: the
        applications are gone, no close frame is sent either way, and the browser resumes by seq.
        With 5,000 sockets that was half of a stop's CPU while the clients waited to reconnect
        (docs/benchmarks.md, 7 December). The listeners are still closed as before.
        """
        running = [
            app
            for app in (details.get("application_instance") for details in self.connections.values())
            if app is not None and not app.done()
        ]
        for app in running:
            app.cancel()
        log.info("Killed %i pending application instances", len(running))
        stopped = defer.Deferred.fromFuture(asyncio.gather(*running, return_exceptions=True))
        stopped.addCallback(leave_connections_to_the_kernel)
        return stopped

    def run(self):
        # daphne's CLI imports the application before it builds the server, and no socket is open yet:
        # what exists now is Django, the app, Twisted and autobahn (herald/heap.py says why freeze it).
        frozen = freeze_startup_heap()
        log.info("starting: %d objects kept out of garbage collection", frozen)
        super().run()


def stop_collecting_old_objects() -> None:
    """On the way out, keep the cyclic garbage collector off everything that exists already.

    Shutting down, daphne cancels every socket's application and Twisted closes every connection —
    a burst of allocations that sets off full collections, each walking every object of every socket,
    and the interpreter's exit adds more: with 5,000 sockets a stop took 8.1 s, with 1,000 sockets
    2.5 s of a 3.3 s stop was gc_collect_main (perf; docs/benchmarks.md). Frozen objects are still
    freed by reference counting; only cycles among them are left for the process's exit to drop.
    """
    gc.freeze()
    # Not gc.get_freeze_count(): it walks every frozen object, 0.15 s with 5,000 sockets.
    log.info("shutting down: the heap is kept out of garbage collection")


def leave_connections_to_the_kernel(_=None) -> None:
    """Close the listeners as Twisted would (a unix socket's file and lock removed, so "no file" still
    means "not listening" to the reload probes), and take every connection off the reactor without
    closing it: the kernel closes them when the process exits (HeraldServer.kill_all_applications)."""
    left = reactor.removeAll()
    listeners = [selectable for selectable in left if isinstance(selectable, tcp.Port)]  # unix.Port is one too
    for listener in listeners:
        listener.connectionLost(failure.Failure(main.CONNECTION_DONE))
    log.info("shutting down: %d connections left for the kernel to close", len(left) - len(listeners))


if __name__ == "__main__":
    # Added before daphne's own trigger (Server.run), so it runs before the applications are cancelled.
    reactor.addSystemEventTrigger("before", "shutdown", stop_collecting_old_objects)
    CommandLineInterface.server_class = HeraldServer
    CommandLineInterface.entrypoint()
