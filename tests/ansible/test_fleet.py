"""The Ansible fleet on real systemd hosts: provision, idempotence, deploys, rollback, Redis exposure.

The tests share one fleet (tests/ansible/fleet.py) and run in file order, each building on the state
the previous one left: provision → deploy A → deploy B under load → broken release → rollback.
Every operator command is the runbook's (`make provision|deploy|rollback ENV=test ...`).
"""

from __future__ import annotations

from .fleet import changed_tasks, recap


def test_site_converges(fleet):
    out = fleet.make("provision").stdout
    hosts = recap(out)
    assert set(hosts) == {"db1", "app1", "app2"}, out[-3000:]
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in hosts.values()), out[-3000:]


def test_site_second_run_changes_nothing(fleet):
    out = fleet.make("provision").stdout
    hosts = recap(out)
    assert set(hosts) == {"db1", "app1", "app2"}
    assert {name: h["changed"] for name, h in hosts.items()} == {"db1": 0, "app1": 0, "app2": 0}, changed_tasks(out)
