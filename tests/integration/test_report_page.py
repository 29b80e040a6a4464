"""The report page in headless Chromium, opened from a signed link with no token."""

from __future__ import annotations

import os
import shutil


def _inside(page, selector):
    """Whether the element's content fits its box (nothing pokes out sideways)."""
    return page.eval_on_selector(selector, "e => e.scrollWidth <= e.clientWidth + 1")


def _legend_beside_bars(page):
    for axes in page.locator("#chart-agreement svg g[id^=axes]").all():
        legend = axes.locator("g[id^=legend]").first.bounding_box()
        background = axes.locator("g[id^=patch]").first.bounding_box()
        assert legend and background
        assert legend["x"] >= background["x"] + background["width"] - 1, (legend, background)


def _shot(page, tmp_path, name):
    shot = tmp_path / name  # COORDINATOR_TEST_SCREENSHOT: a folder to copy them to
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("COORDINATOR_TEST_SCREENSHOT"):
        shutil.copy(shot, os.path.join(os.environ["COORDINATOR_TEST_SCREENSHOT"], name))
    from PIL import Image

    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100  # not one blank colour
    histogram = image.histogram()
    assert max(histogram) < 0.97 * sum(histogram)  # more than a few stray pixels drawn


def test_the_report_page_from_a_link_in_chromium(world, project_id, run_id, live_server,
                                                  chromium, tmp_path):
    links = world.get("auditor", f"/api/v1/projects/{project_id}/report/links").get_json()
    page_url = links["page"].replace("http://localhost", live_server, 1) if \
        not links["page"].startswith(live_server) else links["page"]
    # No Authorization header: the link alone opens the page, as in an auditor's browser.
    context = chromium.new_context(locale="fr-FR", extra_http_headers={"Accept-Language": "fr"},
                                   viewport={"width": 1100, "height": 900})
    page = context.new_page()
    response = page.goto(page_url)
    assert response.status == 200
    assert page.locator("html").get_attribute("lang") == "fr"
    for chart in ("#chart-agreement", "#chart-gold", "#chart-confusion"):
        box = page.locator(f"{chart} svg").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, chart
    assert page.locator("table").count() >= 6
    _legend_beside_bars(page)
    assert _inside(page, "#downloads") and _inside(page, "body")
    _shot(page, tmp_path, "report.png")
    # A CSV link on the page downloads in the same browser, still without a token.
    with page.expect_download() as download:
        page.locator("#downloads a", has_text="agreement_by_workforce").click()
    assert download.value.suggested_filename == f"project-{project_id}-agreement_by_workforce.csv"
    assert b"run_id,labels_fingerprint" in open(download.value.path(), "rb").read()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    # At phone width nothing runs off the side of the page.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    assert _inside(page, "#downloads")
    _shot(page, tmp_path, "report-phone.png")
    context.close()
