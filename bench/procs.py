"""Process-tree CPU time and RSS from /proc: what the servers spent, independent of wall-clock noise."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, cpu seconds, rss bytes) or None when the process is gone.

    The CPU is the process's own user + system time plus that of its children it has reaped: a uWSGI
    worker recycled after max-requests, or the PostgreSQL backend of its connection, ends during a step,
    and without its parent's share its whole CPU would vanish from the step's sum."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / TICK, int(fields[21]) * PAGE


def tree(roots: list[int]) -> list[int]:
    """The roots and all their descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st:
                children.setdefault(st[0], []).append(int(entry.name))
    out, todo = [], [r for r in roots if r]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def usage(roots: list[int]) -> dict:
    """{"cpu_s": total CPU seconds, "rss": total RSS bytes, "procs": n} over the process trees."""
    cpu = rss = n = 0
    for pid in tree(roots):
        st = _stat(pid)
        if st:
            cpu += st[1]
            rss += st[2]
            n += 1
    return {"cpu_s": cpu, "rss": rss, "procs": n}
