"""The watcher list in Redis (app/deploys/watchers.py), against a real redis-server."""

from __future__ import annotations

import pytest

from deploys import redis as herald_redis
from deploys import watchers


@pytest.fixture
def clock(monkeypatch):
    """watchers' view of time, moved by hand to age sockets past STALE_SECONDS."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(watchers.time, "time", lambda: now[0])
    return now


def test_counts_users_not_sockets_and_names_them_in_order():
    watchers.seen(7, "specific.a!1", "walt")
    watchers.seen(7, "specific.a!2", "walt")  # a second tab
    frame = watchers.seen(7, "specific.b!1", "rita")
    assert frame == {"type": "watchers", "count": 2, "users": ["rita", "walt"]}
    assert watchers.seen(8, "specific.c!1", "olga")["users"] == ["olga"]  # deploys are separate


def test_a_user_stays_listed_until_their_last_socket_closes():
    watchers.seen(7, "specific.a!1", "walt")
    watchers.seen(7, "specific.a!2", "walt")
    watchers.seen(7, "specific.b!1", "rita")
    assert watchers.gone(7, "specific.a!1", "walt")["users"] == ["rita", "walt"]
    assert watchers.gone(7, "specific.a!2", "walt") == {"type": "watchers", "count": 1, "users": ["rita"]}
    assert watchers.gone(7, "specific.b!1", "rita") == {"type": "watchers", "count": 0, "users": []}


def test_repeated_pings_and_closes_count_once():
    for _ in range(3):
        watchers.seen(7, "specific.a!1", "walt")
    watchers.gone(7, "specific.b!9", "rita")  # never seen: must not push anyone's count below zero
    assert watchers.gone(7, "specific.a!1", "walt")["count"] == 0
    assert watchers.gone(7, "specific.a!1", "walt")["count"] == 0  # a second close changes nothing
    assert watchers.seen(7, "specific.c!1", "rita")["users"] == ["rita"]


def test_a_socket_that_stops_pinging_drops_out(clock):
    watchers.seen(7, "specific.dead!1", "walt")  # its daphne was killed: no close will come
    watchers.seen(7, "specific.a!1", "walt")
    watchers.seen(7, "specific.b!1", "rita")
    clock[0] += watchers.STALE_SECONDS - 1
    watchers.seen(7, "specific.a!1", "walt")  # walt's live tab pings; rita's socket goes quiet
    clock[0] += 2
    assert watchers.seen(7, "specific.c!1", "olga") == {"type": "watchers", "count": 2, "users": ["olga", "walt"]}
    # The dead socket was swept, so walt's live tab is now his only one.
    assert watchers.gone(7, "specific.a!1", "walt")["users"] == ["olga"]


def test_a_swept_socket_that_pings_again_counts_again(clock):
    watchers.seen(7, "specific.a!1", "walt")
    clock[0] += watchers.STALE_SECONDS + 1
    assert watchers.seen(7, "specific.b!1", "rita")["users"] == ["rita"]
    assert watchers.seen(7, "specific.a!1", "walt")["users"] == ["rita", "walt"]
    assert watchers.gone(7, "specific.a!1", "walt")["users"] == ["rita"]


def test_names_are_capped_but_the_count_is_not():
    for i in range(watchers.MAX_NAMES + 5):
        frame = watchers.seen(7, f"specific.a!{i}", f"user{i:02d}")
    assert frame["count"] == watchers.MAX_NAMES + 5
    assert frame["users"] == [f"user{i:02d}" for i in range(watchers.MAX_NAMES)]


def test_unicode_usernames_and_bars_in_them_survive():
    watchers.seen(7, "specific.a!1", "zoë|ops")
    frame = watchers.seen(7, "specific.b!1", "ana")
    assert frame["users"] == ["ana", "zoë|ops"]
    assert watchers.gone(7, "specific.a!1", "zoë|ops")["users"] == ["ana"]


def test_the_keys_expire_when_nobody_is_left_to_refresh_them():
    watchers.seen(7, "specific.a!1", "walt")
    client = herald_redis.client()
    for suffix in ("sockets", "counts", "names"):
        assert 0 < client.ttl(f"herald:watchers:7:{suffix}") <= watchers.STALE_SECONDS * 2


def test_the_script_is_loaded_again_after_a_redis_restart():
    watchers.seen(7, "specific.a!1", "walt")
    herald_redis.client().script_flush()  # what a restarted Redis has: no cached scripts
    assert watchers.seen(7, "specific.b!1", "rita")["users"] == ["rita", "walt"]


def test_many_sockets_sweep_in_bounded_steps(clock):
    pipe = herald_redis.client().pipeline()
    for i in range(watchers.SWEEP_AT_MOST * 2 + 10):
        pipe.zadd("herald:watchers:7:sockets", {f"specific.x!{i}|walt": clock[0]})
    pipe.hset("herald:watchers:7:counts", "walt", watchers.SWEEP_AT_MOST * 2 + 10)
    pipe.zadd("herald:watchers:7:names", {"walt": 0})
    pipe.execute()
    clock[0] += watchers.STALE_SECONDS + 1
    assert watchers.seen(7, "specific.b!1", "rita")["users"] == ["rita", "walt"]  # 500 swept, 510 left
    assert watchers.seen(7, "specific.b!1", "rita")["users"] == ["rita", "walt"]  # 10 left
    assert watchers.seen(7, "specific.b!1", "rita")["users"] == ["rita"]
    assert herald_redis.client().zcard("herald:watchers:7:sockets") == 1


def test_one_run_applies_many_changes_in_order():
    frame, _ = watchers.update(
        7,
        [("seen", "specific.a!1", "walt"), ("seen", "specific.b!1", "rita"), ("gone", "specific.a!1", "walt")],
    )
    assert frame == {"type": "watchers", "count": 1, "users": ["rita"]}
    frame, _ = watchers.update(7, [("seen", f"specific.c!{i}", f"user{i}") for i in range(3)])
    assert frame["count"] == 4


def test_the_broadcast_permit_is_granted_once_per_window_and_only_when_asked(clock):
    assert watchers.update(7, [("seen", "specific.a!1", "walt")])[1] is False  # not asked: not taken
    assert watchers.update(7, [("seen", "specific.b!1", "rita")], broadcast=True)[1] is True
    assert watchers.update(7, [("gone", "specific.b!1", "rita")], broadcast=True)[1] is False  # within 2 s
    assert watchers.update(8, [("seen", "specific.c!1", "olga")], broadcast=True)[1] is True  # per deploy
    assert 0 < herald_redis.client().pttl("herald:watchers:7:sent") <= watchers.BROADCAST_EVERY_MS
