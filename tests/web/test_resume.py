"""Kill every socket mid-deploy by restarting the ASGI server: pages resume from their last seq and
show every line exactly once; a visible tab backs off, a hidden tab waits until it is shown."""

import re
import time

from playwright.sync_api import expect

from .conftest import wait_until

# Headless Chromium reports every tab as visible, so the hidden tab is made hidden the way a real tab
# switch tells a page: document.hidden / visibilityState change, then a `visibilitychange` event.
SET_HIDDEN = """(hidden) => {
    window.__hidden = hidden;
    if (!window.__hiddenPatched) {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
        Object.defineProperty(document, "visibilityState", {
            configurable: true, get: () => (window.__hidden ? "hidden" : "visible") });
        window.__hiddenPatched = true;
    }
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def server_log_events(herald, deploy_id: int) -> list[dict]:
    events, after = [], 0
    while after is not None:
        page = herald.api("GET", f"deploys/{deploy_id}/events/?after={after}&limit=1000")
        events += page["events"]
        after = page["next_after"]
    return [e for e in events if e["kind"] == "log"]


def assert_every_line_once(page, herald, deploy_id):
    shown = page.evaluate("herald.log.lines.map(l => [l.seq, l.raw])")
    stored = [[e["seq"], e["data"]["line"]] for e in server_log_events(herald, deploy_id)]
    assert len(stored) == 10 + 250
    assert shown == stored  # every line, once, in order
    assert page.evaluate("herald.lastSeq") == herald.deploy(deploy_id)["last_seq"]


def test_pages_resume_after_the_server_restarts_mid_deploy(herald, as_user):
    page = as_user("alice")
    page.goto("/")
    form = page.get_by_role("region", name="Start a deploy")
    form.get_by_label("Service").select_option("steady-api")
    form.get_by_label("Environment").select_option("staging")
    form.get_by_label("Version").fill("v3.0.0")
    form.get_by_role("button", name="Start deploy").click()
    expect(page).to_have_url(re.compile(r"/deploys/\d+/$"))
    deploy_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    hidden = as_user("bob")
    hidden.goto(page.url)
    expect(page.locator("#log")).to_contain_text("stream line 10/", timeout=30_000)
    expect(hidden.locator("#conn")).to_contain_text("Live")
    hidden.evaluate(SET_HIDDEN, True)

    attempts = {"visible": [], "hidden": []}
    page.on("websocket", lambda ws: attempts["visible"].append(ws.url))
    hidden.on("websocket", lambda ws: attempts["hidden"].append(ws.url))

    down = time.monotonic()
    down_ms = page.evaluate("Date.now()")
    herald.stop_server()
    stopped = time.monotonic() - down
    expect(page.locator("#conn")).to_contain_text(re.compile("Reconnecting|Offline"))
    expect(hidden.locator("#conn")).to_contain_text("paused while the tab is hidden")
    seen_while_down = page.evaluate("herald.log.lines.length")
    page.wait_for_timeout(3000)  # the runner keeps writing lines nobody receives live
    herald.start_server()
    up = time.monotonic() - down
    expect(page.locator("#conn")).to_contain_text("Live", timeout=40_000)
    downtime = time.monotonic() - down
    retries = [round((t - down_ms) / 1000, 1) for t in page.evaluate("herald.socket.openedAt") if t > down_ms]
    print(f"\nresume: {seen_while_down} lines before the restart; server stopped in {stopped:.1f} s, "
          f"listening again at {up:.1f} s, page live again at {downtime:.1f} s; "
          f"visible tab reconnect attempts at {retries} s; hidden tab attempts {len(attempts['hidden'])}")
    # Exponential backoff: a handful of attempts, not one per 100 ms.
    assert 1 <= len(retries) <= 10
    assert len(attempts["visible"]) == len(retries)
    # Each resume asks for what comes after the last seq the page had.
    assert all(re.search(r"\?after=\d+$", url) and not url.endswith("after=0") for url in attempts["visible"])
    assert attempts["hidden"] == []

    expect(page.locator("#d-status")).to_contain_text("succeeded", timeout=60_000)
    stats = page.evaluate("herald.stats")
    assert stats["connects"] >= 2 and stats["gaps"] == 0
    assert_every_line_once(page, herald, deploy_id)
    page.get_by_role("button", name="Expand all").click()
    wait_until(lambda: page.evaluate("herald.log.shownText().length") == 260, what="all lines shown")

    # Still no attempt from the hidden tab; showing it reconnects at once and catches up.
    assert attempts["hidden"] == []
    hidden.evaluate(SET_HIDDEN, False)
    expect(hidden.locator("#conn")).to_contain_text("Live", timeout=10_000)
    assert len(attempts["hidden"]) == 1
    expect(hidden.locator("#d-status")).to_contain_text("succeeded")
    assert_every_line_once(hidden, herald, deploy_id)
