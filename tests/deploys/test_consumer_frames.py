"""deploys/consumers/frames.py's token bucket: refusing beyond the rate (allow) and waiting for it (take)."""

from __future__ import annotations

import types

import pytest

from deploys.consumers import frames


@pytest.fixture
def clock(monkeypatch):
    now = types.SimpleNamespace(t=1000.0)
    monkeypatch.setattr(frames, "time", types.SimpleNamespace(monotonic=lambda: now.t))
    return now


def test_allow_refuses_beyond_the_burst_until_the_bucket_refills(clock):
    limit = frames.RateLimit(rate=2, burst=3)
    assert [limit.allow() for _ in range(4)] == [True, True, True, False]
    clock.t += 0.5  # one token back at 2 a second
    assert [limit.allow(), limit.allow()] == [True, False]


def test_take_is_free_within_the_burst_then_spaces_callers_at_the_rate(clock):
    limit = frames.RateLimit(rate=10, burst=2)
    assert [limit.take(), limit.take()] == [0.0, 0.0]
    assert limit.take() == pytest.approx(0.1)  # the third waits for the next token
    clock.t += 0.1  # it waited as told
    assert limit.take() == pytest.approx(0.1)  # and so does the one after it: 10 a second, no more
    clock.t += 1.0  # a quiet second refills the burst, and no more than the burst
    assert [limit.take(), limit.take()] == [0.0, 0.0]
    assert limit.take() > 0
