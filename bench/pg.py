"""A private PostgreSQL cluster on a free loopback port, configured as a production host would be.

PostgreSQL refuses to run as root, so as root the cluster runs as Debian's `postgres` user
(`runuser -u postgres --`). fsync and synchronous_commit stay on (production's defaults), so the
ingest figures include a real commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.servers import free_port


def _bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1]


class Postgres:
    def __init__(self, max_connections: int = 200):
        self.bin = _bin()
        self.dir = Path(tempfile.mkdtemp(prefix="herald-bench-pg-"))
        self.port = free_port()
        self.max_connections = max_connections
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        self.started = False

    @property
    def url(self) -> str:
        return f"postgres://herald@127.0.0.1:{self.port}/herald"

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_owner, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        if self.as_owner:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "herald", "--auth=trust", "-E", "UTF8")
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections} -c shared_buffers=256MB"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "start",
            "-o",
            opts,
        )
        self.started = True
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "herald", "herald")
        return self

    def pids(self) -> list[int]:
        pidfile = self.dir / "data" / "postmaster.pid"
        try:
            return [int(pidfile.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []

    def stop(self) -> None:
        if self.started:
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
            except subprocess.SubprocessError:
                for pid in self.pids():
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
