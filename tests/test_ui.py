"""The web UI in a real browser (Debian's Chromium, driven by Playwright) against a real server loaded
with generated traces. Screenshots of every page go to target/ui-screenshots/ for people to look at."""

import os
import random
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from playwright.sync_api import sync_playwright

from conftest import ROOT
from spans import new_trace_id, request, span

CHROMIUM = os.environ.get("OSPREY_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "target" / "ui-screenshots"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LARGE_TRACE_SPANS = 50_000


def send(osprey, service, spans):
    r = requests.post(f"{osprey.http_url}/v1/traces", data=request(service, spans).SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=60)
    assert r.status_code == 200, r.text


def load_shop(osprey, base_ns):
    """A slow checkout (time in the database), a fast one, and a failed login."""
    ids = {"slow": new_trace_id(), "fast": new_trace_id(), "login": new_trace_id()}
    at = lambda ms, **kw: {"base_ns": base_ns, **kw}
    for key, scale in (("slow", 1.0), ("fast", 0.05)):
        t = ids[key]
        root, pay = os.urandom(8), os.urandom(8)
        send(osprey, "gateway", [span(t, "POST /checkout", 0, 2000 * scale, span_id=root, **at(0))])
        send(osprey, "auth", [span(t, "POST /verify", 10 * scale, 30 * scale, parent=root, **at(0))])
        send(osprey, "inventory", [span(t, "GET /stock", 20 * scale, 40 * scale, parent=root, **at(0))])
        send(osprey, "payments", [span(t, "POST /charge", 50 * scale, 1900 * scale, parent=root, span_id=pay,
                                       attributes={"payment.method": "card"}, **at(0))])
        send(osprey, "database", [span(t, "SELECT payments", 100 * scale, 1800 * scale, parent=pay, kind=3,
                                       attributes={"db.system": "postgresql"}, **at(0))])
    send(osprey, "gateway", [span(ids["login"], "POST /login", 500, 40, error=True, base_ns=base_ns)])
    return {k: v.hex() for k, v in ids.items()}


def load_large_trace(osprey, base_ns):
    """A 50,000-span trace: a deep random tree over 10 services, sent in batches of 5,000."""
    rng = random.Random(5)
    trace_id = new_trace_id()
    root = os.urandom(8)
    batch = [span(trace_id, "GET /report", 0, 60_000, span_id=root, base_ns=base_ns)]
    parents = [(root, 0.0, 60_000.0)]
    made = 1
    while made < LARGE_TRACE_SPANS:
        parent, start, length = parents[rng.randrange(len(parents))]
        child_start = start + rng.random() * length * 0.5
        child_length = max(length * rng.random() * 0.5, 0.01)
        child = os.urandom(8)
        batch.append(span(trace_id, f"op-{made % 97}", child_start, child_length, parent=parent, span_id=child,
                          error=made % 997 == 0, base_ns=base_ns))
        if len(parents) < 2000:
            parents.append((child, child_start, child_length))
        made += 1
        if len(batch) == 5000:
            send(osprey, f"service-{made // 5000}", batch)
            batch = []
    if batch:
        send(osprey, "service-x", batch)
    return trace_id.hex()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """One loaded server and one browser for all UI tests."""
    from conftest import Osprey
    server = Osprey(tmp_path_factory.mktemp("ui") / "data").start()
    base_ns = time.time_ns() - 120 * 1_000_000_000
    ids = load_shop(server, base_ns)
    ids["large"] = load_large_trace(server, base_ns)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield server, browser, ids
        finally:
            browser.close()
            server.kill()


@pytest.fixture
def page(ui):
    _, browser, _ = ui
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.problems = problems
    yield page
    page.close()
    assert not problems, problems


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_search_form(page, server, service):
    page.goto(f"{server.query_url}/search")
    page.wait_for_selector(f"select[name=service] option[value={service}]", state="attached")
    page.select_option("select[name=service]", service)


def open_trace(page, server, trace_id):
    page.goto(f"{server.query_url}/trace/{trace_id}")
    page.wait_for_selector("#view[data-ready='true']", timeout=60_000)


def test_search_finds_the_slow_checkout(ui, page):
    server, _, ids = ui
    open_search_form(page, server, "gateway")
    page.fill("input[name=minDuration]", "1s")
    page.click("form[aria-label='Find traces'] button[type=submit]")
    page.wait_for_selector("tr.result")
    assert "service=gateway" in page.url and "minDuration=1s" in page.url
    assert page.locator("tr.result").evaluate_all("rows => rows.map(r => r.dataset.trace)") == [ids["slow"]]
    shot(page, "search-slow-checkouts")

    page.goto(f"{server.query_url}/search?service=gateway&lookback=1h")
    page.wait_for_selector("tr.result")
    found = set(page.locator("tr.result").evaluate_all("rows => rows.map(r => r.dataset.trace)"))
    assert found == {ids["slow"], ids["fast"], ids["login"]}
    assert page.locator("svg.scatter circle").count() == 3
    login_row = page.locator(f"tr.result[data-trace='{ids['login']}']")
    assert "1 errors" in login_row.inner_text()
    shot(page, "search")

    # A click on a scatter-plot point opens its trace.
    page.locator(f"svg.scatter circle[data-trace='{ids['slow']}']").click()
    page.wait_for_selector("#view[data-ready='true']")
    assert page.url.endswith(f"/trace/{ids['slow']}")


def test_traceql_box_finds_traces_and_points_at_errors(ui, page):
    server, _, ids = ui
    page.goto(f"{server.query_url}/search")
    page.fill("textarea[name=q]", '{ resource.service.name = "payments" } > { span.db.system = "postgresql" && duration > 1s }')
    page.click("form.traceql button[type=submit]")
    page.wait_for_selector("tr.result")
    assert "q=" in page.url and "lookback=1h" in page.url
    assert page.locator("tr.result").evaluate_all("rows => rows.map(r => r.dataset.trace)") == [ids["slow"]]
    matched = page.locator("tr.result .matched-span").inner_text()
    assert "database" in matched and "SELECT payments" in matched and "db.system=postgresql" in matched
    shot(page, "search-traceql")

    # Reloading the URL runs the query again; the box keeps it.
    page.goto(page.url)
    page.wait_for_selector("tr.result")
    assert "db.system" in page.input_value("textarea[name=q]")

    page.fill("textarea[name=q]", "{ status = error } | count() >")
    page.press("textarea[name=q]", "Control+Enter")
    page.wait_for_selector(".traceql-error")
    error = page.locator(".traceql-error").inner_text()
    assert "{ status = error } | count() >\n" + " " * 30 + "^" in error, error
    assert "line 1, column 31" in error and "found the end of the query" in error
    shot(page, "search-traceql-error")
    # The browser logs the 400 it was meant to get.
    page.problems[:] = [p for p in page.problems if "status of 400" not in p]


def test_trace_view_shows_order_critical_path_and_bottleneck(ui, page):
    server, _, ids = ui
    open_trace(page, server, ids["slow"])
    rows = page.locator(".row .label").all_inner_texts()
    names = [r.replace("▾", "").replace("▸", "").strip() for r in rows]
    assert names == ["gateway: POST /checkout", "auth: POST /verify", "inventory: GET /stock",
                     "payments: POST /charge", "database: SELECT payments"]
    critical = page.locator(".row[data-critical=true] .label").all_inner_texts()
    assert [c.replace("▾", "").strip() for c in critical] == [
        "gateway: POST /checkout", "auth: POST /verify", "payments: POST /charge", "database: SELECT payments"]
    bottleneck = page.locator("[data-bottleneck]")
    assert bottleneck.get_attribute("data-bottleneck") == "database|SELECT payments"
    assert "1.80s of 2.00s (90%)" in bottleneck.inner_text()
    shot(page, "trace")

    page.locator(".row", has_text="SELECT payments").locator(".label").click()
    details = page.locator(".details")
    assert "db.system" in details.inner_text() and "postgresql" in details.inner_text()
    assert "self time" in details.inner_text()
    shot(page, "trace-span-details")
    page.keyboard.press("Escape")
    assert page.locator(".details").count() == 0

    # Keyboard: j moves the selection down the tree; Enter folds the selected span.
    page.locator(".row .label").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    assert page.locator(".row").count() == 1
    page.keyboard.press("Enter")
    page.keyboard.press("j")
    assert "auth: POST /verify" in page.locator(".row.selected").inner_text()

    # Zoom from the minimap: drag over the second half of the trace.
    box = page.locator(".minimap").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.99, box["y"] + 10)
    page.mouse.up()
    first_tick = page.locator(".axis .tick").first.inner_text()
    assert first_tick != "0ns"


