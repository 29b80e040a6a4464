"""Signed report links open the page and CSV downloads without a bearer token."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import update

from coordinator import db
from coordinator.accounts.models import Account
from tests.helpers import assert_invalid


def _links(world, project_id, who="auditor", **query):
    response = world.get(who, f"/api/v1/projects/{project_id}/report/links", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _path(url):
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_link_opens_the_page_and_every_csv_without_a_token(world, client, project_id,
                                                               run_id):
    links = _links(world, project_id)
    assert set(links["csv"]) >= {"agreement", "cost", "disagreement"}
    page = client.get(_path(links["page"]))
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    # The page's own CSV links are signed too, so they work from the browser.
    assert "report/agreement.csv?link=" in text
    for name, url in links["csv"].items():
        response = client.get(_path(url))
        assert response.status_code == 200, (name, response.get_json())
        assert response.mimetype == "text/csv"
    # Without a link or a token the page is refused.
    assert client.get(f"/api/v1/projects/{project_id}/report.html").status_code == 401


def test_a_link_binds_its_filters(world, client, project_id, run_id):
    links = _links(world, project_id, top=1, since="2020-01-01")
    page = client.get(_path(links["csv"]["disagreement"]))
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("\n") <= 2  # header and one row: top=1
    widened = client.get(_path(links["csv"]["disagreement"]) + "&top=50")
    assert widened.status_code == 403
    assert "filters" in widened.get_json()["detail"]


def test_tampered_expired_and_foreign_links_are_refused(world, client, project_id, run_id,
                                                       monkeypatch):
    token = parse_qs(urlsplit(_links(world, project_id)["page"]).query)["link"][0]
    base = f"/api/v1/projects/{project_id}/report.html"
    tampered = client.get(f"{base}?link={token[:-3]}abc",
                          headers={"Accept-Language": "de"})
    assert tampered.status_code == 401
    assert tampered.mimetype == "application/problem+json"
    assert tampered.get_json()["detail"] != ""
    other = world.post("manager", "/api/v1/projects", json={
        "name": "Other", "label_classes": ["a", "b"], "source_locale": "en",
        "redundancy": 1, "residency_region": "eu"}).get_json()["id"]
    foreign = client.get(f"/api/v1/projects/{other}/report.html?link={token}")
    assert foreign.status_code == 403
    assert str(project_id) in foreign.get_json()["detail"]
    short = _links(world, project_id, expires_in=60)
    later = time.time() + 61
    monkeypatch.setattr("coordinator.reports.links.time", SimpleNamespace(time=lambda: later))
    expired = client.get(_path(short["page"]))
    assert expired.status_code == 401 and "expired" in expired.get_json()["detail"]


def test_links_act_for_a_reader_who_is_still_one(world, app, client, project_id, run_id):
    assert world.get("vendor_eu", f"/api/v1/projects/{project_id}/report/links"
                     ).status_code == 403
    bad = world.get("auditor", f"/api/v1/projects/{project_id}/report/links",
                    query_string={"expires_in": 5})
    assert_invalid(bad, "expires_in")
    links = _links(world, project_id)
    with app.app_context():
        db.session().execute(update(Account).where(
            Account.id == world.account_ids["auditor"]).values(active=False))
        db.session().commit()
    refused = client.get(_path(links["page"]))
    assert refused.status_code == 403
