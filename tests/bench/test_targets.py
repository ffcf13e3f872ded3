"""bench.targets: what a target is asked to run, before any stack starts."""

from __future__ import annotations

from bench.targets import HeraldTarget


def test_a_set_process_count_reaches_the_stack_as_well_as_the_bundle():
    # The stack waits for every daphne socket it expects: a count given only to the bundle left it
    # waiting 120 s for a daphne-1 that was never configured, then failed the probe.
    target = HeraldTarget(extra_vars={"herald_daphne_processes": "1", "herald_uwsgi_processes": "3"})
    assert (target.daphne, target.uwsgi) == (1, 3)
    assert "herald_daphne_processes" not in target.extra_vars  # start() renders the one count


def test_counts_default_to_the_shipped_two_and_two():
    target = HeraldTarget()
    assert (target.daphne, target.uwsgi) == (2, 2)
