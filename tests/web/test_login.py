"""Signing in and out through the real pages; every page needs a session."""

import re

from playwright.sync_api import expect

from .conftest import PASSWORD


def test_pages_require_login_and_sign_in_works(herald, browser):
    context = browser.new_context(base_url=herald.base_url)
    try:
        page = context.new_page()
        page.goto("/logs/")
        expect(page).to_have_url(re.compile(r"/login/\?next=/logs/$"))

        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("didn't match")

        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(herald.base_url + "/logs/")
        expect(page.get_by_role("banner")).to_contain_text("Signed in as alice")

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login/$"))
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    finally:
        context.close()
