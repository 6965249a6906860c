"""The page in Debian's Chromium (headless, via Playwright): pick, run, see, share by URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .conftest import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]


def open_page(browser, url: str, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
    # offline: any request to another host is a failure
    page.on("request", lambda r: r.url.startswith(url.split("/?")[0].rstrip("/")) or r.url.startswith("data:")
            or page.problems.append(f"external request: {r.url}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=20_000)
    return page


def runs_done(page) -> int:
    return int(page.evaluate("document.body.dataset.runs || '0'"))


def wait_for_run(page, after: int) -> None:
    """Wait until a run newer than ``after`` has finished animating."""
    page.wait_for_function(
        f"Number(document.body.dataset.runs || 0) > {after} && document.body.dataset.animating === 'false'",
        timeout=30_000,
    )


def drawn_paths(page) -> list[int]:
    """Number of points of each drawn trajectory."""
    return page.eval_on_selector_all(
        "#paths polyline.path-line", "els => els.map(e => e.getAttribute('points').trim().split(/\\s+/).length)"
    )


def test_pick_rosenbrock_adam_sgd_run_share(browser, live_server, artifacts):
    # start from another setup so that every choice below is made on the page
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&r1=newton", 1280, 800)
    wait_for_run(page, 0)

    page.select_option("#landscape", "rosenbrock")
    page.wait_for_function("document.querySelector('#plot-title').textContent.startsWith('Rosenbrock')")
    page.click(".run-card .remove")
    assert page.locator(".run-card").count() == 0
    for name in ("adam", "gd"):
        page.select_option("#add-optimizer", name)
        page.click("#add-run")
    assert page.locator(".run-card").count() == 2
    before = runs_done(page)
    page.click("#run")
    wait_for_run(page, before)

    lengths = drawn_paths(page)
    assert len(lengths) == 2 and all(n >= 2 for n in lengths), lengths
    rows = page.locator("#results tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().startswith("Adam (lr=")
    assert rows.nth(1).inner_text().startswith("GD (lr=")
    for i in range(2):
        cells = rows.nth(i).locator("td")
        assert cells.count() == 7
        assert re.fullmatch(r"\d+|not within \d+", cells.nth(1).inner_text().strip())   # steps to tol
        assert re.fullmatch(r"[-0-9.e]+", cells.nth(2).inner_text().strip())          # final loss
        assert cells.nth(5).inner_text().strip() in ("no",) or cells.nth(5).inner_text().startswith("yes")
    assert page.locator("#loss-chart path.series").count() == 2
    assert page.locator("#lr-chart path.series").count() == 2
    page.screenshot(path=str(artifacts / "lab-rosenbrock-1280x800.png"))

    # the URL holds the setup
    query = parse_qs(urlsplit(page.url).query)
    assert query["landscape"] == ["rosenbrock"] and query["r1"] == ["adam"] and query["r2"] == ["gd"]

    # clicking the contour moves the start and races again from there
    before = runs_done(page)
    box = page.locator("#contour").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.2)
    wait_for_run(page, before)
    query = parse_qs(urlsplit(page.url).query)
    assert float(query["x"][0]) > 0.5 and float(query["y"][0]) > 1.5
    assert page.input_value("#start-x") == query["x"][0]
    assert not page.problems, page.problems
    page.close()


def test_lr_from_the_url_is_applied(browser, live_server, artifacts):
    setup = {"landscape": "rosenbrock", "steps": "600", "r1": "adam", "r1.lr": "0.02", "r2": "sgd", "r2.lr": "0.001"}
    page = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    assert page.locator("#results tbody tr").nth(0).inner_text().startswith("Adam (lr=0.02)")

    setup["r1.lr"] = "0.1"
    page.goto(f"{live_server.url}/?{urlencode(setup)}")
    page.wait_for_selector("body[data-ready='true']")
    wait_for_run(page, 0)
    assert page.input_value("#r0-lr") == "0.1"
    assert page.input_value("#steps") == "600"
    first = page.locator("#results tbody tr").nth(0).inner_text()
    assert first.startswith("Adam (lr=0.1)"), first
    assert len(drawn_paths(page)) == 2
    assert not page.problems, page.problems
    page.close()

    # the same link on a narrow window: everything fits, nothing scrolls sideways
    narrow = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 400, 800)
    wait_for_run(narrow, 0)
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 400
    assert len(drawn_paths(narrow)) == 2
    narrow.screenshot(path=str(artifacts / "lab-rosenbrock-400x800.png"))
    narrow.screenshot(path=str(artifacts / "lab-rosenbrock-400x800-full.png"), full_page=True)
    assert not narrow.problems, narrow.problems
    narrow.close()


def test_bad_value_shows_the_server_message_on_its_field(browser, live_server):
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&r1=adam&r1.beta1=1.5", 1280, 800)
    page.wait_for_selector(".run-card.has-error", timeout=20_000)
    assert "beta1" in page.inner_text("#status")
    assert page.locator("#r0-beta1.invalid").count() == 1
    page.fill("#r0-beta1", "0.9")
    page.dispatch_event("#r0-beta1", "change")
    wait_for_run(page, 0)
    assert page.locator(".run-card.has-error").count() == 0
    page.close()


def test_the_lr_preview_draws_every_lr_a_run_takes(browser, live_server):
    # lr 1e7 is a legal (divergent) run; its preview was refused (lr at most 1e6) and its line left out
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&steps=100&r1=gd&r1.lr=1e7&r2=adam", 1280, 800)
    wait_for_run(page, 0)
    page.wait_for_function("document.querySelectorAll('#lr-chart path.series').length === 2", timeout=5_000)
    titles = page.eval_on_selector_all("#lr-chart path.series title", "els => els.map(e => e.textContent)")
    assert len(titles) == 2 and "10000000" in titles[0], titles
    assert "schedule:" not in page.inner_text("#status")
    assert not page.problems, page.problems
    page.close()


def test_a_link_with_an_empty_or_odd_value(browser, live_server):
    # r1.lr= is the default (it was read as lr 0: a race that never moved); amsgrad=maybe is named
    # as the error it is (it was read as false)
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&steps=50&r1=adam&r1.lr=&r1.amsgrad=maybe", 1280, 800)
    page.wait_for_selector(".run-card.has-error", timeout=5_000)
    assert page.inner_text("#status") == 'Optimizer 1 (Adam), amsgrad: amsgrad must be true or false, got "maybe"'
    assert page.locator("#r0-amsgrad.invalid").count() == 1
    assert page.input_value("#r0-lr") == "0.001"   # Adam's default
    page.click("#r0-amsgrad")   # a choice made: true
    wait_for_run(page, 0)
    assert page.locator("#results tbody tr").first.inner_text().startswith("Adam (lr=0.001, amsgrad=True)")
    assert not page.problems, page.problems
    page.close()


def test_a_server_that_cannot_be_reached_is_said_so(browser, live_server):
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&steps=50&r1=adam", 1280, 800)
    wait_for_run(page, 0)
    page.route("**/api/run", lambda route: route.abort("connectionrefused"))
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').classList.contains('error')", timeout=5_000)
    # the browser's own words were "Failed to fetch"
    assert page.inner_text("#status") == "could not reach the server: is descend serve still running?"
    assert page.evaluate("document.body.classList.contains('stale')") and page.is_visible("#stale-note")
    page.unroute("**/api/run")
    page.click("#run")
    wait_for_run(page, 1)
    assert not page.evaluate("document.body.classList.contains('stale')")
    assert [p for p in page.problems if "ERR_CONNECTION_REFUSED" not in p] == []
    page.close()
