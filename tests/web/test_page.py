"""The page in Chromium: it knows the cost, draws honestly, and behaves as browsers do.

Each test drives Debian's chromium through Playwright (as test_browser.py
does) and saves a screenshot of the case to test-artifacts/.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from descend.web import Limits

from .conftest import CHROMIUM, start_server, stop_server
from .test_browser import open_page, runs_done, wait_for_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

INK = "rgb(29, 35, 48)"


def run_requests(page) -> list[str]:
    """Every POST /api/run the page sends from now on."""
    sent: list[str] = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/api/run") and sent.append(r.url))
    return sent


@pytest.fixture(scope="module")
def strict_server():
    """A server with a 1 s time limit and 100,000 steps allowed: 100,000 steps of Adam and Newton
    are over the limit on any machine (5000 steps were not: on a fast one they came to 0.5-1 s,
    a warning, not a refusal)."""
    live = start_server(Limits(time_limit_s=1.0, max_steps=100_000))
    try:
        yield live
    finally:
        stop_server(live)


def test_the_page_refuses_a_race_over_the_time_limit_before_sending(browser, strict_server, artifacts):
    setup = {"landscape": "rosenbrock", "steps": "20", "r1": "adam", "r1.lr": "0.05", "r2": "newton"}
    page = open_page(browser, f"{strict_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    page.wait_for_function("document.querySelector('#estimate').textContent.startsWith('≈')", timeout=60_000)
    sent = run_requests(page)
    page.uncheck("#live")
    # 100,000 steps of Newton: the measured cost says this cannot finish within the server's limit
    page.fill("#steps", "100000")
    page.dispatch_event("#steps", "change")
    assert "over" in page.get_attribute("#estimate", "class")
    page.click("#run")
    error = page.locator("#steps").locator("xpath=..").locator(".field-error")
    assert error.count() == 1 and "over the server's limit" in error.inner_text()
    assert page.locator("#steps.invalid").count() == 1
    # the old results stay, marked stale
    assert page.evaluate("document.body.classList.contains('stale')")
    assert page.is_visible("#stale-note")
    page.screenshot(path=str(artifacts / "page-refused-over-limit-1280x800.png"))
    # steps above the server's maximum are refused the same way
    page.fill("#steps", "200000")
    page.dispatch_event("#steps", "change")
    page.click("#run")
    assert "from 1 to 100000" in error.inner_text()
    page.wait_for_timeout(300)
    assert sent == []   # nothing that must fail was sent
    # a race that fits runs again and is no longer stale
    page.fill("#steps", "20")
    page.dispatch_event("#steps", "change")
    before = runs_done(page)
    page.click("#run")
    wait_for_run(page, before)
    assert len(sent) == 1 and not page.evaluate("document.body.classList.contains('stale')")
    assert not page.is_visible("#stale-note") and page.locator(".field-error").count() == 0
    assert not page.problems, page.problems
    page.close()


def test_a_failed_request_shows_its_error_next_to_the_control(browser, live_server, artifacts):
    setup = {"landscape": "bowl", "steps": "300", "r1": "adam", "r1.lr": "0.1", "r1.schedule": "step",
             "r1.schedule.every": "100"}
    page = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    page.fill("#r0-sched-every", "0")          # only the server knows: every must be >= 1
    page.dispatch_event("#r0-sched-every", "change")
    page.wait_for_selector(".field-error", timeout=20_000)
    row = page.locator("[data-row='every']")
    message = row.locator("xpath=following-sibling::*[1]")
    assert "field-error" in message.get_attribute("class") and "every" in message.inner_text()
    assert page.locator("#r0-sched-every.invalid").count() == 1
    assert page.evaluate("document.body.classList.contains('stale')") and page.is_visible("#stale-note")
    page.screenshot(path=str(artifacts / "page-error-next-to-control-1280x800.png"))
    # a tolerance out of range: the message names the value refused, not only the bound
    tol_error = page.locator("#tol").locator("xpath=..").locator(".field-error")
    for typed, said in [("-1", "tolerance must be a number ≥ 0, got -1"),
                        ("1e10", "Input should be less than or equal to 1000000, got 1e+10")]:
        page.fill("#r0-sched-every", "100")
        page.dispatch_event("#r0-sched-every", "change")
        page.fill("#tol", typed)
        page.dispatch_event("#tol", "change")
        page.wait_for_function("(s) => [...document.querySelectorAll('.field-error')].some(e => e.textContent === s)",
                               arg=said, timeout=20_000)
        assert tol_error.inner_text() == said and page.locator("#tol.invalid").count() == 1
    # the run and the schedule preview were refused (422, expected); nothing else went wrong
    assert [p for p in page.problems if "status of 422" not in p] == []
    page.close()


def test_honest_pictures(browser, live_server, artifacts):
    # a start outside the view and a run that diverges out of it: both get an edge marker
    setup = {"landscape": "bowl", "x": "9", "y": "0.5", "steps": "200", "r1": "gd", "r1.lr": "1.5",
             "r2": "adam", "r2.lr": "0.1"}
    page = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    start = page.locator("#edges .start-edge text")
    assert start.count() == 1 and start.text_content() == "■ start (9, 0.5)"
    rows = page.locator("#results tbody tr")
    assert "yes" in rows.nth(0).locator("td").nth(5).inner_text()         # GD diverged
    end = page.locator("#edges .end-edge text")
    assert end.count() >= 1 and end.first.text_content().startswith("■ (")
    # the global minimum's star is drawn after (above) the paths and their end dots
    order = page.evaluate("[...document.querySelector('#contour').children].map(c => c.id)")
    assert order.index("minima") > order.index("paths")
    page.screenshot(path=str(artifacts / "page-edge-markers-1280x800.png"))
    page.close()

    # note 003: f* unknown, so no run is coloured green; GD runs off as the note says
    page = open_page(browser, f"{live_server.url}/?landscape=bowl", 1280, 800)
    wait_for_run(page, 0)
    page.select_option("#landscape", "note003")
    before = runs_done(page)
    page.click("#run")
    wait_for_run(page, before)
    assert page.input_value("#start-y") == "0.3"
    assert page.locator("#results td.good").count() == 0
    # both runs leave the view at the same corner: two labels, not one on top of the other
    labels = page.eval_on_selector_all("#edges .end-edge text", "els => els.map(e => e.getBBox().y)")
    assert len(labels) == 2 and abs(labels[0] - labels[1]) >= 12, labels
    page.screenshot(path=str(artifacts / "page-note003-1280x800.png"))
    page.close()


def test_rosenbrock_contours_use_a_finer_grid(browser, live_server, artifacts):
    page = open_page(browser, f"{live_server.url}/?landscape=bowl", 1280, 800)
    grids: list[str] = []
    page.on("request", lambda r: "/grid?" in r.url and grids.append(r.url))
    page.select_option("#landscape", "rosenbrock")
    page.wait_for_timeout(1500)
    assert grids and grids[-1].endswith("grid?n=160"), grids
    page.screenshot(path=str(artifacts / "page-rosenbrock-contours-1280x800.png"))
    page.close()


def test_back_undoes_the_last_change_not_every_slider_tick(browser, live_server):
    page = open_page(browser, f"{live_server.url}/?landscape=rosenbrock&r1=adam&r1.lr=0.05", 1280, 800)
    wait_for_run(page, 0)
    length = page.evaluate("history.length")
    # a slider drag: many ticks, one history entry
    page.evaluate("""() => {
        const s = document.querySelector('#r0-lr').parentNode.querySelector('input[type=range]');
        for (const v of [300, 320, 340, 360, 380]) { s.value = String(v); s.dispatchEvent(new Event('input')); }
        s.dispatchEvent(new Event('change'));
    }""")
    page.wait_for_timeout(400)
    dragged = page.input_value("#r0-lr")
    assert dragged != "0.05"
    assert page.evaluate("history.length") == length + 1
    page.select_option("#landscape", "himmelblau")
    assert page.evaluate("history.length") == length + 2
    page.go_back()
    page.wait_for_function("document.querySelector('#landscape').value === 'rosenbrock'")
    assert page.input_value("#r0-lr") == dragged
    page.go_back()
    page.wait_for_function("document.querySelector('#r0-lr').value === '0.05'")
    assert "r1.lr=0.05" in page.url
    assert not page.problems, page.problems
    page.close()


def test_touch_screens_see_help_and_get_44px_targets(browser, live_server, artifacts):
    ctx = browser.new_context(viewport={"width": 400, "height": 800}, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.goto(f"{live_server.url}/?landscape=rosenbrock&r1=adam&r2=newton")
    page.wait_for_selector("body[data-ready='true']", timeout=20_000)
    wait_for_run(page, 0)
    help_line = page.locator("[data-row='lr'] .help").first
    assert help_line.is_visible() and "step size" in help_line.inner_text()
    small = page.evaluate("""() => [...document.querySelectorAll('button, select, input, summary, label.bool-state')]
        .filter(e => e.offsetParent !== null && e.type !== 'checkbox')
        .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect().height])
        .filter(([, h]) => h < 44)""")
    assert small == [], small
    boxes = page.evaluate("""() => [...document.querySelectorAll('.bool-box')].filter(e => e.offsetParent !== null)
        .map(e => e.getBoundingClientRect().height)""")
    assert boxes and min(boxes) >= 44, boxes
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    page.screenshot(path=str(artifacts / "page-touch-400x800.png"), full_page=True)
    ctx.close()


def test_true_false_reads_as_a_value_and_select_labels_fit(browser, live_server, artifacts):
    runs = {f"r{i + 1}": name for i, name in enumerate(["gd", "momentum", "nesterov", "adagrad", "rmsprop",
                                                         "adam", "adamw", "newton"])}
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&steps=50&{urlencode(runs)}", 1280, 800)
    wait_for_run(page, 0)
    page.click(".run-card[data-index='5'] details.more summary")
    styles = page.evaluate("""() => [...document.querySelectorAll('.hyper.check label')].filter(l => l.offsetParent)
        .map(l => [l.textContent, getComputedStyle(l).color, getComputedStyle(l).opacity])""")
    assert styles and all(color == INK and opacity == "1" for _, color, opacity in styles), styles
    words = [t for t, _, _ in styles if t in ("true", "false")]
    assert words, styles
    cut = page.evaluate("""() => {
        const ctx = document.createElement('canvas').getContext('2d');
        return [...document.querySelectorAll('.opt-select, #add-optimizer')].flatMap(sel => {
            const cs = getComputedStyle(sel);
            ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
            const room = sel.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20;
            return [...sel.options].map(o => [o.text, ctx.measureText(o.text).width, room])
                .filter(([, w, r]) => w > r);
        });
    }""")
    assert cut == [], cut
    page.screenshot(path=str(artifacts / "page-all-optimizers-1280x800.png"))
    assert not page.problems, page.problems
    page.close()


def test_results_of_an_older_setup_are_never_shown_as_current(browser, live_server, artifacts):
    setup = {"landscape": "bowl", "steps": "300", "r1": "adam", "r1.lr": "0.1"}
    page = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    dimmed = "document.body.classList.contains('stale')"
    stale = "document.body.dataset.stale"
    assert not page.evaluate(dimmed) and not page.is_visible("#stale-note")
    first_point = "document.querySelector('#paths polyline.path-line').getAttribute('points').split(' ')[0]"
    drawn_from = page.evaluate(first_point)
    page.uncheck("#live")
    # the start moves to (2, 1): the path on show still starts at (-2.5, 1), so it is marked outdated
    page.fill("#start-x", "2")
    page.dispatch_event("#start-x", "change")
    assert page.evaluate(first_point) == drawn_from
    assert page.evaluate(dimmed) and page.evaluate(stale) == "changed"
    assert page.is_visible("#stale-note") and "setup changed" in page.inner_text("#stale-note")
    # the results are dimmed; the landscape, the start marker and the lr preview answer the setup on the
    # page and are not (a greyed plot is where the learner places the start)
    opacity = "(s) => getComputedStyle(document.querySelector(s)).opacity"
    assert [page.evaluate(opacity, s) for s in ("#paths", "#loss-chart", "#results")] == ["0.45"] * 3
    assert [page.evaluate(opacity, s) for s in (".contour-panel", "#contour", "#lr-chart")] == ["1"] * 3
    page.screenshot(path=str(artifacts / "page-outdated-results-1280x800.png"))
    # back to the start they answer: current again
    page.fill("#start-x", "-2.5")
    page.dispatch_event("#start-x", "change")
    assert not page.evaluate(dimmed) and not page.is_visible("#stale-note")
    # removing the optimizer whose path is on show: outdated
    page.click(".run-card .remove")
    assert page.evaluate(dimmed) and page.evaluate(stale) == "changed"
    # turning auto re-run back on races the setup on the page
    page.select_option("#add-optimizer", "gd")
    page.click("#add-run")
    before = runs_done(page)
    page.check("#live")
    wait_for_run(page, before)
    assert not page.evaluate(dimmed) and page.locator("#results tbody tr").count() == 1
    assert page.locator("#results tbody tr").first.inner_text().startswith("GD")

    # a setup changed while its request computes: the answer arrives outdated, and says so
    page.uncheck("#live")
    held = []
    page.route("**/api/run", lambda route: held.append(route))
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent === 'Running…'")
    page.fill("#steps", "40")
    page.dispatch_event("#steps", "change")
    while not held:
        page.wait_for_timeout(20)
    before = runs_done(page)
    held[0].continue_()
    wait_for_run(page, before)
    assert page.evaluate(dimmed) and page.is_visible("#stale-note")
    page.unroute("**/api/run")

    # a landscape chosen while a race computes: the old race is dropped, the page is not left "Running…"
    held.clear()
    page.route("**/api/run", lambda route: held.append(route))
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent === 'Running…'")
    page.select_option("#landscape", "himmelblau")
    page.wait_for_function("!document.querySelector('#run').disabled", timeout=5_000)
    assert page.inner_text("#status") == "" and not page.evaluate(dimmed)
    assert page.locator("#results tbody tr[data-run]").count() == 0
    page.unroute("**/api/run")
    assert not page.problems, page.problems
    page.close()


def test_runs_of_one_optimizer_are_estimated_as_the_one_computation_they_are(browser, live_server):
    # the server steps all runs of one optimizer together: eight Newton runs cost about one
    setup = {"landscape": "two_minima", "steps": "5000", "tol": "0", "r1": "newton"}
    page = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    page.wait_for_function("document.querySelector('#estimate').textContent.startsWith('≈')", timeout=60_000)
    page.uncheck("#live")
    one = page.inner_text("#estimate")
    page.select_option("#add-optimizer", "newton")
    for _ in range(7):
        page.click("#add-run")
    assert page.locator(".run-card").count() == 8
    assert page.inner_text("#estimate") == one
    page.select_option("#add-optimizer", "adam")
    assert page.inner_text("#estimate") == one
    # and sends it (estimated as 8 runs, it was refused on a fresh server: "about 47 s, over the limit")
    before = runs_done(page)
    page.click("#run")
    wait_for_run(page, before)
    assert page.locator(".field-error").count() == 0
    assert page.locator("#results tbody tr[data-run]").count() == 8
    assert not page.problems, page.problems
    page.close()


def test_a_committed_change_races_at_once_a_slider_drag_when_it_pauses(browser, live_server):
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&steps=200&r1=adam&r1.lr=0.1", 1280, 800)
    wait_for_run(page, 0)
    page.clock.install()   # the page's timers run on a clock this test moves: no waiting on the wall clock
    sent = run_requests(page)

    def after(ms: int) -> int:
        page.clock.run_for(ms)
        page.wait_for_timeout(50)   # let the browser hand the request to the listener
        return len(sent)

    # a value typed and committed: the race is sent without a debounce
    page.fill("#r0-lr", "0.2")
    page.dispatch_event("#r0-lr", "change")
    assert after(20) == 1
    # the ticks of a slider drag wait until the drag pauses
    page.evaluate("""() => {
        const s = document.querySelector('#r0-lr').parentNode.querySelector('input[type=range]');
        for (const v of [300, 320, 340]) { s.value = String(v); s.dispatchEvent(new Event('input')); }
    }""")
    assert after(200) == 1
    assert after(400) == 2
    page.close()


def test_a_box_left_bad_is_never_raced_with_its_old_value(browser, live_server):
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&steps=300&r1=adam&r1.lr=0.1", 1280, 800)
    wait_for_run(page, 0)
    sent = run_requests(page)
    tol_error = page.locator("#tol").locator("xpath=..").locator(".field-error")
    page.fill("#tol", "-1")
    page.dispatch_event("#tol", "change")
    assert tol_error.inner_text() == "tolerance must be a number ≥ 0, got -1"
    # another change: the box still says -1, so nothing is raced (it was, with the old tol 1e-6,
    # and the error went away while the box kept -1)
    page.fill("#r0-lr", "0.2")
    page.dispatch_event("#r0-lr", "change")
    page.wait_for_timeout(300)
    assert sent == [] and tol_error.inner_text() == "tolerance must be a number ≥ 0, got -1"
    assert page.evaluate("document.body.classList.contains('stale')")
    before = runs_done(page)
    page.fill("#tol", "1e-6")
    page.locator("#tol").blur()   # the browser's own change event
    wait_for_run(page, before)
    raced = len(sent)
    assert raced >= 1 and page.locator(".field-error").count() == 0
    # an emptied start box is named, and its old value is not raced
    page.fill("#start-x", "")
    page.dispatch_event("#start-x", "change")
    error = page.locator("#start-fields .field-error")
    assert error.inner_text() == "x and y must be numbers from -10000 to 10000, got x = nothing, y = 1"
    assert page.evaluate("getComputedStyle(document.querySelector('#start-marker')).visibility") == "hidden"
    page.wait_for_timeout(300)
    assert len(sent) == raced
    assert not page.problems, page.problems
    page.close()


def test_the_charts_show_every_run_when_some_diverge(browser, live_server, artifacts):
    # Momentum diverges on Beale (f - f* up to 1e87) and GD runs with lr 1e308: the loss axis spanned
    # 1e71..1e86 and Adam's line lay flat under the frame; the lr chart hid every lr but 1e308
    setup = {"landscape": "beale", "steps": "300", "r1": "momentum", "r2": "adam", "r2.lr": "0.05",
             "r3": "gd", "r3.lr": "1e308"}
    page = open_page(browser, f"{live_server.url}/?{urlencode(setup)}", 1280, 800)
    wait_for_run(page, 0)
    page.wait_for_function("document.querySelectorAll('#lr-chart path.series').length === 3", timeout=5_000)

    def heights(chart: str, run: int) -> list[float]:
        d = page.get_attribute(f"#{chart} path.series[data-run='{run}']", "d")
        return [float(p.split(",")[1]) for p in d.replace("M", "L").split("L") if p]

    adam = heights("loss-chart", 1)
    frame = (10, 198)   # the plot area of a chart: pad.t to pad.t + ih
    assert all(frame[0] <= y <= frame[1] for y in adam) and max(adam) - min(adam) > 50, adam
    for run in (0, 1):   # the lr of Momentum and Adam, inside the lr chart
        assert all(frame[0] <= y <= frame[1] for y in heights("lr-chart", run))
    page.screenshot(path=str(artifacts / "page-charts-with-divergence-1280x800.png"))
    assert not page.problems, page.problems
    page.close()


def test_a_run_leaving_the_view_is_drawn_in_its_own_direction(browser, live_server, artifacts):
    import math

    from descend import lab

    # GD with lr 1e10 on the bowl jumps from (-2.5, 1) to (2.5e10, -1e11) in one step: steeply down.
    # Each end was clamped to 1e4 px on its own, so the line ran to the corner at 45 degrees.
    run = lab.minimize("bowl", x0=[-2.5, 1.0], optimizer="gd", lr=1e10, steps=50, tol=1e-6)
    (x0, y0), (x1, y1) = run.path[0].tolist(), run.path[1].tolist()
    page = open_page(browser, f"{live_server.url}/?landscape=bowl&x=-2.5&y=1&steps=50&r1=gd&r1.lr=1e10", 1280, 800)
    wait_for_run(page, 0)
    points = page.get_attribute("#paths polyline.path-line", "points").split()
    (ax, ay), (bx, by) = (tuple(map(float, p.split(","))) for p in points[-2:])
    side = 506 / 6   # pixels per unit: the bowl's box is 6 wide and 6 high, drawn 506 x 506
    want = math.atan2(-(y1 - y0) * side, (x1 - x0) * side)
    assert abs(math.atan2(by - ay, bx - ax) - want) < 0.01, (points, want)
    assert page.locator("#edges .end-edge").count() == 1   # and its end is named at the edge
    assert not page.problems, page.problems
    page.close()
