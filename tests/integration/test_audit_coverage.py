"""Every state change leaves an audit event, and bulk events name what they changed."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from babel.messages.pofile import read_po, write_po
from sqlalchemy import func, select

from coordinator import db, jobs
from coordinator.audit.models import AuditEvent
from coordinator.dispatch.models import Worker
from coordinator.feedback.models import TrainingRun
from coordinator.guidelines import services as guidelines
from coordinator.guidelines.models import GuidelineVersion
from coordinator.labels.models import Label
from coordinator.projects.models import Task
from tests.helpers import audit_events

API = "/api/v1"
GUIDE = "# Guide\n\nLabel the sentiment.\n"


def _seq(app) -> int:
    with app.app_context():
        return db.session().scalar(select(func.max(AuditEvent.seq))) or 0


def _actions_since(app, seq: int) -> list[str]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent.action)
                                         .where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))


def _ndjson(rows) -> bytes:
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


def _publish_and_import(world, base, tasks):
    assert world.post("manager", f"{base}/guidelines",
                      json={"title": "g", "source_markdown": GUIDE}).status_code == 201
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    response = world.post("manager", f"{base}/tasks/import", data=_ndjson(tasks),
                          headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.get_json()


TASKS = [{"external_id": f"t{n}", "payload": {"text": f"text {n}"}, "languages": ["en"],
          **({"gold": "positive"} if n == 0 else {})} for n in range(3)]


def test_every_key_write_route_adds_an_audit_event(app, world):
    """Each write below must add at least one event, with the action it names."""
    steps = []

    def step(name, action, call, ok=(200, 201, 202, 204)):
        before = _seq(app)
        response = call()
        assert response.status_code in ok, (name, response.get_data(as_text=True))
        steps.append((name, action, _actions_since(app, before)))
        return response

    project = step("project create", "project.create", lambda: world.post(
        "manager", f"{API}/projects", json={
            "name": "Audited", "label_classes": ["positive", "negative", "neutral"],
            "source_locale": "en", "redundancy": 1, "residency_region": "eu"})).get_json()
    base = f"{API}/projects/{project['id']}"
    step("project update", "project.update",
         lambda: world.patch("manager", base, json={"description": "audited"}))
    step("guideline create", "guideline.create", lambda: world.post(
        "manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE}))
    step("guideline publish", "guideline.publish",
         lambda: world.post("manager", f"{base}/guidelines/1/publish"))
    step("task import", "tasks.import", lambda: world.post(
        "manager", f"{base}/tasks/import", data=_ndjson(TASKS),
        headers={"Content-Type": "application/x-ndjson"}))
    step("dispatch", "dispatch.run", lambda: world.post("manager", f"{base}/dispatch", json={}))
    leases = step("lease", "lease.take", lambda: world.post(
        "vendor_eu", f"{API}/vendor/leases", json={"limit": 10})).get_json()["leases"]
    assert leases
    step("label submit", "labels.submit", lambda: world.post(
        "vendor_eu", f"{API}/vendor/labels", headers={"Idempotency-Key": "k1"},
        json={"labels": [{"assignment_id": lease["assignment_id"], "worker_id": "w1",
                          "label": "positive"} for lease in leases]}))
    step("consensus run", "consensus.run",
         lambda: world.post("manager", f"{base}/consensus", json={"method": "majority_vote"}))
    step("webhook register", "webhook.register", lambda: world.client.put(
        f"{API}/workforces/{world.workforce_ids['vendor_eu']}/webhook",
        headers=world.headers("vendor_eu"),
        json={"url": "https://vendor-eu.example/coordinator/hook"}))
    step("token issue", "token.create", lambda: world.post(
        "admin", f"{API}/accounts/{world.account_ids['auditor']}/tokens", json={"name": "ci"}))
    silent = [name for name, _, actions in steps if not actions]
    assert silent == [], f"writes without an audit event: {silent}"
    for name, action, actions in steps:
        assert any(a == action or a.startswith(action.split(".")[0] + ".")
                   for a in actions), (name, action, actions)


def test_a_lease_records_one_event_naming_the_assignments(app, world, project_id):
    base = f"{API}/projects/{project_id}"
    _publish_and_import(world, base, TASKS)
    assert world.post("manager", f"{base}/dispatch", json={}).status_code == 200
    leased = world.post("vendor_eu", f"{API}/vendor/leases", json={"limit": 10}).get_json()
    ids = sorted(item["assignment_id"] for item in leased["leases"])
    events = audit_events(app, "lease.take")
    assert len(events) == 1
    event = events[0]
    assert event.subject_type == "workforce"
    assert event.subject_id == str(world.workforce_ids["vendor_eu"])
    assert event.actor_id == world.account_ids["vendor_eu"]
    assert event.before == {"status": "offered"}
    assert event.after == {"status": "leased", "assignments": ids}
    assert world.post("vendor_eu", f"{API}/vendor/leases",
                      json={"limit": 10}).get_json()["leases"] == []
    assert len(audit_events(app, "lease.take")) == 1  # nothing leased, nothing recorded


def test_a_label_submission_names_its_labels_and_new_workers(app, world, project_id):
    base = f"{API}/projects/{project_id}"
    _publish_and_import(world, base, TASKS)
    world.post("manager", f"{base}/dispatch", json={})
    leases = world.post("vendor_eu", f"{API}/vendor/leases", json={"limit": 10}).get_json()
    labels = [{"assignment_id": lease["assignment_id"], "worker_id": f"w{n % 2}",
               "label": "negative"} for n, lease in enumerate(leases["leases"])]
    labels.append({"assignment_id": 999999, "worker_id": "w9", "label": "positive"})
    response = world.post("vendor_eu", f"{API}/vendor/labels", json={"labels": labels},
                          headers={"Idempotency-Key": "batch-1"})
    assert response.status_code == 200, response.get_json()
    [event] = audit_events(app, "labels.submit")
    with app.app_context():
        session = db.session()
        stored = session.execute(select(Label.id, Label.assignment_id, Label.worker_id,
                                        Label.value).order_by(Label.id)).all()
        workers = sorted(session.scalars(select(Worker.id).where(
            Worker.external_id.in_(["w0", "w1"]))))
    ids = [row[0] for row in stored]
    assert event.after["label_ids"] == [[ids[0], ids[-1]]] and ids == list(
        range(ids[0], ids[-1] + 1))
    expected = hashlib.sha256(json.dumps(
        ["coordinator.labels.written/1", [list(row) for row in stored]],
        separators=(",", ":")).encode()).hexdigest()
    assert event.after["labels_sha256"] == expected
    assert event.after["new_workers"] == workers and len(workers) == 2


def test_a_task_import_names_its_rows_by_hash_and_ids(app, world, project_id):
    base = f"{API}/projects/{project_id}"
    _publish_and_import(world, base, TASKS)
    [event] = audit_events(app, "tasks.import")
    with app.app_context():
        rows = db.session().execute(select(Task.id, Task.external_id, Task.content_hash,
                                           Task.gold).order_by(Task.id)).all()
    assert event.after["task_ids"] == [rows[0].id, rows[-1].id]
    expected = hashlib.sha256(json.dumps(
        ["coordinator.tasks.imported/1", [[r.external_id, r.content_hash, r.gold] for r in rows]],
        separators=(",", ":")).encode()).hexdigest()
    assert event.after["tasks_sha256"] == expected
    more = [{"external_id": "t9", "payload": {"text": "nine"}, "languages": ["en"]}]
    world.post("manager", f"{base}/tasks/import", data=_ndjson(TASKS + more),
               headers={"Content-Type": "application/x-ndjson"})
    second = audit_events(app, "tasks.import")[1]
    with app.app_context():
        nine = db.session().scalar(select(Task.id).where(Task.external_id == "t9"))
    assert second.after["task_ids"] == [nine, nine] and second.after["created"] == 1


def test_a_translation_import_records_the_locale_before_and_after(app, world, project_id):
    base = f"{API}/projects/{project_id}"
    _publish_and_import(world, base, TASKS)
    catalog = world.get("manager", f"{base}/guidelines/1/translations/de.po")
    assert catalog.status_code == 200, catalog.get_data(as_text=True)
    messages = read_po(io.BytesIO(catalog.data))
    for message in messages:
        if message.id:
            message.string = f"Übersetzt: {message.id}"
    filled = io.BytesIO()
    write_po(filled, messages)
    url = f"{base}/guidelines/1/translations/de"
    headers = {**world.headers("manager"), "Content-Type": "text/x-gettext-translation"}
    for _ in range(2):
        response = world.client.put(url, data=filled.getvalue(), headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    one, two = audit_events(app, "guideline.translation.import")
    assert one.after["translations_sha256_before"] != one.after["translations_sha256_after"]
    assert two.after["translations_sha256_before"] == one.after["translations_sha256_after"]
    assert two.after["translations_sha256_after"] == one.after["translations_sha256_after"]


def test_a_draft_is_gone_before_its_deletion_is_recorded(app, world, project_id, monkeypatch):
    base = f"{API}/projects/{project_id}"
    assert world.post("manager", f"{base}/guidelines",
                      json={"title": "g", "source_markdown": GUIDE}).status_code == 201
    seen = []
    real = guidelines.record

    def watching(session, actor, action, *args, **kwargs):
        if action == "guideline.delete":
            seen.append(session.connection().scalar(
                select(func.count()).select_from(GuidelineVersion)))
        return real(session, actor, action, *args, **kwargs)

    monkeypatch.setattr(guidelines, "record", watching)
    assert world.delete("manager", f"{base}/guidelines/1").status_code == 204
    assert seen == [0]
    [event] = audit_events(app, "guideline.delete")
    assert event.before["title"] == "g"


def test_a_training_crash_is_committed_as_failed_with_its_event(app, world, project_id,
                                                                run_id, monkeypatch):
    import training.job

    def crash(*_args, **_kwargs):
        raise RuntimeError("the GPU fell over")

    monkeypatch.setattr(training.job, "train", crash)
    base = f"{API}/projects/{project_id}"
    run = world.post("manager", f"{base}/training-runs",
                     json={"folds": 2, "epochs": 1, "device": "cpu"}).get_json()
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "failed"
    with app.app_context():  # a fresh session: what the job committed
        stored = db.session().get(TrainingRun, run["id"])
        assert stored.status == "failed" and "the GPU fell over" in stored.error
    [event] = audit_events(app, "training.fail")
    assert event.subject_id == str(run["id"]) and "the GPU fell over" in event.after["error"]


@pytest.mark.parametrize("who", ["auditor"])
def test_reads_add_no_event(app, world, project_id, who):
    before = _seq(app)
    assert world.get(who, f"{API}/projects/{project_id}").status_code == 200
    assert world.get(who, f"{API}/audit/events").status_code == 200
    assert _seq(app) == before
