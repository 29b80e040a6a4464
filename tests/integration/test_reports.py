"""The auditor's report: JSON, CSV and HTML, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select, update

from coordinator import db
from coordinator.labels.models import Label
from coordinator.reports.rendering import TABLES
from coordinator.reports.services import labels_fingerprint
from tests.crowd import ASIDE, CROWD
from tests.helpers import assert_invalid

EARLY = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


def _report(world, project_id, who="auditor", **query):
    response = world.get(who, f"/api/v1/projects/{project_id}/report", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def run_id(world, crowd):
    response = world.post("manager", f"{crowd}/consensus", json={"gold_holdout": 0.0})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _label_ids(app, project_id, **where):
    with app.app_context():
        query = db.session().query(Label.id).filter(Label.project_id == project_id,
                                                    Label.counted.is_(True))
        if "before" in where:
            query = query.filter(Label.submitted_at < where["before"])
        return np.array([i for (i,) in query.all()], dtype=np.int64)


def test_the_report_says_what_every_figure_comes_from(world, app, project_id, run_id):
    report = _report(world, project_id)
    source = report["source"]
    assert source["run_id"] == run_id and source["labels"] == len(CROWD)
    assert source["labels_fingerprint"] == labels_fingerprint(_label_ids(app, project_id))
    run = world.get("auditor", f"/api/v1/projects/{project_id}/consensus/{run_id}").get_json()
    assert source["run_fingerprint"] == run["input_fingerprint"]
    for section in ("agreement", "gold_over_time", "disagreement"):
        assert report[section]["source"] == source, section
    # Confusion and skills are what the run stored: its own labels, not the report's.
    assert report["confusion"]["source"] == {
        "run_id": run_id, "run_fingerprint": run["input_fingerprint"], "labels": run["labels"],
        "labels_fingerprint": None, "since": None, "until": None, "scope": "run"}
    # Cost prices every label paid for, the two kept aside too.
    with app.app_context():
        every = np.array(db.session().scalars(select(Label.id).where(
            Label.project_id == project_id)).all(), dtype=np.int64)
    cost = report["cost"]["source"]
    assert cost["scope"] == "priced" and cost["labels"] == len(CROWD) + len(ASIDE)
    assert cost["labels_fingerprint"] == labels_fingerprint(every)
    assert sum(row["labels"] for row in report["cost"]["rows"]) == cost["labels"]
    assert report["model"] is None
    # A window narrows the report's labels, not the run's.
    later = _report(world, project_id, since="2999-01-01")
    assert later["source"]["labels"] == 0 and later["cost"]["source"]["labels"] == 0
    assert later["confusion"]["source"]["labels"] == run["labels"]


def test_agreement_matches_the_agreement_endpoint(world, project_id, run_id):
    report = _report(world, project_id)["agreement"]
    for by in ("", "workforce", "region", "locale", "worker"):
        expected = world.get("auditor", f"/api/v1/projects/{project_id}/agreement",
                             query_string={"by": by} if by else {}).get_json()["groups"]
        rows = [report["overall"]] if not by else report[f"by_{by}"]
        assert len(rows) == len(expected), by
        for row, group in zip(rows, expected, strict=True):
            if by:
                assert row[by] == group["group"][by]
            for metric in ("labels", "tasks", "workers", "krippendorff_alpha", "fleiss_kappa",
                           "cohen_kappa", "accuracy_consensus", "accuracy_gold"):
                assert row.get(metric) == pytest.approx(group[metric], nan_ok=True), (by, metric)
    names = {row["name"] for row in report["by_workforce"]}
    assert names == {"Vendor EU", "Vendor IN"}
    assert {row["locale"] for row in report["by_locale"]} == {"de", "en", "hi"}


def test_confusion_cost_and_disagreement(world, project_id, run_id, seeder):
    report = _report(world, project_id)
    confusion = report["confusion"]
    assert confusion["classes"] == ["positive", "negative", "neutral"]
    assert len(confusion["workers"]) == 4
    for item in confusion["by_workforce"]:
        assert np.allclose(np.sum(item["matrix"], axis=1), 1.0)
        assert item["workers"] == 2 and 0 <= item["skill"] <= 1
    eu = next(item for item in confusion["workers"] if item["external_id"] == "a")
    assert eu["gold_answers"] == 3 and eu["gold_accuracy"] == pytest.approx(1.0)
    # Every label is paid, counted or not (the seeder prices each at 0.05 EUR).
    cost = {row["name"]: row for row in report["cost"]["rows"]}
    eu_labels = sum(1 for row in CROWD if row[1] == "vendor_eu") + 1  # one kept aside
    assert cost["Vendor EU"]["labels"] == eu_labels
    assert cost["Vendor EU"]["currency"] == "EUR"
    assert cost["Vendor EU"]["spend"] == f"{0.05 * eu_labels:.4f}"
    eu_tasks = len({row[0] for row in CROWD if row[1] == "vendor_eu"})
    assert cost["Vendor EU"]["consensus_labels"] == eu_tasks
    assert float(cost["Vendor EU"]["cost_per_consensus_label"]) == pytest.approx(
        0.05 * eu_labels / eu_tasks, abs=1e-4)
    rows = report["disagreement"]["rows"]
    # t5 splits 2 to 1; t1, t2 and t3 split 3 to 1; t4 and t6 agree fully.
    assert rows[0]["external_id"] == "t5"
    assert rows[0]["counts"] == {"positive": 1, "negative": 2, "neutral": 0}
    assert rows[0]["agreement"] == pytest.approx(2 / 3)
    assert {r["external_id"] for r in rows[1:4]} == {"t1", "t2", "t3"}
    assert [r["agreement"] for r in rows] == sorted(r["agreement"] for r in rows)
    assert rows[-1]["external_id"] in {"t4", "t6"} and rows[-1]["agreement"] == 1.0
    assert all(r["consensus"] in ("positive", "negative", "neutral") for r in rows)
    assert len(_report(world, project_id, top=2)["disagreement"]["rows"]) == 2


def test_a_date_range_reads_only_its_labels(world, app, project_id, run_id, seeder):
    with app.app_context():
        session = db.session()
        first = sorted(_label_ids(app, project_id))[:8]
        session.execute(update(Label).where(Label.id.in_([int(i) for i in first]))
                        .values(submitted_at=EARLY))
        session.commit()
    early = _report(world, project_id, since="2026-03-01", until="2026-03-01")
    assert early["source"]["labels"] == 8
    assert early["source"]["labels_fingerprint"] == labels_fingerprint(np.array(first))
    assert early["agreement"]["overall"]["labels"] == 8
    assert [row["day"] for row in early["gold_over_time"]["rows"]] == ["2026-03-01"]
    late = _report(world, project_id, since=(EARLY + timedelta(days=1)).isoformat())
    assert late["source"]["labels"] == len(CROWD) - 8
    nothing = _report(world, project_id, since="2020-01-01", until="2020-01-31")
    assert nothing["source"]["labels"] == 0
    assert nothing["agreement"]["overall"] is None
    assert all(nothing["agreement"][f"by_{by}"] == [] for by in ("workforce", "worker"))
    assert nothing["disagreement"]["rows"] == [] and nothing["cost"]["rows"] == []
    assert nothing["gold_over_time"]["rows"] == []
    assert nothing["source"]["run_id"] == run_id  # the run is still named


def test_an_empty_project_has_an_empty_report(world, project_id):
    report = _report(world, project_id)
    assert report["run"] is None and report["source"]["labels"] == 0
    assert report["confusion"] == {"source": {
        "run_id": None, "run_fingerprint": None, "labels": 0, "labels_fingerprint": None,
        "since": None, "until": None, "scope": "run"}, "classes": [], "by_workforce": [],
        "workers": []}
    page = world.get("auditor", f"/api/v1/projects/{project_id}/report.html")
    assert page.status_code == 200 and 'id="no-labels"' in page.get_data(as_text=True)
    for table in TABLES:
        response = world.get("auditor", f"/api/v1/projects/{project_id}/report/{table}.csv")
        assert response.status_code == 200
        assert len(response.get_data(as_text=True).splitlines()) == 1  # the header only


def test_bad_input_is_refused(world, crowd, run_id, project_id):
    other = world.post("manager", "/api/v1/projects", json={
        "name": "Other", "label_classes": ["a", "b"], "source_locale": "en",
        "redundancy": 1, "residency_region": "eu"}).get_json()["id"]
    url = f"/api/v1/projects/{other}/report"
    response = world.get("auditor", url, query_string={"run_id": run_id})
    assert response.status_code == 404, response.get_json()
    assert world.get("auditor", "/api/v1/projects/999999/report").status_code == 404
    for query, field in [({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until"),
                         ({"since": "2026-03-01T10:00:00"}, "since"),
                         ({"since": "2026-03-02", "until": "2026-03-01"}, "until"),
                         ({"run_id": "x"}, "run_id"), ({"top": -1}, "top")]:
        assert_invalid(world.get("auditor", f"/api/v1/projects/{project_id}/report",
                                 query_string=query), field, context=query)
    missing = world.get("auditor", f"/api/v1/projects/{project_id}/report/nothing.csv")
    assert missing.status_code == 404
    assert world.get("vendor_eu", f"/api/v1/projects/{project_id}/report").status_code == 403


def test_csv_downloads_name_their_source(world, project_id, run_id):
    report = _report(world, project_id)
    fingerprint = report["source"]["labels_fingerprint"]
    own = {"confusion_by_workforce": report["run"]["input_fingerprint"],
           "worker_skills": report["run"]["input_fingerprint"],
           "cost": report["cost"]["source"]["labels_fingerprint"]}
    assert len({fingerprint, *own.values()}) == 3
    for table in TABLES:
        response = world.get("auditor", f"/api/v1/projects/{project_id}/report/{table}.csv")
        assert response.status_code == 200, table
        assert response.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert rows, table
        assert {row["run_id"] for row in rows} == {str(run_id)}
        assert {row["labels_fingerprint"] for row in rows} == {own.get(table, fingerprint)}, table
    workforce = world.get("auditor", f"/api/v1/projects/{project_id}/report/"
                                     "agreement_by_workforce.csv").get_data(as_text=True)
    assert workforce.splitlines()[0].startswith("workforce,name,labels,")


def test_the_page_is_in_the_readers_language(world, project_id, run_id):
    url = f"/api/v1/projects/{project_id}/report.html"
    english = world.client.get(url, headers=world.headers("auditor", **{
        "Accept-Language": "en"})).get_data(as_text=True)
    german = world.client.get(url, headers=world.headers("auditor", **{
        "Accept-Language": "de"}))
    assert german.headers["Content-Language"] == "de"
    text = german.get_data(as_text=True)
    assert '<html lang="de">' in text
    assert "<svg" in text and text.count("<svg") == 3  # agreement, gold, confusion
    # Numbers follow the reader's locale: 100 % and 0,123 in German, 100% and 0.123 in English.
    assert "100\u00a0%" in text and "100%" in english
    tables = re.sub(r"<svg.*?</svg>", "", text, flags=re.S)  # the charts' ticks aside
    assert re.search(r">-?0,\d{1,3}<", tables) and not re.search(r">-?0\.\d{1,3}<", tables)
    assert re.search(r">-?0\.\d{1,3}<", re.sub(r"<svg.*?</svg>", "", english, flags=re.S))
    assert "@media print" in text



def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(app, world, project_id, run_id):
    from coordinator.dispatch.models import Worker

    with app.app_context():
        session = db.session()
        workers = list(session.scalars(select(Worker).order_by(Worker.id)))
        names = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"]
        names = names[:len(workers) - 1] + ["ok"]
        for worker, name in zip(workers, names, strict=True):
            worker.external_id = name
        session.commit()
    text = world.get("auditor", f"/api/v1/projects/{project_id}/report/worker_skills.csv"
                     ).get_data(as_text=True)
    shown = {row["external_id"] for row in csv.DictReader(io.StringIO(text))}
    assert len(names) >= 4 and shown == {"ok", *("'" + name for name in names[:-1])}
    skills = [row["skill"] for row in csv.DictReader(io.StringIO(text)) if row["skill"]]
    assert skills and not any(value.startswith("'") for value in skills)  # numbers stay numbers
