"""Fixtures for the Ansible fleet tests: build what they need, start the fleet once per session."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .fleet import ROOT, Fleet, run


def _prepare() -> None:
    """Docker engine, then the host image and the release wheelhouse side by side (both cached)."""
    # ssh: Ansible reaches the hosts the way it reaches real ones.
    run([str(ROOT / "scripts/lib/ensure-packages.sh"), "openssh-client"], timeout=300)
    run([str(ROOT / "scripts/lib/ensure-dockerd.sh")], timeout=300)
    with ThreadPoolExecutor(2) as pool:
        image = pool.submit(run, [str(ROOT / "scripts/lib/host-image.sh")], timeout=900)
        wheels = pool.submit(run, [str(ROOT / "scripts/lib/fleet-build-release.sh"), "prepare"], timeout=900)
        image.result()
        wheels.result()


@pytest.fixture(scope="session")
def fleet():
    _prepare()
    reuse = os.environ.get("HERALD_FLEET_REUSE")
    if reuse:  # debugging aid: the hosts of a run kept with HERALD_FLEET_KEEP=1
        run_id, workdir = reuse.split(":", 1)
        fleet = Fleet(run_id=run_id, workdir=Path(workdir))
        fleet.attach()
        yield fleet
        return
    fleet = Fleet()
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()


def pytest_collection_modifyitems(items):
    """The fleet tests build on each other (provision → deploy → roll back): keep file order."""
    for item in items:
        if "tests/ansible/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(1500))


