"""Stored events as this daphne process last read them, so that a replay is read from the database
once per process instead of once per socket.

After a restart every socket of a deploy comes back with nearly the same `?after=`, and each one used
to read the same few hundred rows, build model instances and format their timestamps again: 28 % of
daphne's CPU in a reconnect storm of 4,000 sockets (docs/benchmarks.md). Stored events never change:
`record()` numbers them under the deploy's row lock and commits them in seq order, so once a read of
`seq > a` has returned rows up to seq t, no other row in (a, t] can appear later. A run remembers such
an interval per deploy and answers any request inside it; only the part above it is read.

The cache lives on daphne's database thread (every caller is wrapped in database_sync_to_async); the
lock only keeps it sound if a caller ever runs elsewhere. Callers must not change the dicts returned:
they are shared between sockets.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from ..events import events_after

# ≥ 2 replay pages, so a storm's sockets (all resuming near the same seq) keep hitting one run.
EVENTS_PER_DEPLOY = 2000
DEPLOYS = 16
# What all runs of a process may hold, by _size(): ≈ 1 KiB per 120-byte log line (tracemalloc), so
# ≈ 16,000 such events; far fewer of the 16 KiB lines the API accepts.
BUDGET_BYTES = 16 * 2**20


def _size(event: dict) -> int:
    """An estimate of an event's memory: its dicts and small strings, plus its longer strings."""
    return 900 + sum(len(v) for v in event["data"].values() if isinstance(v, str))


class _Run:
    """Every stored event of one deploy with floor < seq ≤ top, in order (never empty)."""

    __slots__ = ("events", "floor", "seqs", "size")

    def __init__(self, floor: int, events: list[dict]):
        self.floor = floor
        self.events = events
        self.seqs = [e["seq"] for e in events]
        self.size = sum(_size(e) for e in events)

    @property
    def top(self) -> int:
        return self.seqs[-1]

    def extend(self, events: list[dict]) -> None:
        """Events right above top (floor = top when they were read)."""
        self.events.extend(events)
        self.seqs.extend(e["seq"] for e in events)
        self.size += sum(_size(e) for e in events)

    def drop_oldest(self, count: int) -> None:
        self.size -= sum(_size(e) for e in self.events[:count])
        self.floor = self.seqs[count - 1]
        del self.events[:count], self.seqs[:count]


class ReplayCache:
    def __init__(self, deploys: int = DEPLOYS, events_per_deploy: int = EVENTS_PER_DEPLOY, budget: int = BUDGET_BYTES):
        self.deploys = deploys
        self.events_per_deploy = events_per_deploy
        self.budget = budget
        self._runs: OrderedDict[int, _Run] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def events_after(self, deploy_id: int, after: int, limit: int, until: int | None = None) -> list[dict]:
        """What events.events_after() would return, as wire dicts, reading only what no run holds."""
        got, floor = [], after
        with self._lock:
            run = self._runs.get(deploy_id)
            if run is not None:
                self._runs.move_to_end(deploy_id)
            if run is not None and run.floor <= after <= run.top:
                start = bisect.bisect_right(run.seqs, after)
                end = len(run.seqs) if until is None else bisect.bisect_right(run.seqs, until)
                got = run.events[start : min(end, start + limit)]
                if len(got) == limit or (until is not None and until <= run.top):
                    return got
                floor = run.top  # all of the run above `after` was wanted; more may be stored above it
        more = self._read(deploy_id, floor, limit - len(got), until)
        self._remember(deploy_id, floor, more)
        return got + more

    def forget_beyond(self, deploy_id: int, last_seq: int) -> None:
        """The deploy's row says it has only `last_seq` events: a run above that is from a database
        that was since restored to an earlier state, so it goes."""
        with self._lock:
            run = self._runs.get(deploy_id)
            if run is not None and run.top > last_seq:
                self._drop(deploy_id)

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()
            self._size = 0

    @staticmethod
    def _read(deploy_id: int, after: int, limit: int, until: int | None) -> list[dict]:
        return [row.as_wire() for row in events_after(deploy_id, after, limit, until)]

    def _remember(self, deploy_id: int, floor: int, events: list[dict]) -> None:
        """Keep (floor, last seq of events]: joined to the deploy's run where the two overlap or touch,
        else instead of it when it reaches further."""
        if not events:
            return
        with self._lock:
            old = self._runs.pop(deploy_id, None)  # whichever run is kept goes back in as the newest
            if old is None:
                run = _Run(floor, events)
            else:
                self._size -= old.size
                if floor == old.top:  # the usual case: what was stored since
                    old.extend(events)
                    run = old
                elif floor <= old.top and old.floor <= events[-1]["seq"]:
                    by_seq = {e["seq"]: e for e in old.events}
                    by_seq.update((e["seq"], e) for e in events)
                    run = _Run(min(old.floor, floor), [by_seq[s] for s in sorted(by_seq)])
                else:
                    run = old if old.top >= events[-1]["seq"] else _Run(floor, events)
            if len(run.events) > self.events_per_deploy:
                run.drop_oldest(len(run.events) - self.events_per_deploy)
            self._runs[deploy_id] = run
            self._size += run.size
            while self._runs and (len(self._runs) > self.deploys or self._size > self.budget):
                self._drop(next(iter(self._runs)))

    def _drop(self, deploy_id: int) -> None:
        self._size -= self._runs.pop(deploy_id).size


replay_cache = ReplayCache()
