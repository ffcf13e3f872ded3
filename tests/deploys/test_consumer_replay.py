"""deploys/consumers/replay.py: a replay read once per process, answered exactly as the database would."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deploys import operations
from deploys.consumers.replay import ReplayCache, _size
from deploys.events import NewEvent, events_after, record
from deploys.models import Deploy, Environment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deploy(service) -> Deploy:
    """An external deploy with 52 events: queued, running, then 50 log lines."""
    made = operations.start_deploy(service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL)
    record(made.pk, [NewEvent("log", {"line": f"line {i}"}) for i in range(50)])
    return made


def _log(deploy: Deploy, count: int) -> None:
    record(deploy.pk, [NewEvent("log", {"line": f"more {i}"}) for i in range(count)])


def _database(deploy: Deploy, after: int, limit: int = 1000, until: int | None = None) -> list[dict]:
    return [row.as_wire() for row in events_after(deploy.pk, after, limit, until)]


def _reads(cache: ReplayCache, deploy: Deploy, after: int, limit: int = 1000, until: int | None = None):
    """The cache's answer, and how many queries it made for it."""
    with CaptureQueriesContext(connection) as queries:
        got = cache.events_after(deploy.pk, after, limit, until)
    return got, len(queries)


def test_the_same_replay_is_read_from_the_database_once(deploy):
    cache = ReplayCache()
    first, first_queries = _reads(cache, deploy, 20, until=52)
    again, again_queries = _reads(cache, deploy, 20, until=52)
    assert first == again == _database(deploy, 20)
    assert [e["seq"] for e in again] == list(range(21, 53))
    assert (first_queries, again_queries) == (1, 0)


def test_a_later_resume_inside_the_run_is_answered_from_it(deploy):
    cache = ReplayCache()
    cache.events_after(deploy.pk, 10, 1000, until=52)
    got, queries = _reads(cache, deploy, 40, until=45)
    assert got == _database(deploy, 40, until=45) and queries == 0
    paged, queries = _reads(cache, deploy, 10, limit=5, until=52)
    assert [e["seq"] for e in paged] == [11, 12, 13, 14, 15] and queries == 0


def test_events_stored_above_the_run_are_read_and_joined_to_it(deploy):
    cache = ReplayCache()
    cache.events_after(deploy.pk, 30, 1000, until=52)
    _log(deploy, 8)  # seqs 53..60
    got, queries = _reads(cache, deploy, 40, until=60)
    assert got == _database(deploy, 40) and queries == 1  # only 52 < seq ≤ 60 was read
    again, queries = _reads(cache, deploy, 30, until=60)
    assert again == _database(deploy, 30) and queries == 0


def test_without_until_the_database_is_asked_for_anything_newer(deploy):
    cache = ReplayCache()
    cache.events_after(deploy.pk, 40, 1000, until=52)
    _log(deploy, 3)
    got, queries = _reads(cache, deploy, 45)
    assert got == _database(deploy, 45) and [e["seq"] for e in got][-1] == 55
    assert queries == 1


def test_a_resume_below_the_run_is_read_and_the_two_runs_join(deploy):
    cache = ReplayCache()
    cache.events_after(deploy.pk, 40, 1000, until=52)
    low, queries = _reads(cache, deploy, 5, until=52)
    assert low == _database(deploy, 5) and queries == 1
    both, queries = _reads(cache, deploy, 5, until=52)
    assert both == low and queries == 0


def test_a_run_keeps_only_the_newest_events(deploy):
    cache = ReplayCache(events_per_deploy=10)
    cache.events_after(deploy.pk, 0, 1000, until=52)
    recent, queries = _reads(cache, deploy, 42, until=52)
    assert recent == _database(deploy, 42) and queries == 0
    older, queries = _reads(cache, deploy, 41, until=52)  # seq 42 was dropped from the run
    assert older == _database(deploy, 41) and queries == 1


def test_the_least_recently_used_deploy_goes_first(service, deploy):
    cache = ReplayCache(deploys=1)
    Environment.objects.create(slug="staging")
    other = operations.start_deploy(service, "staging", "v2", started_by="ci", runner=Deploy.Runner.EXTERNAL)
    cache.events_after(deploy.pk, 0, 1000, until=52)
    cache.events_after(other.pk, 0, 1000, until=2)
    got, queries = _reads(cache, deploy, 0, until=52)
    assert got == _database(deploy, 0) and queries == 1


def test_a_database_behind_the_run_drops_it(deploy):
    """A restore to an earlier state: the deploy's row has fewer events than the run holds."""
    cache = ReplayCache()
    cache.events_after(deploy.pk, 0, 1000, until=52)
    cache.forget_beyond(deploy.pk, 52)
    assert _reads(cache, deploy, 0, until=52)[1] == 0
    cache.forget_beyond(deploy.pk, 51)
    assert _reads(cache, deploy, 0, until=52)[1] == 1


def test_a_run_that_grows_past_its_size_drops_its_oldest(deploy):
    cache = ReplayCache(events_per_deploy=10)
    cache.events_after(deploy.pk, 45, 1000, until=52)
    _log(deploy, 8)  # seqs 53..60: joined to the run, which keeps 51..60
    assert _reads(cache, deploy, 45, until=60) == (_database(deploy, 45), 1)  # only 53..60 read
    assert _reads(cache, deploy, 50, until=60) == (_database(deploy, 50), 0)
    assert _reads(cache, deploy, 49, until=60)[1] == 1


def test_the_memory_budget_keeps_the_most_recent_deploys_only(service, deploy):
    one_deploy = sum(_size(e) for e in _database(deploy, 0))
    cache = ReplayCache(budget=one_deploy * 3 // 2)
    Environment.objects.create(slug="staging")
    other = operations.start_deploy(service, "staging", "v2", started_by="ci", runner=Deploy.Runner.EXTERNAL)
    record(other.pk, [NewEvent("log", {"line": f"other {i}"}) for i in range(50)])
    cache.events_after(deploy.pk, 0, 1000, until=52)
    assert _reads(cache, deploy, 0, until=52)[1] == 0
    cache.events_after(other.pk, 0, 1000, until=52)
    assert _reads(cache, other, 0, until=52)[1] == 0
    assert _reads(cache, deploy, 0, until=52)[1] == 1  # pushed out to keep within the budget
