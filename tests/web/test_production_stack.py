"""The pages through the production topology: nginx (static files, /ws/ upgrade) → uWSGI for pages,
daphne ×2 for sockets, the Celery worker under supervisor. Every daphne is killed mid-deploy; the
page reconnects through nginx to the restarted processes and shows every line exactly once."""

import re
import signal
import sys
from pathlib import Path

from playwright.sync_api import expect

from tests.support.stack import PASSWORD

from .conftest import screenshot

LINES = 80
SEED = f"""
from deploys.models import Service, ServiceStep
service, _ = Service.objects.get_or_create(slug="browser-steady", defaults={{"name": "Browser steady"}})
ServiceStep.objects.get_or_create(service=service, position=0, defaults=dict(
    name="emit", timeout_seconds=120,
    argv=[{sys.executable!r}, {str(Path(__file__).with_name("emit.py"))!r}, "stack", "{LINES}", "0.08"]))
"""


def test_deploy_page_through_nginx_survives_daphne_kills(herald_stack, browser):
    stack = herald_stack
    stack.shell(SEED)
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1400, "height": 900})
    errors = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/")
        page.get_by_label("Username").fill("stack")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#conn")).to_contain_text("Live")
        module = page.request.get("/static/web/js/deploy.js")
        assert module.ok and "javascript" in module.headers["content-type"]  # nginx's MIME type

        form = page.get_by_role("region", name="Start a deploy")
        form.get_by_label("Service").select_option("browser-steady")
        form.get_by_label("Environment").select_option("staging")
        form.get_by_label("Version").fill("v-nginx")
        form.get_by_role("button", name="Start deploy").click()
        expect(page).to_have_url(re.compile(r"/deploys/\d+/$"))
        expect(page.locator("#log")).to_contain_text("stack line 10/", timeout=30_000)

        daphnes = [name for name in stack.programs() if name.startswith("daphne")]
        assert daphnes, stack.programs()
        for name in daphnes:
            stack.signal_program(name, signal.SIGKILL)
        expect(page.locator("#conn")).to_contain_text(re.compile("Reconnecting|Offline"))
        expect(page.locator("#conn")).to_contain_text("Live", timeout=60_000)
        expect(page.locator("#d-status")).to_contain_text("succeeded", timeout=60_000)

        raw = page.evaluate("herald.log.lines.map(l => l.raw)")
        expected = [f"stack line {i}/{LINES}" for i in range(1, LINES + 1)]
        assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in raw] == expected
        stats = page.evaluate("herald.stats")
        print(f"\nstack: killed {daphnes}; page stats {stats}")
        assert stats["connects"] >= 2 and stats["gaps"] == 0
        screenshot(page, "deploy-page-stack.png")
    finally:
        context.close()
    assert not errors, errors
