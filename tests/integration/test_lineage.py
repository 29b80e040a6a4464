"""Lineage of a consensus label: its labels, people, guidelines, run and training run."""

from __future__ import annotations

from tests.crowd import ASIDE, CROWD


def _url(project_id, run_id, task_id):
    return f"/api/v1/projects/{project_id}/consensus/{run_id}/tasks/{task_id}/lineage"


def test_a_consensus_label_leads_to_its_labels_people_guidelines_and_run(
        world, project_id, run_id, seeder):
    task_id = seeder.task_ids()["t4"]
    response = world.get("auditor", _url(project_id, run_id, task_id))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["task"] == {"id": task_id, "external_id": "t4", "gold": None}
    assert body["run"]["id"] == run_id and len(body["run"]["input_fingerprint"]) == 64
    assert body["consensus"]["label"] == "positive" and body["consensus"]["labels"] == 3
    assert body["training"] is None
    labels = body["labels"]
    expected = [(row[2], row[1], row[3], row[4]) for row in CROWD if row[0] == "t4"]
    expected += [(row[2], row[1], row[3], row[4]) for row in ASIDE if row[0] == "t4"]
    assert [(lab["worker"]["external_id"], lab["workforce"]["name"].replace(
        "Vendor ", "vendor_").lower(), lab["value"], lab["guideline"]["locale"])
        for lab in labels] == expected
    read = [lab for lab in labels if lab["in_run"]]
    assert len(read) == body["consensus"]["labels"]
    aside = [lab for lab in labels if not lab["counted"]]
    assert [lab["set_aside"] for lab in aside] == ["superseded"]
    for label in labels:
        assert label["guideline"]["number"] == 1 and label["guideline"]["version_id"]
        assert label["workforce"]["region"] in ("eu", "in")
        assert label["assignment"]["currency"] == "EUR"


def test_labels_after_the_run_are_not_read_by_it(world, project_id, run_id, seeder):
    seeder.add([("t6", "vendor_in", "c", "neutral", "hi")])
    body = world.get("auditor", _url(project_id, run_id, seeder.task_ids()["t6"])).get_json()
    assert [lab["in_run"] for lab in body["labels"]] == [True, True, False, False]
    assert body["consensus"]["labels"] == 2


def test_unknown_or_foreign_labels_are_not_found(world, project_id, run_id, seeder):
    task_id = seeder.task_ids()["t1"]
    assert world.get("auditor", _url(project_id, run_id, 999999)).status_code == 404
    assert world.get("auditor", _url(project_id, run_id + 1, task_id)).status_code == 404
    other = world.post("manager", "/api/v1/projects", json={
        "name": "Other", "label_classes": ["a", "b"], "source_locale": "en",
        "redundancy": 1, "residency_region": "eu"}).get_json()["id"]
    assert world.get("auditor", _url(other, run_id, task_id)).status_code == 404
    assert world.get("vendor_eu", _url(project_id, run_id, task_id)).status_code == 403


def test_in_run_follows_the_runs_label_watermark_not_the_clock(app, world, project_id,
                                                                run_id, seeder):
    from datetime import timedelta

    from sqlalchemy import select, update

    from coordinator import db
    from coordinator.labels.models import Label

    seeder.add([("t6", "vendor_in", "c", "neutral", "hi")])
    task_id = seeder.task_ids()["t6"]
    with app.app_context():  # a transaction that began before the run and committed after it
        session = db.session()
        newest = session.scalar(select(Label.id).order_by(Label.id.desc()).limit(1))
        session.execute(update(Label).where(Label.id == newest).values(
            submitted_at=db.utcnow() - timedelta(days=1)))
        session.commit()
    body = world.get("auditor", _url(project_id, run_id, task_id)).get_json()
    assert [lab["in_run"] for lab in body["labels"]] == [True, True, False, False]
    assert body["in_run_checked"] is True and body["run"]["max_label_id"] < newest
    assert body["consensus"]["labels"] == 2
