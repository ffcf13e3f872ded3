"""A deploy's summary read once for every socket of this daphne process that is waiting for it.

After a restart the sockets of a deploy come back together, and each one read the same deploy row
with its service, environment and steps: the deploy and its summary were 32 % of daphne's CPU in a
reconnect storm of 10,000 sockets (py-spy, docs/benchmarks.md), while the database thread, which
runs every lookup of the process one after the other, had hundreds of them queued.

A socket may use a read that *started after it joined the deploy's group* (consumers/deploy.py
joins before it reads): whatever such a read missed was stored after it started, so after the
socket joined, and arrives in the live messages held for the socket — the same guarantee a read of
its own gives. So a read made for one socket serves every socket whose join came before it; a
socket that joined later reads again. With a queue of lookups that is one read per turn of the
queue, not one per socket; with no queue every socket still reads for itself.

The reads live on daphne's database thread (the callers run inside database_sync_to_async), the
lock only keeps them sound if a caller ever runs elsewhere. Callers must not change the summary:
it is shared between sockets.
"""

from __future__ import annotations

import threading
import time

from ..models import Deploy
from ..summary import deploy_summary

# Only the latest read of a deploy is kept, and only the deploys whose sockets are connecting now
# need one: a read older than every pending join serves nobody.
DEPLOYS = 64


def read_summary(deploy_id: int) -> dict | None:
    """The deploy's summary as stored now, or None if there is no such deploy."""
    # order_by() and a slice, not first(): ordering one row by pk (or Deploy's default ordering) only
    # costs Django compile time, ≈ 0.3 ms of daphne CPU per connect (docs/benchmarks.md).
    found = list(Deploy.objects.select_related("service", "environment").filter(pk=deploy_id).order_by()[:1])
    return deploy_summary(found[0]) if found else None


class SummaryReads:
    """The latest summary read of each recently opened deploy, with the moment its read started."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._latest: dict[int, tuple[float, dict | None]] = {}  # deploy id → (read started, summary)

    def since(self, deploy_id: int, joined_at: float) -> dict | None:
        """The deploy's summary from a read that started after `joined_at` (the clock's reading once
        the socket's join had taken effect): a shared one if there is one, else a new read."""
        with self._lock:
            latest = self._latest.get(deploy_id)
            if latest is not None and latest[0] > joined_at:
                return latest[1]
            started = self.clock()
            summary = read_summary(deploy_id)
            self._latest.pop(deploy_id, None)  # re-inserted last: the dict stays in order of reads
            self._latest[deploy_id] = (started, summary)
            while len(self._latest) > DEPLOYS:
                del self._latest[next(iter(self._latest))]
            return summary

    def clear(self) -> None:
        with self._lock:
            self._latest.clear()


summary_reads = SummaryReads()
