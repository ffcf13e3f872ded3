"""A mergeable latency histogram: log-spaced buckets (2 % wide), so client processes can be summed."""

from __future__ import annotations

import math

STEP = math.log(1.02)
FLOOR_MS = 0.01  # everything at or below 10 µs lands in bucket 0


class Hist:
    def __init__(self, counts: dict[int, int] | None = None):
        self.counts: dict[int, int] = dict(counts or {})
        self.n = sum(self.counts.values())
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        b = 0 if ms <= FLOOR_MS else int(math.log(ms / FLOOR_MS) / STEP) + 1
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: Hist) -> Hist:
        for b, c in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + c
        self.n += other.n
        self.max_ms = max(self.max_ms, other.max_ms)
        return self

    @staticmethod
    def upper(b: int) -> float:
        return FLOOR_MS if b == 0 else FLOOR_MS * math.exp(b * STEP)

    def pct(self, p: float) -> float | None:
        """The p-th percentile (upper edge of its bucket, so at most 2 % high); None when empty."""
        if not self.n:
            return None
        rank = math.ceil(self.n * p / 100)
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(self.upper(b), self.max_ms)
        return self.max_ms

    def summary(self) -> dict:
        def r(v):
            return None if v is None else round(v, 2)

        return {
            "n": self.n,
            "p50": r(self.pct(50)),
            "p95": r(self.pct(95)),
            "p99": r(self.pct(99)),
            "max": r(self.max_ms) if self.n else None,
        }

    def to_json(self) -> dict:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "max": self.max_ms}

    @classmethod
    def from_json(cls, data: dict) -> Hist:
        h = cls({int(k): v for k, v in data.get("counts", {}).items()})
        h.max_ms = data.get("max", 0.0)
        return h
