"""Kill every socket mid-deploy by restarting the ASGI server: the page resumes from its last seq and
shows every line exactly once."""

import re

from playwright.sync_api import expect

from .conftest import wait_until


def server_log_events(herald, deploy_id: int) -> list[dict]:
    events, after = [], 0
    while after is not None:
        page = herald.api("GET", f"deploys/{deploy_id}/events/?after={after}&limit=1000")
        events += page["events"]
        after = page["next_after"]
    return [e for e in events if e["kind"] == "log"]


def test_page_resumes_after_the_server_restarts_mid_deploy(herald, as_user):
    page = as_user("alice")
    page.goto("/")
    form = page.get_by_role("region", name="Start a deploy")
    form.get_by_label("Service").select_option("steady-api")
    form.get_by_label("Environment").select_option("staging")
    form.get_by_label("Version").fill("v3.0.0")
    form.get_by_role("button", name="Start deploy").click()
    expect(page).to_have_url(re.compile(r"/deploys/\d+/$"))
    deploy_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    expect(page.locator("#log")).to_contain_text("stream line 10/", timeout=30_000)
    expect(page.locator("#conn")).to_contain_text("Live")

    herald.stop_server()
    expect(page.locator("#conn")).to_contain_text(re.compile("Reconnecting|Offline"))
    seen_while_down = page.evaluate("herald.log.lines.length")
    herald.start_server()
    expect(page.locator("#conn")).to_contain_text("Live", timeout=40_000)
    expect(page.locator("#d-status")).to_contain_text("succeeded", timeout=60_000)

    stats = page.evaluate("herald.stats")
    print(f"\nresume: {seen_while_down} lines before the restart, stats {stats}")
    assert stats["connects"] >= 2 and stats["gaps"] == 0
    shown = page.evaluate("herald.log.lines.map(l => [l.seq, l.raw])")
    stored = [[e["seq"], e["data"]["line"]] for e in server_log_events(herald, deploy_id)]
    assert len(stored) == 10 + 250
    assert shown == stored  # every line, once, in order
    assert page.evaluate("herald.lastSeq") == herald.deploy(deploy_id)["last_seq"]
    page.get_by_role("button", name="Expand all").click()
    wait_until(lambda: page.evaluate("herald.log.shownText().length") == 260, what="all lines shown")
