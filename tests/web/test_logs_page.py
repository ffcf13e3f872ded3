"""The log-follow page: a whitelisted file on a host, followed live through a Celery task."""

import time

import redis
from playwright.sync_api import expect

from deploys.tasks import FOLLOW_LEASE_PREFIX

from .conftest import wait_until


def append(path, lines):
    with open(path, "a") as f:
        f.write("".join(f"{line}\n" for line in lines))


def test_follow_and_stop_a_whitelisted_log(herald, as_user):
    page = as_user("bob")
    page.goto("/logs/")
    expect(page.locator("#conn")).to_contain_text("Live")
    expect(page.get_by_label("Host")).to_have_value("local")
    expect(page.get_by_label("File")).to_have_value("app")
    append(herald.followed, ["written before following"])

    page.get_by_role("button", name="Start following").click()
    expect(page.locator("#lf-state")).to_contain_text("Following app on local")
    # The task needs a moment to open the file; keep writing until a line shows up.
    deadline = time.monotonic() + 20
    n = 0
    while time.monotonic() < deadline and "GET /" not in page.locator("#log").inner_text():
        n += 1
        append(herald.followed, [f'127.0.0.1 "GET /healthz" 200 #{n} <script>alert(1)</script>'])
        time.sleep(0.3)
    expect(page.locator("#log")).to_contain_text(f'"GET /healthz" 200 #{n} <script>alert(1)</script>')
    assert page.locator("#log script").count() == 0

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#lf-state")).to_contain_text("Stopped")
    count = page.locator("#log .log-row").count()
    append(herald.followed, ["written after stopping"])
    time.sleep(1.5)
    assert page.locator("#log .log-row").count() == count
    expect(page.locator("#log")).not_to_contain_text("written after stopping")
    expect(page.get_by_role("button", name="Start following")).to_be_visible()


def test_leaving_the_page_ends_the_follow(herald, as_user):
    """The server-side task runs while its socket holds a lease in Redis; leaving the page closes the
    socket, and the consumer drops the lease (the task then stops within a second)."""
    leases = redis.Redis.from_url(herald.redis.url)
    page = as_user("alice")
    page.goto("/logs/")
    expect(page.locator("#conn")).to_contain_text("Live")
    page.get_by_role("button", name="Start following").click()
    expect(page.locator("#lf-state")).to_contain_text("Following app on local")
    assert leases.keys(FOLLOW_LEASE_PREFIX + "*")
    page.goto("/")
    wait_until(lambda: not leases.keys(FOLLOW_LEASE_PREFIX + "*"), timeout=10, what="the follow lease to go")