def test_errors_are_marked(ui, page):
    server, _, ids = ui
    open_trace(page, server, ids["login"])
    assert page.locator(".row .err").count() == 1
    assert page.locator(".bar.error").count() == 1
    assert "1 errors" in page.locator(".trace-head").inner_text()


def test_jump_box_takes_a_trace_id_or_a_traceparent(ui, page):
    server, _, ids = ui
    page.goto(f"{server.query_url}/search")
    page.fill("#jump-input", f"00-{ids['fast']}-00f067aa0ba902b7-01")
    page.press("#jump-input", "Enter")
    page.wait_for_selector("#view[data-ready='true']")
    assert page.url.endswith(f"/trace/{ids['fast']}")
    page.fill("#jump-input", ids["slow"].upper())
    page.press("#jump-input", "Enter")
    page.wait_for_url(f"**/trace/{ids['slow']}")
    # Back goes back: every view is a URL.
    page.go_back()
    page.wait_for_url(f"**/trace/{ids['fast']}")


def test_dark_theme_and_unknown_trace(ui, page):
    server, _, ids = ui
    open_trace(page, server, ids["slow"])
    # Each press of t flips the theme, whichever the browser started in.
    before = page.evaluate("document.documentElement.dataset.theme || 'light'")
    page.keyboard.press("t")
    after = page.evaluate("document.documentElement.dataset.theme")
    assert {before, after} == {"dark", "light"}
    if after != "dark":
        page.keyboard.press("t")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 18, 23)"
    shot(page, "trace-dark")
    page.keyboard.press("t")
    page.goto(f"{server.query_url}/trace/{'ab' * 16}")
    page.wait_for_selector(".notice")
    assert "was not found" in page.locator(".notice").inner_text()
    # The browser logs the API's 404 itself; that one is expected.
    assert page.problems == ["console error: Failed to load resource: the server responded with a status of 404 (Not Found)"]
    page.problems.clear()


