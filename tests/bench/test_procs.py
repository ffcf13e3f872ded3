"""bench.procs: a process tree's CPU includes children that ended and were reaped during the step."""

from __future__ import annotations

import subprocess
import sys

from bench.procs import usage

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
# A parent that runs one CPU-bound child to its end (and reaps it), says so, then idles: as a uWSGI master
# does with a worker recycled after max-requests.
PARENT = "\n".join(
    [
        "import subprocess, sys, time",
        f"subprocess.run([sys.executable, '-c', {BURN!r}])",
        "print('reaped', flush=True)",
        "time.sleep(60)",
    ]
)


def test_cpu_of_a_reaped_child_counts_for_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        before = usage([parent.pid])["cpu_s"]
        assert parent.stdout.readline().strip() == "reaped"
        after = usage([parent.pid])
        assert after["procs"] == 1  # the child is gone from the tree
        assert after["cpu_s"] - before >= 0.4  # yet its 0.5 s of CPU is in the sum
    finally:
        parent.kill()
        parent.wait()
