"""The dashboard: live rows and notices over /ws/dashboard/, URL filters, the start form and its lock."""

import re

from playwright.sync_api import expect

from .conftest import screenshot


def test_dashboard_follows_a_deploy_started_and_finished_elsewhere(herald, as_user):
    page = as_user("bob")
    page.goto("/")
    expect(page.locator("#conn")).to_contain_text("Live")
    # bob may watch but not deploy: no start form.
    expect(page.get_by_role("region", name="Start a deploy")).to_have_count(0)

    deploy = herald.external_deploy("dash-svc", "v9.9.1", environment="production", by="ci#77")
    row = page.locator(f'#deploy-rows tr[data-id="{deploy["id"]}"]')
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("ci#77")
    expect(row).to_contain_text("v9.9.1")
    feed = page.get_by_role("region", name="Activity")
    expect(feed.locator("li").filter(has_text="dash-svc")).to_have_count(1)

    herald.api("POST", f"deploys/{deploy['id']}/progress/", {"progress": 60, "step": "migrate"})
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "60")
    expect(row).to_contain_text("migrate")

    herald.finish(deploy["id"], "failed")
    expect(row).to_contain_text("failed")
    expect(row).to_have_attribute("data-status", "failed")
    # One "started" and one "finished" notice, never more.
    expect(feed.locator("li").filter(has_text="dash-svc")).to_have_count(2)
    screenshot(page, "dashboard.png")

    # Filters live in the URL and apply to live updates too.
    page.get_by_label("Environment").select_option("staging")
    expect(page).to_have_url(re.compile(r"environment=staging"))
    expect(row).to_have_count(0)
    other = herald.external_deploy("dash-svc", "v9.9.2", environment="production")
    staged = herald.external_deploy("dash-svc", "v9.9.3", environment="staging")
    expect(page.locator(f'#deploy-rows tr[data-id="{staged["id"]}"]')).to_contain_text("running")
    expect(page.locator(f'#deploy-rows tr[data-id="{other["id"]}"]')).to_have_count(0)
    page.reload()
    expect(page.get_by_label("Environment")).to_have_value("staging")
    expect(page.locator(f'#deploy-rows tr[data-id="{staged["id"]}"]')).to_be_visible()
    herald.finish(other["id"])
    herald.finish(staged["id"])


def test_start_form_shows_the_lock_message(herald, as_user):
    page = as_user("alice")
    page.goto("/")
    form = page.get_by_role("region", name="Start a deploy")
    form.get_by_label("Service").select_option("slow-api")
    form.get_by_label("Environment").select_option("production")
    form.get_by_label("Version").fill("v2.0.0")
    form.get_by_role("button", name="Start deploy").click()
    expect(page).to_have_url(re.compile(r"/deploys/\d+/$"))
    first_url = page.url
    expect(page.locator("#d-status")).to_contain_text("running", timeout=20_000)

    page.goto("/")
    form = page.get_by_role("region", name="Start a deploy")
    form.get_by_label("Service").select_option("slow-api")
    form.get_by_label("Environment").select_option("production")
    form.get_by_label("Version").fill("v2.0.1")
    form.get_by_role("button", name="Start deploy").click()
    lock = page.locator("#lock-message")
    expect(lock).to_contain_text("slow-api is already being deployed to production")
    expect(lock.get_by_role("link", name="Open it")).to_have_attribute("href", re.compile(r"/deploys/\d+/$"))

    # Cancel it from its page, through the confirmation dialog.
    page.goto(first_url)
    page.get_by_role("button", name="Cancel deploy…").click()
    dialog = page.get_by_role("dialog", name="Cancel this deploy?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#d-status")).to_contain_text("running")
    page.get_by_role("button", name="Cancel deploy…").click()
    dialog.get_by_role("button", name="Cancel deploy").click()
    expect(page.locator("#d-status")).to_contain_text("cancelled", timeout=20_000)
    expect(page.locator("#d-outcome")).to_contain_text("cancelled by alice")
    expect(page.get_by_role("button", name="Cancel deploy…")).to_be_hidden()
