"""A private PostgreSQL cluster on a free loopback port: the one `make test` uses.

Started and stopped by scripts/lib/test-postgres.sh, so the benchmark and the test suite share one
way to run a throwaway cluster (as root it runs as Debian's `postgres` user). That script turns fsync
and synchronous_commit off (a test cluster is thrown away), so the ingest figures measure Herald's
transaction without the disk flush of a commit; docs/benchmarks.md says so beside them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/lib/test-postgres.sh"


class Postgres:
    # What scripts/lib/test-postgres.sh runs with; recorded in the run's settings.
    settings = {"fsync": "off", "synchronous_commit": "off", "max_connections": 200}

    def __init__(self):
        self.parent = Path(tempfile.mkdtemp(prefix="herald-bench-pg-"))
        self.dir = self.parent / "pg"
        self.url = ""

    def _script(self, action: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), action, str(self.dir)], check=True, capture_output=True, text=True, timeout=120
        )
        return done.stdout.strip()

    def start(self) -> Postgres:
        self.url = self._script("start").splitlines()[-1]
        return self

    def pids(self) -> list[int]:
        pidfile = self.dir / "data" / "postmaster.pid"
        try:
            return [int(pidfile.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []

    def stop(self) -> None:
        try:
            self._script("stop")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.parent, ignore_errors=True)

    def __enter__(self) -> Postgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
