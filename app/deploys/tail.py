"""Follow a growing file the way `tail -F` does: new complete lines, across truncation and rotation.

No Django here; the log-follow Celery task drives it.
"""

from __future__ import annotations

import os


class FileFollower:
    """Yields lines appended to `path` since the last read.

    - Truncated in place (size shrank below our offset): start again from the top.
    - Rotated (the path now names another inode): drain the old file, then continue with the new one
      from its start, so lines written just before and after a rotation are all seen.
    """

    MAX_PENDING = 64 * 1024  # a partial line longer than this is passed on as is

    def __init__(self, path: str, backlog_lines: int = 20):
        self.path = path
        self.handle = None
        self.inode = None
        self.partial = b""
        self._open(seek_end=True)
        self.backlog = self._last_lines(backlog_lines) if self.handle else []

    def _open(self, seek_end: bool) -> None:
        try:
            self.handle = open(self.path, "rb")
        except FileNotFoundError:
            self.handle, self.inode = None, None
            return
        self.inode = os.fstat(self.handle.fileno()).st_ino
        if seek_end:
            self.handle.seek(0, os.SEEK_END)

    def _last_lines(self, count: int) -> list[str]:
        end = self.handle.tell()
        start = max(0, end - 64 * 1024)
        self.handle.seek(start)
        data = self.handle.read(end - start)
        lines = data.split(b"\n")[:-1]
        if start > 0:
            lines = lines[1:]  # the first one is probably cut
        return [ln.decode("utf-8", errors="replace") for ln in lines[-count:]] if count else []

    def read_lines(self) -> list[str]:
        """Every complete line appended since the last call (plus the backlog on the first call)."""
        out, self.backlog = self.backlog, []
        if self.handle is None:
            self._open(seek_end=False)  # the file appeared (e.g. after rotation with delay)
            if self.handle is None:
                return out
        out += self._drain()
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return out  # rotated away, new file not there yet: keep the old handle for now
        if stat.st_ino != self.inode:
            out += self._drain(final=True)
            self.handle.close()
            self._open(seek_end=False)
            if self.handle:
                out += self._drain()
        elif stat.st_size < self.handle.tell():
            self.handle.seek(0)
            self.partial = b""
            out += self._drain()
        return out

    def _drain(self, final: bool = False) -> list[str]:
        data = self.partial + self.handle.read()
        *lines, self.partial = data.split(b"\n")
        if self.partial and (final or len(self.partial) > self.MAX_PENDING):
            lines.append(self.partial)
            self.partial = b""
        return [ln.decode("utf-8", errors="replace") for ln in lines]

    def close(self) -> None:
        if self.handle:
            self.handle.close()
