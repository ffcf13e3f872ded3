"""The live log on the deploy page, fed by a pipeline through the ingest API while the page is open."""

import re

from playwright.sync_api import expect

HOSTILE = [
    '<script>window.__pwned = 1</script>',
    '<img src=x onerror="window.__pwned = 2">',
    '"><svg onload="window.__pwned = 3">',
    "\x1b[31m<b>red but not bold html</b>\x1b[0m &amp; &lt;tag&gt;",
]


def open_deploy(page, deploy_id: int):
    page.goto(f"/deploys/{deploy_id}/")
    expect(page.locator("#conn")).to_contain_text("Live")


def test_hostile_lines_and_comments_render_as_text(herald, as_user):
    deploy = herald.external_deploy("hostile-svc", "v<i>1</i>")
    alice, bob = as_user("alice"), as_user("bob")
    open_deploy(alice, deploy["id"])
    expect(alice.locator("#watchers")).to_have_text("1 watching: alice")
    # The server announces joins at most every 2 s per deploy (pongs carry the list otherwise).
    alice.wait_for_timeout(2500)
    open_deploy(bob, deploy["id"])
    # (If the join fell inside the 2 s window anyway, the next pong, within 25 s, brings the list.)
    expect(alice.locator("#watchers")).to_have_text("2 watching: alice, bob", timeout=30_000)
    herald.log(deploy["id"], HOSTILE)

    log = alice.locator("#log")
    expect(log).to_contain_text("<script>window.__pwned = 1</script>")
    expect(log).to_contain_text('<img src=x onerror="window.__pwned = 2">')
    expect(log).to_contain_text("<b>red but not bold html</b> &amp; &lt;tag&gt;")
    assert alice.locator("#log script, #log img, #log svg, #log b").count() == 0
    assert alice.evaluate("window.__pwned") is None
    assert alice.locator("h1").inner_text().count("<i>1</i>") == 1  # the version is text too

    # A comment from bob reaches alice at once, as text.
    bob.get_by_label("Add a comment").fill('<img src=x onerror="window.__pwned = 4"> looks good')
    bob.get_by_role("button", name="Post comment").click()
    expect(bob.get_by_label("Add a comment")).to_have_value("")  # acknowledged
    comment = alice.get_by_role("region", name="Comments").get_by_role("listitem")
    expect(comment).to_have_count(1)
    expect(comment).to_contain_text('<img src=x onerror="window.__pwned = 4"> looks good')
    expect(comment).to_contain_text("bob")
    assert alice.locator("#comments img").count() == 0
    assert alice.evaluate("window.__pwned") is None and bob.evaluate("window.__pwned") is None
    herald.finish(deploy["id"])


def test_ansi_colours_progress_lines_and_timestamps(herald, as_user):
    deploy = herald.external_deploy("ansi-svc", "v1")
    herald.log(deploy["id"], [
        "\x1b[31mred\x1b[0m plain",
        "\x1b[1;38;5;196mbold 256\x1b[22m not bold",
        "\x1b[38;2;10;20;30mtruecolour\x1b[39m \x1b[44mblue bg\x1b[0m",
        "downloading 10%\rdownloading 55%\rdownloading 100%",
        "\x1b[2K\x1b[1Gcursor codes dropped",
    ])
    page = as_user("alice")
    open_deploy(page, deploy["id"])
    rows = page.locator("#log .log-row .tx")
    expect(rows).to_have_count(5)
    style = page.evaluate("""() => [...document.querySelectorAll('#log .tx')].map(tx =>
        [...tx.querySelectorAll('span')].map(s => {
          const c = getComputedStyle(s);
          return [s.textContent, c.color, c.backgroundColor, c.fontWeight];
        }))""")
    red = style[0][0]
    assert red[0] == "red" and red[1] == "rgb(229, 83, 75)"
    assert style[1][0][:2] == ["bold 256", "rgb(255, 0, 0)"] and style[1][0][3] == "700"
    assert style[1][1][0] == " not bold" and style[1][1][3] == "400"
    assert style[2][0][:2] == ["truecolour", "rgb(10, 20, 30)"]
    assert style[2][1][0] == "blue bg" and style[2][1][2] == "rgb(83, 155, 245)"
    expect(rows.nth(0)).to_have_text("red plain")
    expect(rows.nth(3)).to_have_text("downloading 100%")  # \r overwrote the line in place
    expect(rows.nth(4)).to_have_text("cursor codes dropped")

    ts = page.locator("#log .log-row .ts").first
    expect(ts).to_be_hidden()
    page.get_by_label("Timestamps (UTC)").check()
    expect(ts).to_be_visible()
    expect(ts).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3} $"))
    page.reload()  # the choice is remembered
    expect(page.locator("#log .log-row .ts").first).to_be_visible()
    page.get_by_label("Timestamps (UTC)").uncheck()
    herald.finish(deploy["id"])


