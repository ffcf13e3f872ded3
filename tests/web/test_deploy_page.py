"""The deploy page while Herald's own runner (a real Celery worker) runs a deploy."""

import re

from playwright.sync_api import expect

from .conftest import screenshot


def start_from_dashboard(page, service: str, environment: str, version: str):
    page.goto("/")
    form = page.get_by_role("region", name="Start a deploy")
    form.get_by_label("Service").select_option(service)
    form.get_by_label("Environment").select_option(environment)
    form.get_by_label("Version").fill(version)
    form.get_by_role("button", name="Start deploy").click()


def test_runner_deploy_streams_steps_progress_and_log(as_user):
    page = as_user("alice")
    start_from_dashboard(page, "quick-api", "staging", "v1.0.0")
    expect(page).to_have_url(re.compile(r"/deploys/\d+/$"))

    steps = page.get_by_role("region", name="Steps")
    expect(steps.get_by_role("listitem")).to_have_count(3)
    log = page.locator("#log")
    # Lines show up while the deploy runs, before it has finished.
    expect(log).to_contain_text("build line 1/10", timeout=20_000)
    expect(page.locator("#d-status")).to_contain_text("running")
    expect(page.locator("#conn")).to_contain_text("Live")
    page.get_by_label("Add a comment").fill("Watching the rollout; ping me if smoke tests fail.")
    page.get_by_role("button", name="Post comment").click()
    # Mid-rollout: finished steps are collapsed, the current one is open and followed.
    expect(log).to_contain_text("rollout line 2/10", timeout=20_000)
    expect(page.locator('.step-toggle[data-group="2"]')).to_have_attribute("aria-expanded", "true")
    expect(page.locator('.step-toggle[data-group="0"]')).to_have_attribute("aria-expanded", "false")
    # 66 while rollout runs (100 if this busy machine let the deploy finish before we looked).
    expect(page.get_by_role("progressbar", name="Deploy progress")).to_have_attribute(
        "aria-valuenow", re.compile(r"^(66|100)$"))
    screenshot(page, "deploy-page-running.png")

    # The final status arrives without a reload.
    expect(page.locator("#d-status")).to_contain_text("succeeded", timeout=30_000)
    expect(page.locator("#d-outcome")).to_contain_text("Deploy succeeded")
    expect(page.get_by_role("progressbar", name="Deploy progress")).to_have_attribute("aria-valuenow", "100")
    for name in ("build", "migrate", "rollout"):
        item = steps.get_by_role("listitem").filter(has_text=name)
        expect(item).to_contain_text("succeeded")
        expect(item.locator(".step-dur")).to_have_text(re.compile(r"\d"))
    expect(page).to_have_title(re.compile(r"succeeded · quick-api v1\.0\.0 → staging"))
    expect(page.locator("#favicon")).to_have_attribute("href", re.compile(r"favicon-succeeded\.svg$"))

    # Steps fold and unfold from the keyboard, and focus stays on the step's toggle.
    toggle = page.locator('.step-toggle[data-group="1"]')
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_be_focused()
    expect(log).to_contain_text("migrate line 5/5")

    page.get_by_role("button", name="Expand all").click()
    expect(log).to_contain_text("rollout line 10/10")
    lines = page.evaluate("herald.log.shownText()")
    expected = [f"{p} line {i}/{n}" for p, n in (("build", 10), ("migrate", 5), ("rollout", 10))
                for i in range(1, n + 1)]
    assert lines == expected
    screenshot(page, "deploy-page.png")


def test_deploy_page_fits_a_laptop_split_screen(herald, as_user):
    deploy = herald.external_deploy("narrow-svc", "v1")
    herald.log(deploy["id"], ["a fairly long line " * 12, "short"])
    page = as_user("bob", viewport={"width": 720, "height": 800})
    page.goto(f"/deploys/{deploy['id']}/")
    expect(page.locator("#conn")).to_contain_text("Live")
    # The page itself never scrolls sideways; only the log does, inside its own box.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator("#log")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Cancel deploy…")).to_have_count(0)  # bob may not cancel
    screenshot(page, "deploy-page-narrow.png")
    herald.finish(deploy["id"])
