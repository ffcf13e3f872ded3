"""Fixtures for the Ansible fleet tests: build what they need, start the fleet once per session."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .fleet import ROOT, Fleet, run


def _prepare() -> None:
    """Docker engine, then the host image and the release wheelhouse side by side (both cached)."""
    run([str(ROOT / "scripts/lib/ensure-dockerd.sh")], timeout=300)
    with ThreadPoolExecutor(2) as pool:
        image = pool.submit(run, [str(ROOT / "scripts/lib/host-image.sh")], timeout=900)
        wheels = pool.submit(run, [str(ROOT / "scripts/lib/fleet-build-release.sh"), "prepare"], timeout=900)
        image.result()
        wheels.result()


@pytest.fixture(scope="session")
def fleet():
    _prepare()
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