def test_filter_while_running_and_follow_mode(herald, as_user):
    deploy = herald.external_deploy("filter-svc", "v1")
    herald.log(deploy["id"], [f"compile unit {i}" + (" \x1b[31mERROR\x1b[0m flaky" if i % 50 == 0 else "")
                              for i in range(1, 401)])
    page = as_user("alice")
    open_deploy(page, deploy["id"])
    expect(page.locator("#log-count")).to_have_text("400 lines")

    # Follow mode: pinned to the bottom while lines arrive.
    at_bottom = "(() => { const s = document.getElementById('log'); " \
                "return s.scrollTop + s.clientHeight >= s.scrollHeight - 20; })()"
    expect(page.locator("#log")).to_contain_text("compile unit 400")
    herald.log(deploy["id"], [f"link step {i}" for i in range(1, 101)])
    expect(page.locator("#log")).to_contain_text("link step 100")
    assert page.evaluate(at_bottom)
    expect(page.get_by_role("button", name=re.compile("Jump to latest"))).to_be_hidden()

    # Scrolling up releases it: new lines no longer move the view.
    page.locator("#log").hover()
    page.mouse.wheel(0, -1500)
    jump = page.get_by_role("button", name=re.compile("Jump to latest"))
    expect(jump).to_be_visible()
    top = page.evaluate("document.getElementById('log').scrollTop")
    herald.log(deploy["id"], [f"package part {i}" for i in range(1, 51)])
    expect(page.locator("#log-count")).to_have_text("550 lines")
    expect(jump).to_have_text("Jump to latest (50 new)")
    assert page.evaluate("document.getElementById('log').scrollTop") == top
    jump.click()
    expect(jump).to_be_hidden()
    expect(page.locator("#log")).to_contain_text("package part 50")
    assert page.evaluate(at_bottom)

    # Search while the deploy runs: colour codes are ignored, matches are highlighted,
    # and matching lines that arrive later join the filtered view.
    page.get_by_label("Search the log").fill("error flaky")
    expect(page.locator("#log-matches")).to_have_text("8 matching lines")
    expect(page.locator("#log .log-row")).to_have_count(8)
    # The hit spans a red and a plain segment: two <mark>s that read as one match.
    marks = page.locator("#log .log-row").first.locator("mark")
    assert "".join(marks.all_text_contents()) == "ERROR flaky"
    herald.log(deploy["id"], ["deploy \x1b[1mERROR\x1b[0m flaky again", "nothing to see"], stream="stderr")
    expect(page.locator("#log-matches")).to_have_text("9 matching lines")
    expect(page.locator("#log .log-row").last).to_contain_text("deploy ERROR flaky again")
    # Line numbers stay the real ones under the filter.
    expect(page.locator("#log .log-row").first.locator(".ln")).to_have_text("50")
    page.get_by_label("Only matching lines").uncheck()
    expect(page.locator("#log-matches")).to_have_text("9 matching lines")
    expect(page.locator("#log")).to_contain_text("nothing to see")
    # Highlight mode: Enter and Shift+Enter walk from match to match through the whole log.
    search = page.get_by_label("Search the log")
    search.press("Enter")
    expect(page.locator('#log .log-row[data-n="50"]')).to_be_in_viewport()
    search.press("Enter")
    search.press("Enter")
    expect(page.locator('#log .log-row[data-n="150"]')).to_be_in_viewport()
    search.press("Shift+Enter")
    expect(page.locator('#log .log-row[data-n="100"]')).to_be_in_viewport()
    assert "".join(page.locator('#log .log-row[data-n="100"] mark').all_text_contents()) == "ERROR flaky"
    page.get_by_label("Search the log").fill("")
    herald.finish(deploy["id"])


def test_line_links_survive_reload(herald, as_user):
    deploy = herald.external_deploy("links-svc", "v1")
    herald.log(deploy["id"], [f"line number {i}" for i in range(1, 3001)])
    herald.finish(deploy["id"])
    page = as_user("bob")
    page.goto(f"/deploys/{deploy['id']}/#L1200-L1205")
    selected = page.locator("#log .log-row.selected")
    expect(selected).to_have_count(6)
    expect(selected.first).to_contain_text("line number 1200")
    expect(selected.last).to_contain_text("line number 1205")
    expect(selected.first).to_be_in_viewport()

    # Click a line number, shift-click another: the URL holds the range, and a reload keeps it.
    page.locator('#log a.ln[data-n="1210"]').click()
    expect(page).to_have_url(re.compile(r"#L1210$"))
    page.locator('#log a.ln[data-n="1214"]').click(modifiers=["Shift"])
    expect(page).to_have_url(re.compile(r"#L1210-L1214$"))
    page.reload()
    expect(page.locator("#log .log-row.selected")).to_have_count(5)
    expect(page.locator("#log .log-row.selected").first).to_contain_text("line number 1210")
