"""Consensus runs and agreement, through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
import time
from collections import defaultdict
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select, text, update

from aggregation.agreement import agreement_report
from coordinator import db
from coordinator.audit.models import AuditEvent
from coordinator.audit.services import Actor
from coordinator.consensus import services
from coordinator.consensus.models import ConsensusRun, TaskConsensus, WorkerSkill
from coordinator.dispatch.models import Assignment
from coordinator.projects.models import Task
from tests.crowd import ASIDE, CLASSES, CROWD, GOLD, NEG, NEU, POS, REGION


def _run(world, base, who="manager", **body):
    return world.post(who, f"{base}/consensus", json=body)


def _all(world, base, path):
    response = world.get("auditor", f"{base}{path}?page_size=500")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- the run ---------------------------------------------------------------------------------


def test_a_run_aggregates_counted_labels_and_stores_tasks_and_workers(world, crowd, app):
    response = _run(world, crowd)
    assert response.status_code == 201, response.get_json()
    run = response.get_json()
    assert run["reused"] is False and run["method"] == "dawid_skene"
    assert run["options"] == {"gold_holdout": 0.2, "n_iter": 100, "seed": 0,
                              "stop": "likelihood", "tol": 1e-5}
    assert run["classes"] == CLASSES
    # The late and the superseded label are not read.
    assert (run["labels"], run["tasks"], run["workers"]) == (20, 6, 4)
    assert run["gold_used"] + run["gold_held_out"] == 3
    assert run["iterations"] >= 1 and isinstance(run["converged"], bool)
    assert len(run["input_fingerprint"]) == 64

    tasks = {t["external_id"]: t for t in _all(world, crowd, f"/consensus/{run['id']}/tasks")}
    assert set(tasks) == {"t1", "t2", "t3", "t4", "t5", "t6"}
    assert {k: t["label"] for k, t in tasks.items() if k in GOLD} == GOLD  # gold is clamped
    assert tasks["t4"]["label"] == POS and tasks["t4"]["labels"] == 3
    assert tasks["t6"] == {**tasks["t6"], "label": NEU, "labels": 2}
    for task in tasks.values():
        assert set(task["posteriors"]) == set(CLASSES)
        assert math.isclose(sum(task["posteriors"].values()), 1.0, abs_tol=1e-9)
        assert task["confidence"] == task["posteriors"][task["label"]]

    workers = _all(world, crowd, f"/consensus/{run['id']}/workers")
    assert sorted(w["external_id"] for w in workers) == ["a", "b", "c", "d"]
    assert all(w["labels"] == 5 for w in workers)
    for worker in workers:
        assert 0.0 <= worker["skill"] <= 1.0
        assert set(worker["confusion"]) == set(CLASSES)
        for row in worker["confusion"].values():  # confusion[true][answered]: rows sum to 1
            assert math.isclose(sum(row.values()), 1.0, abs_tol=1e-9)

    with app.app_context():
        events = db.session().scalars(select(AuditEvent).where(
            AuditEvent.action == "consensus.run")).all()
    assert len(events) == 1 and events[0].subject_id == str(run["id"])
    assert events[0].actor_id == world.account_ids["manager"]
    assert events[0].after["input_fingerprint"] == run["input_fingerprint"]


def test_per_worker_gold_accuracy_counts_every_gold_answer(world, crowd, seeder):
    run = _run(world, crowd).get_json()
    workers = {w["external_id"]: w for w in _all(world, crowd, f"/consensus/{run['id']}/workers")}
    # a answered t1-t3 right; b missed t3, c missed t2, d missed t1.
    assert {k: (w["gold_answers"], w["gold_correct"]) for k, w in workers.items()} == {
        "a": (3, 3), "b": (3, 2), "c": (3, 2), "d": (3, 2)}
    assert workers["a"]["gold_accuracy"] == 1.0
    assert workers["b"]["gold_accuracy"] == pytest.approx(2 / 3)
    eu, india = seeder.world.workforce_ids["vendor_eu"], seeder.world.workforce_ids["vendor_in"]
    assert {k: w["workforce_id"] for k, w in workers.items()} == {
        "a": eu, "b": eu, "c": india, "d": india}
    assert workers["a"]["skill"] > workers["d"]["skill"]


def test_methods_without_confusions_store_none_and_all_gold_can_be_held_out(world, crowd, app):
    run = _run(world, crowd, method="majority_vote", gold_holdout=1.0).get_json()
    assert run["method"] == "majority_vote" and run["options"] == {"gold_holdout": 1.0, "seed": 0}
    assert (run["gold_used"], run["gold_held_out"], run["iterations"]) == (0, 3, 0)
    assert run["gold_accuracy"] == 1.0
    workers = _all(world, crowd, f"/consensus/{run['id']}/workers")
    assert all(w["confusion"] is None for w in workers)
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(WorkerSkill).where(
            WorkerSkill.confusion.is_(None))) == 4  # SQL NULL, not JSON null
    tasks = {t["external_id"]: t for t in _all(world, crowd, f"/consensus/{run['id']}/tasks")}
    assert tasks["t3"]["label"] == NEU and tasks["t3"]["confidence"] == 0.75
    assert tasks["t3"]["posteriors"] == {POS: 0.25, NEG: 0.0, NEU: 0.75}


def test_the_same_inputs_return_the_stored_run_and_new_labels_make_a_new_one(
        world, crowd, seeder, app):
    first = _run(world, crowd)
    again = _run(world, crowd, stop="likelihood")  # the default, written out
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["reused"] is True and again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["input_fingerprint"] == first.get_json()["input_fingerprint"]

    other = _run(world, crowd, stop="crowdkit")  # other options: a new run, same inputs
    assert other.status_code == 201
    assert other.get_json()["input_fingerprint"] == first.get_json()["input_fingerprint"]

    before = _all(world, crowd, f"/consensus/{first.get_json()['id']}/tasks")
    seeder.add([("t6", "vendor_in", "c", POS, "hi")])
    newer = _run(world, crowd)
    assert newer.status_code == 201, newer.get_json()
    assert newer.get_json()["input_fingerprint"] != first.get_json()["input_fingerprint"]
    assert newer.get_json()["labels"] == 21
    # The earlier run is untouched.
    assert _all(world, crowd, f"/consensus/{first.get_json()['id']}/tasks") == before
    listed = _all(world, crowd, "/consensus")
    assert [r["id"] for r in listed] == [newer.get_json()["id"], other.get_json()["id"],
                                         first.get_json()["id"]]
    with app.app_context():
        audited = db.session().scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "consensus.run"))
    assert audited == 3  # one per run made; the reused answer made none


def test_reordering_the_classes_keeps_the_fingerprint_but_makes_a_new_run(world, crowd):
    first = _run(world, crowd).get_json()
    reordered = [NEU, NEG, POS]
    assert world.patch("manager", crowd, json={"label_classes": reordered}).status_code == 200
    second = _run(world, crowd)
    assert second.status_code == 201
    assert second.get_json()["input_fingerprint"] == first["input_fingerprint"]
    assert second.get_json()["classes"] == reordered


def test_the_fingerprint_is_the_documented_hash_of_the_sorted_rows_and_gold(world, crowd, seeder):
    run = _run(world, crowd).get_json()
    tasks, workers = seeder.task_ids(), seeder.worker_ids()
    rows = sorted((tasks[t], workers[(seeder.world.workforce_ids[wf], w)], v)
                  for t, wf, w, v, _ in CROWD)
    values = sorted({v for *_, v in rows})
    digest = hashlib.sha256(b"coordinator.consensus.input/1\n")
    digest.update(json.dumps(values).encode() + b"\n")
    digest.update(b"".join(struct.pack(">q", t) for t, _, _ in rows))
    digest.update(b"".join(struct.pack(">q", w) for _, w, _ in rows))
    digest.update(b"".join(struct.pack(">i", values.index(v)) for *_, v in rows))
    gold = sorted([tasks[t], v] for t, v in GOLD.items())
    digest.update(b"gold\n" + json.dumps(gold).encode())
    assert run["input_fingerprint"] == digest.hexdigest()


def test_runs_are_immutable(world, crowd, app):
    run = _run(world, crowd).get_json()
    url = f"{crowd}/consensus/{run['id']}"
    assert world.patch("manager", url, json={"method": "wawa"}).status_code == 405
    assert world.delete("admin", url).status_code == 405
    assert world.client.put(url, json={}, headers=world.headers("admin")).status_code == 405
    assert world.delete("admin", f"{url}/tasks").status_code == 405
    assert world.get("auditor", url).get_json() == {k: v for k, v in run.items() if k != "reused"}


# --- bad input -------------------------------------------------------------------------------


def test_an_empty_project_is_a_conflict_not_an_empty_run(world, project_id):
    base = f"/api/v1/projects/{project_id}"
    response = _run(world, base)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert "no counted labels" in response.get_json()["detail"]
    assert _all(world, base, "/consensus") == []
    agreement = world.get("auditor", f"{base}/agreement").get_json()
    assert agreement == {"project_id": project_id, "run_id": None, "by": [], "groups": []}


def test_only_labels_kept_aside_is_an_empty_project(world, seeder, project_id):
    seeder.add([], aside=ASIDE)
    assert _run(world, f"/api/v1/projects/{project_id}").status_code == 409


def test_one_class_used_gives_labels_and_undefined_agreement(world, seeder, project_id):
    base = f"/api/v1/projects/{project_id}"
    seeder.add([(t, "vendor_eu", w, POS, "de") for t in ("t1", "t2") for w in ("a", "b")])
    response = _run(world, base)
    assert response.status_code == 201, response.get_json()
    tasks = _all(world, base, f"/consensus/{response.get_json()['id']}/tasks")
    assert [t["label"] for t in tasks] == [POS, POS]
    (overall,) = world.get("auditor", f"{base}/agreement").get_json()["groups"]
    # Nobody could disagree: alpha and kappa divide by zero and are undefined, not 1.
    assert overall["krippendorff_alpha"] is None and overall["fleiss_kappa"] is None
    assert overall["cohen_kappa"] is None
    assert overall["accuracy_consensus"] == 1.0 and overall["accuracy_gold"] is None
    assert (overall["labels"], overall["tasks"], overall["workers"]) == (4, 2, 2)


def test_a_task_with_a_single_label_gets_a_consensus(world, seeder, project_id):
    base = f"/api/v1/projects/{project_id}"
    seeder.add([("t1", "vendor_eu", "a", POS, "de"), ("t1", "vendor_in", "c", POS, "hi"),
                ("t2", "vendor_eu", "a", NEG, "de"), ("t2", "vendor_in", "c", NEG, "hi"),
                ("solo", "vendor_in", "c", NEU, "hi")])
    run = _run(world, base).get_json()
    tasks = {t["external_id"]: t for t in _all(world, base, f"/consensus/{run['id']}/tasks")}
    assert tasks["solo"]["labels"] == 1 and tasks["solo"]["label"] == NEU
    (overall,) = world.get("auditor", f"{base}/agreement").get_json()["groups"]
    assert overall["krippendorff_alpha"] == 1.0  # the solo task carries no agreement
    assert overall["tasks"] == 3


def test_labels_of_a_removed_class_are_a_conflict(world, seeder, project_id):
    base = f"/api/v1/projects/{project_id}"
    seeder.add([("t1", "vendor_eu", "a", NEU, "de"), ("t1", "vendor_eu", "b", POS, "de")])
    assert world.patch("manager", base, json={"label_classes": [POS, NEG]}).status_code == 200
    response = _run(world, base)
    assert response.status_code == 409
    assert "'neutral'" in response.get_json()["detail"]
    assert world.get("auditor", f"{base}/agreement").status_code == 409


@pytest.mark.parametrize("body, field", [
    ({"method": "telepathy"}, "method"),
    ({"method": "majority_vote", "stop": "likelihood"}, "stop"),
    ({"stop": "whenever"}, "stop"),
    ({"gold_holdout": 1.5}, "gold_holdout"),
    ({"n_iter": 5}, "n_iter"),
])
def test_bad_methods_and_options_are_refused(world, crowd, body, field):
    response = _run(world, crowd, **body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_more_classes_than_a_case_takes(world, seeder, project_id):
    base = f"/api/v1/projects/{project_id}"
    classes = [f"c{i:02d}" for i in range(20)]
    assert world.patch("manager", base, json={"label_classes": classes}).status_code == 200
    seeder.add([("t1", "vendor_eu", "a", "c19", "de"), ("t1", "vendor_eu", "b", "c19", "de"),
                ("t2", "vendor_eu", "a", "c00", "de"), ("t2", "vendor_eu", "b", "c07", "de")])
    run = _run(world, base).get_json()
    tasks = {t["external_id"]: t for t in _all(world, base, f"/consensus/{run['id']}/tasks")}
    assert tasks["t1"]["label"] == "c19" and len(tasks["t1"]["posteriors"]) == 20
    (overall,) = world.get("auditor", f"{base}/agreement?by=locale").get_json()["groups"]
    assert overall["group"] == {"locale": "de"} and overall["labels"] == 4
    assert overall["accuracy_consensus"] == 0.75  # t2's two labels differ


@pytest.mark.postgres_only
def test_the_same_request_twice_at_once_stores_one_run(app, crowd, project_id):
    with app.app_context():
        first = db.database().sessions()
        made = services.run_consensus(first, Actor.system(), project_id)  # flushed, not committed
        answers = {}

        def the_other_request():
            with app.app_context():
                session = db.database().sessions()
                try:
                    answers["outcome"] = services.run_consensus(session, Actor.system(), project_id)
                    answers["id"] = answers["outcome"].run.id
                    session.commit()
                finally:
                    session.close()

        thread = threading.Thread(target=the_other_request)
        thread.start()
        # Wait until the other request waits on the unique reuse key that this one holds.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not first.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")):
            time.sleep(0.05)
        first.commit()
        first.close()
        thread.join(20)
    assert answers["outcome"].reused and answers["id"] == made.run.id
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(ConsensusRun)) == 1


# --- reading runs ----------------------------------------------------------------------------


def test_result_pages(world, crowd):
    run = _run(world, crowd).get_json()
    page = world.get("auditor", f"{crowd}/consensus/{run['id']}/tasks?page=2&page_size=4")
    assert page.status_code == 200
    assert [t["external_id"] for t in page.get_json()] == ["t5", "t6"]
    assert json.loads(page.headers["X-Pagination"])["total"] == 6
    page = world.get("auditor", f"{crowd}/consensus/{run['id']}/workers?page_size=3")
    assert len(page.get_json()) == 3 and json.loads(page.headers["X-Pagination"])["total"] == 4


def test_a_run_of_another_project_is_not_found(world, crowd, project_id):
    run = _run(world, crowd).get_json()
    other = world.post("manager", "/api/v1/projects", json={
        "name": "Other", "label_classes": CLASSES, "source_locale": "en"}).get_json()["id"]
    base = f"/api/v1/projects/{other}"
    for path in ("", "/tasks", "/workers"):
        response = world.get("auditor", f"{base}/consensus/{run['id']}{path}")
        assert response.status_code == 404, path
    assert world.get("auditor", f"{base}/agreement?run_id={run['id']}").status_code == 404
    assert world.get("auditor", f"{crowd}/consensus/{run['id'] + 99}").status_code == 404
    assert world.get("auditor", "/api/v1/projects/9999/consensus").status_code == 404
    assert _run(world, "/api/v1/projects/9999").status_code == 404


def test_roles(world, crowd, client):
    assert _run(world, crowd, who="auditor").status_code == 403
    assert _run(world, crowd, who="vendor_eu").status_code == 403
    run = _run(world, crowd, who="admin")
    assert run.status_code == 201
    url = f"{crowd}/consensus/{run.get_json()['id']}"
    for path in ("/consensus", f"/consensus/{run.get_json()['id']}", "/agreement"):
        assert world.get("auditor", f"{crowd}{path}").status_code == 200
    for who in ("vendor_eu", "vendor_in"):
        for target in (f"{crowd}/consensus", url, f"{url}/tasks", f"{url}/workers",
                       f"{crowd}/agreement"):
            assert world.get(who, target).status_code == 403, (who, target)
    assert client.get(f"{crowd}/consensus").status_code == 401


# --- agreement -------------------------------------------------------------------------------


def _expected(by, consensus):
    """The agreement report of CROWD computed directly, keyed like the API's groups."""
    frame = pd.DataFrame(CROWD, columns=["task", "workforce", "worker", "label", "locale"])
    frame["region"] = frame["workforce"].map(REGION)
    gold = pd.Series(GOLD)
    return agreement_report(frame, by or None, gold=gold, consensus=consensus, classes=CLASSES)


