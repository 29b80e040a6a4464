"""The worker page in headless Chromium: Arabic right to left, on a phone, without a framework."""

from __future__ import annotations

from urllib.parse import parse_qs

from sqlalchemy import select

from coordinator import db
from coordinator.labels.models import Label
from tests.integration.test_guidelines import export, fill, put_po
from tests.integration.test_mturk_flow import mturk, publish, standin  # noqa: F401 (fixtures)

AR = {"Guide": "دليل", "Label the sentiment.": "صنّف المشاعر."}


def test_arabic_worker_labels_on_a_phone(app, world, mturk, live_server, chromium):  # noqa: F811
    put_po(world, mturk["project_id"], 1, "ar", fill(export(world, mturk["project_id"], 1, "ar"), AR))
    hit_id = publish(world, mturk).get_json()["created"][0]
    context = chromium.new_context(locale="ar-EG", viewport={"width": 375, "height": 667},
                                   is_mobile=True, has_touch=True)
    page = context.new_page()
    posted = []

    def external_submit(route):
        posted.append(parse_qs(route.request.post_data))
        route.fulfill(status=200, body="ok")

    page.route("https://workersandbox.mturk.com/**", external_submit)
    page.goto(f"{live_server}/mturk/task?hitId={hit_id}&assignmentId=A1&workerId=W1"
              "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    assert page.locator("#guideline article").get_attribute("dir") == "rtl"
    assert page.locator("#guideline article").get_attribute("lang") == "ar"
    assert "صنّف المشاعر" in page.locator("#guideline").inner_text()
    page.wait_for_function("document.getElementById('item').textContent.includes('رائع')")
    # usable on a phone: nothing wider than the screen, touch targets of a decent size
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.locator(".choice").first.bounding_box()["height"] >= 44
    page.locator("input[value=negative]").check()
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.locator("#send").click()
    for _ in range(50):
        if posted:
            break
        page.wait_for_timeout(100)
    assert posted, console
    assert posted and posted[0]["assignmentId"] == ["A1"] and posted[0]["label"] == ["negative"]
    assert posted[0]["locale"] == ["ar"]
    with app.app_context():  # stored with us before MTurk heard of it
        label = db.session().scalar(select(Label))
        assert label.value == "negative" and label.guideline_locale == "ar"
    context.close()


def test_preview_shows_no_item_and_no_token(world, mturk, live_server, chromium):  # noqa: F811
    hit_id = publish(world, mturk).get_json()["created"][0]
    page = chromium.new_page()
    page.goto(f"{live_server}/mturk/task?hitId={hit_id}&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
    assert page.locator("#preview").is_visible()
    assert page.locator("#item").count() == 0 and page.locator("[data-token]").count() == 0
    page.close()