def test_large_trace_renders_virtualised(ui, page):
    server, _, ids = ui
    started = time.monotonic()
    open_trace(page, server, ids["large"])
    wall_ms = (time.monotonic() - started) * 1000
    timeline = page.locator("[data-render-ms]")
    assert timeline.get_attribute("data-span-count") == str(LARGE_TRACE_SPANS)
    render_ms = float(timeline.get_attribute("data-render-ms"))
    # A benchmark figure, not an assertion on time.
    print(f"\n50,000-span trace: {render_ms:.0f} ms from navigation to drawn timeline in the page, "
          f"{wall_ms:.0f} ms as the test saw it")
    (ROOT / "target" / "ui-large-trace-render.txt").write_text(f"{render_ms:.0f} ms in page, {wall_ms:.0f} ms wall\n")
    assert page.locator(".row").count() < 200, "rows outside the view must not be in the DOM"
    page.locator(".rows").evaluate("el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }")
    page.wait_for_timeout(100)
    assert page.locator(".row").count() < 200
    last_row = page.locator(".row").evaluate_all("rows => Math.max(...rows.map(r => Number(r.dataset.row)))")
    assert last_row == LARGE_TRACE_SPANS - 1
    shot(page, "trace-50k-spans")


def test_service_map_shows_calls_with_rates_errors_latency(ui, page):
    server, _, _ = ui
    page.goto(f"{server.query_url}/map?lookback=1h")
    page.wait_for_selector("#view[data-ready='true']")
    edges = set(page.locator("g.edge").evaluate_all("gs => gs.map(g => g.dataset.edge)"))
    assert {"gateway>auth", "gateway>inventory", "gateway>payments", "payments>database"} <= edges
    label = page.locator("g.edge[data-edge='payments>database']").text_content()
    assert "/s" in label and "% err" in label and "p50 " in label
    assert "that hold spans in the last 1h" in page.locator(".rate-note").inner_text()
    assert page.locator("g.node[data-service=database]").count() == 1
    shot(page, "service-map")
    page.locator("g.node[data-service=payments]").click()
    page.wait_for_selector("#view[data-ready='true']")
    assert "/services?service=payments" in page.url