def _close(api_value, value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return api_value is None
    return api_value == pytest.approx(float(value))


@pytest.mark.parametrize("by", [[], ["workforce"], ["region"], ["locale"], ["worker"],
                                ["region", "locale"]])
def test_agreement_matches_the_metrics_on_the_same_labels(world, crowd, seeder, by):
    run = _run(world, crowd).get_json()
    consensus = pd.Series({t["external_id"]: t["label"] for t in _all(
        world, crowd, f"/consensus/{run['id']}/tasks")})
    query = f"?by={','.join(by)}" if by else ""
    response = world.get("auditor", f"{crowd}/agreement{query}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["run_id"] == run["id"] and body["by"] == by
    expected = _expected(by, consensus)
    names = {v: k for k, v in seeder.world.workforce_ids.items()}
    workers = {v: k[1] for k, v in seeder.worker_ids().items()}

    def key(group):
        readable = {"workforce": lambda v: names[v], "worker": lambda v: workers[v]}
        values = tuple(readable.get(b, lambda v: v)(group[b]) for b in by)
        return values[0] if len(values) == 1 else values

    assert len(body["groups"]) == len(expected)
    for group in body["groups"]:
        row = expected.loc[key(group["group"])] if by else expected.iloc[0]
        for metric in ("labels", "tasks", "workers", "krippendorff_alpha", "fleiss_kappa",
                       "cohen_kappa", "accuracy_consensus", "accuracy_gold"):
            assert _close(group[metric], row.get(metric)), (group["group"], metric)
    if by == ["worker"]:
        assert all(g["krippendorff_alpha"] is None for g in body["groups"])
    if by == ["region"]:
        assert {g["group"]["region"]: g["labels"] for g in body["groups"]} == {"eu": 10, "in": 10}
    if by == ["locale"]:
        assert {g["group"]["locale"] for g in body["groups"]} == {"de", "en", "hi"}


def test_agreement_uses_the_run_asked_for_and_refuses_unknown_groups(world, crowd):
    first = _run(world, crowd, method="majority_vote").get_json()
    newest = _run(world, crowd).get_json()
    assert world.get("auditor", f"{crowd}/agreement").get_json()["run_id"] == newest["id"]
    chosen = world.get("auditor", f"{crowd}/agreement?run_id={first['id']}").get_json()
    assert chosen["run_id"] == first["id"]
    assert chosen["groups"][0]["accuracy_consensus"] == pytest.approx(16 / 20)
    bad = world.get("auditor", f"{crowd}/agreement?by=planet")
    assert bad.status_code == 422 and "by" in bad.get_json()["errors"]


# --- the whole path through the vendor API ---------------------------------------------------


def _jsonl(*items):
    return ("\n".join(json.dumps(i) for i in items) + "\n").encode()


def test_labels_from_the_vendor_api_late_and_corrected_ones_included(world, project_id, app):
    base = f"/api/v1/projects/{project_id}"
    world.patch("manager", base, json={"allowed_regions": ["eu", "in"], "redundancy": 3})
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": "# G\n"})
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    truth = {"r1": POS, "r2": NEG, "r3": NEU, "r4": POS}
    response = world.post("manager", f"{base}/tasks/import", data=_jsonl(*(
        {"external_id": k, "payload": {"text": k}, "languages": ["en"],
         "gold": v if k == "r1" else None} for k, v in truth.items())),
        headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.get_json()
    assert world.post("manager", f"{base}/dispatch", json={}).status_code == 200

    held_back, submitted = None, {}
    for vendor in ("vendor_eu", "vendor_in"):
        leases = world.post(vendor, "/api/v1/vendor/leases", json={"limit": 50}).get_json()
        slots, items = defaultdict(int), []
        for lease in leases["leases"]:
            task = lease["task"]["external_id"]
            worker = f"{vendor}-{slots[task]}"
            slots[task] += 1
            if held_back is None and vendor == "vendor_in":
                held_back = (vendor, lease["assignment_id"], worker, task)
                continue
            items.append({"assignment_id": lease["assignment_id"], "worker_id": worker,
                          "label": truth[task]})
        answer = world.post(vendor, "/api/v1/vendor/labels", json={"labels": items},
                            headers={"Idempotency-Key": f"{vendor}-first"}).get_json()
        assert answer["errors"] == 0, answer
        for item, result in zip(items, answer["results"], strict=True):
            submitted[item["assignment_id"]] = (vendor, item, result["label_id"])
    assert held_back is not None and len(submitted) == 11

    first = _run(world, base, method="majority_vote")
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["labels"] == 11 and first.get_json()["tasks"] == 4

    # A label that arrives after its lease ran out is kept aside: the inputs are unchanged.
    vendor, assignment_id, worker, task = held_back
    with app.app_context():
        db.session().execute(update(Assignment).where(Assignment.id == assignment_id).values(
            lease_expires_at=db.utcnow() - timedelta(minutes=1)))
        db.session().commit()
    late = world.post(vendor, "/api/v1/vendor/labels", json={"labels": [
        {"assignment_id": assignment_id, "worker_id": worker, "label": NEU}]},
        headers={"Idempotency-Key": "late"}).get_json()
    assert late["results"][0]["error"]["code"] == "lease_expired"
    again = _run(world, base, method="majority_vote")
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]

    # Two workers correct their labels of r4: the superseded ones stop counting.
    corrections = [(v, item, label_id) for v, item, label_id in submitted.values()
                   if item["label"] == truth["r4"] and _task_of(app, item) == "r4"][:2]
    assert len(corrections) == 2
    for number, (vendor, item, label_id) in enumerate(corrections):
        fixed = world.post(vendor, "/api/v1/vendor/labels", json={"labels": [
            {**item, "label": NEG, "supersedes": label_id}]},
            headers={"Idempotency-Key": f"fix-{number}"}).get_json()
        assert fixed["created"] == 1, fixed
    second = _run(world, base, method="majority_vote")
    assert second.status_code == 201
    assert second.get_json()["labels"] == 11
    assert second.get_json()["input_fingerprint"] != first.get_json()["input_fingerprint"]
    labels = {t["external_id"]: t["label"] for t in _all(
        world, base, f"/consensus/{second.get_json()['id']}/tasks")}
    assert labels == {**truth, "r4": NEG}
    with app.app_context():
        stored = db.session().scalar(select(func.count()).select_from(TaskConsensus))
        skills = db.session().scalar(select(func.count()).select_from(WorkerSkill))
        runs = db.session().scalar(select(func.count()).select_from(ConsensusRun))
    assert (stored, runs) == (8, 2) and skills > 0


def _task_of(app, item):
    with app.app_context():
        return db.session().scalar(select(Task.external_id).join(
            Assignment, Assignment.task_id == Task.id).where(
            Assignment.id == item["assignment_id"]))