def test_services_page_charts_rate_errors_and_percentiles(ui, page):
    server, _, _ = ui
    page.goto(f"{server.query_url}/services?service=gateway&lookback=1h")
    page.wait_for_selector("#view[data-ready='true']")
    assert page.locator("svg.chart").count() == 3
    assert page.locator("path[data-series=p99]").count() == 1
    rows = page.locator("tr[data-operation]")
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.operation)")) == {"POST /checkout", "POST /login"}
    login = page.locator("tr[data-operation='POST /login']").inner_text()
    assert "100.0%" in login
    shot(page, "services")


def test_services_page_opens_on_every_service(ui, page):
    server, _, _ = ui
    page.goto(f"{server.query_url}/services?lookback=1h")
    page.wait_for_selector("#view[data-ready='true']")
    services = set(page.locator("tr[data-service]").evaluate_all("rs => rs.map(r => r.dataset.service)"))
    assert {"gateway", "auth", "inventory", "payments", "database"} <= services
    gateway = page.locator("tr[data-service=gateway]")
    assert "/s" in gateway.inner_text() and gateway.locator("svg.sparkline").count() == 1
    # Rates are per second of the stretch that holds spans, and the page says so.
    assert "that hold spans in the last 1h" in page.locator(".rate-note").inner_text()
    shot(page, "services-overview")
    gateway.click()
    page.wait_for_selector("svg.chart")
    assert "/services?service=gateway" in page.url


def test_compare_two_traces(ui, page):
    server, _, ids = ui
    page.goto(f"{server.query_url}/search?service=gateway&operation=POST%20/checkout&lookback=1h")
    page.wait_for_selector("tr.result")
    for trace in (ids["fast"], ids["slow"]):
        page.locator(f"tr.result[data-trace='{trace}'] input.pick").check()
    page.click("text=Compare selected")
    page.wait_for_selector("#view[data-ready='true']")
    verdicts = dict(page.locator("tr[data-path]").evaluate_all("rs => rs.map(r => [r.dataset.path, r.dataset.verdict])"))
    # B against A: the slow trace's payment path is slower, whichever of the two the page put second.
    compared = parse_qs(urlparse(page.url).query)
    assert {compared["a"][0], compared["b"][0]} == {ids["fast"], ids["slow"]}
    expected = "slower" if compared["b"][0] == ids["slow"] else "faster"
    assert verdicts["gateway: POST /checkout > payments: POST /charge > database: SELECT payments"] == expected
    assert set(verdicts.values()) <= {"slower", "faster", "same"}
    shot(page, "compare")
    page.goto(f"{server.query_url}/compare?a={ids['slow']}&b={ids['login']}")
    page.wait_for_selector("#view[data-ready='true']")
    verdicts = set(page.locator("tr[data-path]").evaluate_all("rs => rs.map(r => r.dataset.verdict)"))
    assert {"added", "missing"} <= verdicts


def test_custom_time_range(ui, page):
    server, _, ids = ui
    open_search_form(page, server, "gateway")
    page.select_option("select[name=lookback]", "custom")
    # The shop's traces started two minutes ago; a range that ended ten minutes ago finds none...
    to_local = "new Date(Date.now() - 600e3 - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 19)"
    from_local = "new Date(Date.now() - 3600e3 - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 19)"
    page.fill("input[name=start]", page.evaluate(from_local))
    page.fill("input[name=end]", page.evaluate(to_local))
    page.click("form[aria-label='Find traces'] button[type=submit]")
    page.wait_for_selector(".notice")
    assert "lookback=custom" in page.url and "start=" in page.url and "end=" in page.url
    # ...and the URL, shared, reproduces the search; a range around now finds all three.
    now_us = int(time.time() * 1e6)
    page.goto(f"{server.query_url}/search?service=gateway&start={now_us - 600_000_000}&end={now_us}")
    page.wait_for_selector("tr.result")
    assert page.locator("tr.result").count() == 3
    assert page.locator("select[name=lookback]").input_value() == "custom"
