"""Dispatch to regional vendors through the HTTP API: routing, leases, labels, review, progress.

The world (tests/conftest.py) has two vendors: Vendor EU (region eu; de, en; 0.05 EUR a label)
and Vendor IN (region in; hi, en; 2.00 INR a label, the cheaper of the two in dollars). The
project wants 3 labels a task and keeps its data in the EU unless a test widens the rule.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from babel.messages.pofile import read_po, write_po
from sqlalchemy import func, select, update

from coordinator import db
from coordinator.db import utcnow
from coordinator.dispatch.models import Assignment, DispatchRun, RoutingDecision, TaskWorker, Worker
from coordinator.errors import PROBLEM_JSON
from coordinator.labels import services as label_services
from coordinator.labels.models import IdempotentRequest, Label

GUIDE = "# Guide\n\nLabel the sentiment.\n"
DE = {"Guide": "Anleitung", "Label the sentiment.": "Bestimme die Stimmung."}
IDENTITY = "3f9a1c0d5e7b2a4f6c8e0d1b3a5f7c9e"
OTHER_IDENTITY = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"


# --- helpers ---------------------------------------------------------------------------------


def task(external_id: str, *languages: str) -> dict[str, Any]:
    return {"external_id": external_id, "payload": {"text": f"text of {external_id}"},
            "languages": list(languages)}


def prepare(world, project_id: int, tasks: list[dict[str, Any]], **changes: Any) -> str:
    """Publish a guideline, import ``tasks`` and apply ``changes``; return the project's URL."""
    base = f"/api/v1/projects/{project_id}"
    if changes:
        patched = world.patch("manager", base, json=changes)
        assert patched.status_code == 200, patched.get_json()
    created = world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    assert created.status_code == 201, created.get_json()
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    body = ("\n".join(json.dumps(t) for t in tasks) + "\n").encode()
    imported = world.post("manager", f"{base}/tasks/import", data=body,
                          headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 200, imported.get_json()
    return base


BOTH_REGIONS = {"allowed_regions": ["eu", "in"]}


def dispatch(world, base: str, **task_filter: Any) -> dict[str, Any]:
    response = world.post("manager", f"{base}/dispatch", json=task_filter)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def lease(world, who: str, limit: int = 100, **headers: str) -> list[dict[str, Any]]:
    response = world.post(who, "/api/v1/vendor/leases", json={"limit": limit}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["leases"]


def label(assignment_id: int, worker: str, value: str = "positive", **extra: Any) -> dict[str, Any]:
    return {"assignment_id": assignment_id, "worker_id": worker, "label": value, **extra}


_keys = iter(range(10**6))


def submit(world, who: str, labels: list[dict[str, Any]], key: str | None = None) -> Any:
    key = key or f"key-{next(_keys)}"
    return world.post(who, "/api/v1/vendor/labels", json={"labels": labels},
                      headers={"Idempotency-Key": key})


def submitted(world, who: str, labels: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
    response = submit(world, who, labels, key)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def codes(document: dict[str, Any]) -> list[str]:
    """Return each item's outcome: ``created`` or its error code."""
    return [r["error"]["code"] if r["status"] == "error" else r["status"]
            for r in document["results"]]


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    return response.get_json()


def rows(app, model: Any, *where: Any, order: Any = None) -> list[Any]:
    with app.app_context():
        query = select(model).where(*where)
        if order is not None:
            query = query.order_by(order)
        return list(db.session().scalars(query))


def count(app, model: Any, *where: Any) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model).where(*where))


def expire(app, *assignment_ids: int) -> None:
    """Move leases into the past, as if their time ran out."""
    with app.app_context():
        session = db.session()
        session.execute(update(Assignment).where(Assignment.id.in_(assignment_ids))
                        .values(lease_expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()


def task_ids(world, base: str) -> dict[str, int]:
    return {t["external_id"]: t["id"] for t in world.get("auditor", f"{base}/tasks").get_json()}


def explain(world, base: str, task_id: int) -> list[dict[str, Any]]:
    response = world.get("auditor", f"{base}/tasks/{task_id}/routing")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def progress(world, base: str, locale: str = "en") -> dict[str, Any]:
    response = world.client.get(f"{base}/progress",
                                headers=world.headers("auditor", **{"Accept-Language": locale}))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in document["workforces"]}


@pytest.fixture
def ids(world) -> dict[str, str]:
    """The two workforce ids as the API's maps key them."""
    return {"eu": str(world.workforce_ids["vendor_eu"]), "in": str(world.workforce_ids["vendor_in"])}


# --- routing ---------------------------------------------------------------------------------


def test_eu_only_project_never_routes_to_the_india_vendor(app, world, project_id, ids):
    base = prepare(world, project_id, [task(f"en-{n}", "en") for n in range(20)])
    body = dispatch(world, base)
    assert body["by_workforce"] == {ids["eu"]: 60}
    assert (body["assignments_created"], body["unroutable"], body["tasks_considered"]) == (60, 0, 20)
    assert lease(world, "vendor_in") == []
    assert count(app, Assignment, Assignment.workforce_id == int(ids["in"])) == 0

    # Every decision is stored, with the policy that explains it.
    assert count(app, RoutingDecision) == 20
    [run] = rows(app, DispatchRun)
    assert run.policy["allowed_regions"] == ["eu"]
    assert run.policy["groups"]["en"][ids["in"]] == [
        {"code": "region", "region": "in", "allowed": ["eu"]}]

    [decision] = explain(world, base, task_ids(world, base)["en-0"])
    candidates = {c["name"]: c for c in decision["candidates"]}
    india, europe = candidates["Vendor IN"], candidates["Vendor EU"]
    assert (india["eligible"], india["chosen"], india["score"]) == (False, False, None)
    assert "region in" in india["reasons"][0] and "residency" in india["reasons"][0]
    assert "(eu)" in india["reasons"][0]
    assert europe["eligible"] and europe["chosen"] and decision["chosen"] == [int(ids["eu"])] * 3


def test_unroutable_tasks_are_reported_with_reasons_and_kept(world, project_id, ids):
    base = prepare(world, project_id, [task("de-1", "de"), task("hi-1", "hi"), task("ja-1", "ja")])
    body = dispatch(world, base)
    assert body["assignments_created"] == 3 and body["unroutable"] == 2
    unroutable = {t["external_id"]: t for t in body["unroutable_tasks"]}
    assert set(unroutable) == {"hi-1", "ja-1"}
    assert unroutable["hi-1"]["short"] == 3
    assert unroutable["hi-1"]["reasons"] == {
        ids["eu"]: [{"code": "language", "missing": ["hi"]}],
        ids["in"]: [{"code": "region", "region": "in", "allowed": ["eu"]}],
    }
    assert unroutable["ja-1"]["reasons"][ids["in"]] == [
        {"code": "language", "missing": ["ja"]},
        {"code": "region", "region": "in", "allowed": ["eu"]}]

    # Never dropped: the decision is stored, and the next dispatch reports the task again.
    [decision] = explain(world, base, task_ids(world, base)["hi-1"])
    assert decision["chosen"] == [] and decision["needed"] == 3
    assert all(not c["eligible"] for c in decision["candidates"])
    again = dispatch(world, base)
    assert again["assignments_created"] == 0
    assert {t["external_id"] for t in again["unroutable_tasks"]} == {"hi-1", "ja-1"}


def test_running_out_of_daily_capacity_is_reported(world, project_id, ids):
    eu = world.workforce_ids["vendor_eu"]
    assert world.patch("manager", f"/api/v1/workforces/{eu}", json={"daily_capacity": 4}).status_code == 200
    base = prepare(world, project_id, [task(f"de-{n}", "de") for n in (1, 2, 3)])
    body = dispatch(world, base)
    assert body["assignments_created"] == 4 and body["by_workforce"] == {ids["eu"]: 4}
    assert {t["external_id"]: t["short"] for t in body["unroutable_tasks"]} == {"de-2": 2, "de-3": 3}
    # Eligible, so no refusal reason; the explanation says capacity ran out.
    assert body["unroutable_tasks"][1]["reasons"][ids["eu"]] == []
    [decision] = explain(world, base, task_ids(world, base)["de-3"])
    europe = next(c for c in decision["candidates"] if c["name"] == "Vendor EU")
    assert europe["eligible"] and not europe["chosen"]
    assert europe["reasons"] == ["Eligible, but it had no capacity left that day."]
    # Capacity spent today stays spent: a second dispatch places nothing more.
    assert dispatch(world, base)["assignments_created"] == 0


def test_redundancy_three_is_spread_over_both_eligible_vendors(app, world, project_id, ids):
    base = prepare(world, project_id, [task(f"en-{n}", "en") for n in range(4)], **BOTH_REGIONS)
    body = dispatch(world, base)
    # The cheaper vendor (in dollars) takes two labels of each task, the other one.
    assert body["by_workforce"] == {ids["in"]: 8, ids["eu"]: 4}
    for task_id in task_ids(world, base).values():
        held = [a.workforce_id for a in rows(app, Assignment, Assignment.task_id == task_id)]
        assert sorted(held) == sorted([int(ids["in"])] * 2 + [int(ids["eu"])])

    for vendor in ("vendor_eu", "vendor_in"):
        leases = lease(world, vendor)
        document = submitted(world, vendor, [
            label(item["assignment_id"], f"{vendor}-w{n}") for n, item in enumerate(leases)])
        assert document["errors"] == 0
    assert count(app, Label, Label.counted.is_(True)) == 12
    for task_id in task_ids(world, base).values():
        assert count(app, TaskWorker, TaskWorker.task_id == task_id) == 3


def test_languages_of_the_same_script_are_covered(world, project_id, ids):
    base = prepare(world, project_id, [task("br-1", "en_GB"), task("de-at", "de_AT")])
    assert dispatch(world, base)["by_workforce"] == {ids["eu"]: 6}


# --- pause and resume ------------------------------------------------------------------------


def test_pause_blocks_dispatch_and_leasing_and_resume_restores_both(world, project_id):
    base = prepare(world, project_id, [task("de-1", "de"), task("de-2", "de")])
    assert dispatch(world, base, external_ids=["de-1"])["assignments_created"] == 3

    paused = world.post("manager", f"{base}/pause")
    assert paused.status_code == 200 and paused.get_json()["paused"] is True
    assert "paused" in problem(world.post("manager", f"{base}/dispatch", json={}), 409)["detail"]
    assert lease(world, "vendor_eu") == []
    assert progress(world, base)["paused"] is True
    assert by_name(progress(world, base))["Vendor EU"]["offered"] == 3

    resumed = world.post("manager", f"{base}/resume")
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    assert len(lease(world, "vendor_eu")) == 3
    assert dispatch(world, base)["assignments_created"] == 3
    assert len(lease(world, "vendor_eu")) == 3


def test_leases_already_held_may_still_be_submitted_while_paused(world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")])
    dispatch(world, base)
    leases = lease(world, "vendor_eu")
    world.post("manager", f"{base}/pause")
    document = submitted(world, "vendor_eu", [label(leases[0]["assignment_id"], "w1")])
    assert codes(document) == ["created"]


def test_only_managers_pause(world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")])
    problem(world.post("vendor_eu", f"{base}/pause"), 403)
    problem(world.post("auditor", f"{base}/pause"), 403)
    problem(world.post("vendor_eu", f"{base}/dispatch", json={}), 403)


def test_pausing_twice_is_harmless(world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")])
    assert world.post("manager", f"{base}/pause").get_json()["paused"] is True
    assert world.post("manager", f"{base}/pause").get_json()["paused"] is True
    assert world.post("manager", f"{base}/resume").get_json()["paused"] is False


# --- filtered and repeated dispatch ----------------------------------------------------------


def test_dispatch_by_external_ids_and_by_languages(app, world, project_id):
    base = prepare(world, project_id, [task("de-1", "de"), task("de-2", "de"), task("en-1", "en"),
                                       task("en-2", "en"), task("mix", "de", "en")])
    body = dispatch(world, base, external_ids=["de-1", "en-2"])
    assert (body["tasks_considered"], body["assignments_created"]) == (2, 6)
    body = dispatch(world, base, languages=["de"])
    # de-1 is full already; de-2 and the task needing German and English are new.
    assert (body["tasks_considered"], body["assignments_created"]) == (3, 6)
    by_task = {external_id: count(app, Assignment, Assignment.task_id == task_id)
               for external_id, task_id in task_ids(world, base).items()}
    assert by_task == {"de-1": 3, "de-2": 3, "en-1": 0, "en-2": 3, "mix": 3}
    body = dispatch(world, base, limit=1)
    assert (body["tasks_considered"], body["assignments_created"]) == (1, 0)
    assert dispatch(world, base)["assignments_created"] == 3


def test_an_unknown_external_id_is_refused_and_nothing_is_dispatched(app, world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")])
    response = world.post("manager", f"{base}/dispatch", json={"external_ids": ["de-1", "nope"]})
    assert "nope" in str(problem(response, 422)["errors"]["external_ids"])
    assert count(app, Assignment) == 0 and count(app, DispatchRun) == 0


@pytest.mark.parametrize("task_filter", [
    {"external_ids": []}, {"external_ids": ["a", "a"]}, {"languages": ["not a locale!"]},
    {"limit": 0}, {"limit": -5}, {"unknown": 1},
])
def test_malformed_dispatch_filters_are_refused(world, project_id, task_filter):
    base = prepare(world, project_id, [task("de-1", "de")])
    problem(world.post("manager", f"{base}/dispatch", json=task_filter), 422)


def test_dispatch_needs_a_published_guideline(world, project_id):
    base = f"/api/v1/projects/{project_id}"
    assert "guideline" in problem(world.post("manager", f"{base}/dispatch", json={}), 409)["detail"]


def test_dispatching_an_unknown_project_is_404(world):
    problem(world.post("manager", "/api/v1/projects/999999/dispatch", json={}), 404)


def test_dispatching_again_does_not_over_assign(app, world, project_id):
    base = prepare(world, project_id, [task(f"de-{n}", "de") for n in range(5)])
    assert dispatch(world, base)["assignments_created"] == 15
    second = dispatch(world, base)
    assert (second["tasks_considered"], second["assignments_created"]) == (5, 0)
    leases = lease(world, "vendor_eu")
    submitted(world, "vendor_eu", [label(leases[0]["assignment_id"], "w1")])
    assert dispatch(world, base)["assignments_created"] == 0

    # A rejected assignment no longer counts: the next dispatch replaces it, once.
    rejected = world.post("manager", f"/api/v1/assignments/{leases[0]['assignment_id']}/review",
                          json={"decision": "reject", "reason": "spam"})
    assert rejected.status_code == 200, rejected.get_json()
    assert dispatch(world, base)["assignments_created"] == 1
    assert dispatch(world, base)["assignments_created"] == 0
    live = ("offered", "leased", "submitted", "accepted")
    for task_id in task_ids(world, base).values():
        assert count(app, Assignment, Assignment.task_id == task_id, Assignment.status.in_(live)) == 3


# --- leasing ---------------------------------------------------------------------------------


def test_lease_returns_payload_and_the_guideline_in_the_vendors_locale(app, world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")], lease_minutes=30, redundancy=1,
                   **BOTH_REGIONS)
    po = world.get("manager", f"{base}/guidelines/1/translations/de.po")
    assert po.status_code == 200
    catalog = read_po(io.BytesIO(po.data))
    for message in catalog:
        if message.id in DE:
            message.string = DE[message.id]
    out = io.BytesIO()
    write_po(out, catalog)
    put = world.client.put(f"{base}/guidelines/1/translations/de", data=out.getvalue(), headers={
        **world.headers("manager"), "Content-Type": "text/x-gettext-translation"})
    assert put.status_code == 200, put.get_json()
    dispatch(world, base)

    response = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 5},
                          headers={"Accept-Language": "de"}).get_json()
    [item] = response["leases"]
    assert item["task"] == {"external_id": "de-1", "payload": {"text": "text of de-1"},
                            "languages": ["de"]}
    assert item["label_classes"] == ["positive", "negative", "neutral"]
    guideline = response["guidelines"][item["guideline"]]
    assert (guideline["served_locale"], guideline["fallback"]) == ("de", False)
    assert "Bestimme die Stimmung." in guideline["html"]
    assert item["lease_expires_local"]
    [stored] = rows(app, Assignment, Assignment.id == item["assignment_id"])
    assert stored.status == "leased" and stored.guideline_locale == "de"
    assert stored.lease_expires_at - stored.leased_at == timedelta(minutes=30)

    submitted(world, "vendor_eu", [label(item["assignment_id"], "w1")])
    [saved] = rows(app, Label)
    assert saved.guideline_locale == "de"


def test_lease_takes_at_most_n_oldest_first(world, project_id):
    base = prepare(world, project_id, [task(f"de-{n}", "de") for n in range(4)])
    dispatch(world, base)
    first = [item["assignment_id"] for item in lease(world, "vendor_eu", 5)]
    second = [item["assignment_id"] for item in lease(world, "vendor_eu", 5)]
    assert len(first) == 5 and len(second) == 5 and first == sorted(first)
    assert max(first) < min(second)
    assert len(lease(world, "vendor_eu", 5)) == 2
    assert lease(world, "vendor_eu", 5) == []


@pytest.mark.parametrize("limit", [0, -1, 10**9, 501, "ten", None])
def test_a_negative_zero_or_huge_n_is_refused(app, world, project_id, limit):
    base = prepare(world, project_id, [task("de-1", "de")])
    dispatch(world, base)
    response = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": limit})
    assert "limit" in problem(response, 422)["errors"]
    assert count(app, Assignment, Assignment.status == "leased") == 0


def test_a_vendor_neither_sees_nor_leases_another_vendors_work(world, project_id, ids):
    base = prepare(world, project_id, [task("de-1", "de"), task("hi-1", "hi")], **BOTH_REGIONS)
    dispatch(world, base)
    mine = world.get("vendor_eu", "/api/v1/vendor/assignments")
    assert mine.status_code == 200
    assert {a["workforce_id"] for a in mine.get_json()} == {int(ids["eu"])}
    assert json.loads(mine.headers["X-Pagination"])["total"] == 3
    theirs = world.get("vendor_in", "/api/v1/vendor/assignments").get_json()
    assert {a["workforce_id"] for a in theirs} == {int(ids["in"])}

    leased = lease(world, "vendor_in")
    assert {item["task"]["external_id"] for item in leased} == {"hi-1"}
    assert len(leased) == 3
    offered = world.get("vendor_eu", "/api/v1/vendor/assignments?status=offered").get_json()
    assert len(offered) == 3
    assert world.get("vendor_eu", "/api/v1/vendor/assignments?status=leased").get_json() == []
    problem(world.get("vendor_eu", "/api/v1/vendor/assignments?status=bogus"), 422)
    problem(world.get("manager", "/api/v1/vendor/assignments"), 403)
    problem(world.post("manager", "/api/v1/vendor/leases", json={"limit": 1}), 403)


# --- submitting labels: the bad inputs -------------------------------------------------------


@pytest.fixture
def leased_eu(world, project_id) -> tuple[str, list[dict[str, Any]]]:
    """Two German tasks, all six assignments leased by Vendor EU (three per task)."""
    base = prepare(world, project_id, [task("de-1", "de"), task("de-2", "de")])
    dispatch(world, base)
    leases = lease(world, "vendor_eu")
    assert len(leases) == 6
    return base, leases


def _of(leases: list[dict[str, Any]], external_id: str) -> list[int]:
    return [item["assignment_id"] for item in leases if item["task"]["external_id"] == external_id]


def test_a_label_outside_the_projects_classes_is_refused(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    document = submitted(world, "vendor_eu", [label(a[0], "w1", "Positive"),
                                              label(a[1], "w2", "sarcastic")])
    assert codes(document) == ["invalid_label", "invalid_label"]
    assert "positive, negative, neutral" in document["results"][0]["error"]["message"]
    assert count(app, Label) == 0
    assert {a.status for a in rows(app, Assignment)} == {"leased"}


def test_an_assignment_leased_to_another_vendor_is_refused(app, world, project_id):
    base = prepare(world, project_id, [task("en-1", "en")], **BOTH_REGIONS)
    dispatch(world, base)
    theirs = lease(world, "vendor_eu")[0]["assignment_id"]
    document = submitted(world, "vendor_in", [label(theirs, "w1")])
    assert codes(document) == ["not_found"]
    assert count(app, Label) == 0
    [stored] = rows(app, Assignment, Assignment.id == theirs)
    assert stored.status == "leased" and stored.worker_id is None


def test_an_unknown_or_unleased_assignment_is_refused(app, world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")])
    dispatch(world, base)
    offered = world.get("vendor_eu", "/api/v1/vendor/assignments").get_json()[0]["id"]
    document = submitted(world, "vendor_eu", [label(offered, "w1"), label(999_999, "w2")])
    assert codes(document) == ["not_leased", "not_found"]
    assert count(app, Label) == 0


def test_the_same_worker_never_labels_a_task_twice(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    b = _of(leases, "de-2")
    document = submitted(world, "vendor_eu", [
        label(a[0], "w1"), label(a[1], "w1"), label(b[0], "w1")])
    assert codes(document) == ["created", "duplicate_worker", "created"]
    # Across requests too.
    assert codes(submitted(world, "vendor_eu", [label(a[1], "w1")])) == ["duplicate_worker"]
    assert codes(submitted(world, "vendor_eu", [label(a[1], "w2")])) == ["created"]
    assert count(app, Label) == 3
    [refused] = rows(app, Assignment, Assignment.id == a[2])
    assert refused.status == "leased"


def test_a_label_is_given_once_per_assignment(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    document = submitted(world, "vendor_eu", [label(a[0], "w1"), label(a[0], "w2")])
    assert codes(document) == ["created", "already_submitted"]
    document = submitted(world, "vendor_eu", [label(a[0], "w3", "negative")])
    assert codes(document) == ["already_submitted"]
    assert "supersedes" in document["results"][0]["error"]["message"]
    assert count(app, Label) == 1


def test_an_empty_worker_or_a_bad_locale_is_refused(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    document = submitted(world, "vendor_eu", [
        label(a[0], "   "), label(a[1], "w1", locale="not a locale!"), label(a[2], "w2", locale="de_CH")])
    assert codes(document) == ["invalid_worker", "invalid_locale", "created"]
    [saved] = rows(app, Label)
    assert saved.guideline_locale == "de_CH"


def test_a_bulk_submit_stores_the_good_items_and_reports_each_bad_one_by_index(app, world, leased_eu):
    _, leases = leased_eu
    a, b = _of(leases, "de-1"), _of(leases, "de-2")
    document = submitted(world, "vendor_eu", [
        label(a[0], "w1"),
        label(a[1], "w2", "maybe"),
        label(a[2], "w3", "negative"),
        label(424242, "w4"),
        label(b[0], "w1"),
        label(b[1], "w1"),
        label(b[2], "w5", "neutral"),
    ])
    assert (document["created"], document["errors"]) == (4, 3)
    assert [r["index"] for r in document["results"]] == list(range(7))
    assert codes(document) == ["created", "invalid_label", "created", "not_found", "created",
                               "duplicate_worker", "created"]
    assert all("label_id" in r for r in document["results"] if r["status"] == "created")
    assert {r["label_id"] for r in document["results"] if "label_id" in r} == {
        saved.id for saved in rows(app, Label)}
    statuses = {a.id: a.status for a in rows(app, Assignment)}
    assert [statuses[i] for i in (a[0], a[1], a[2], b[0], b[1], b[2])] == [
        "submitted", "leased", "submitted", "submitted", "leased", "submitted"]


@pytest.mark.parametrize(("body", "field"), [
    ({"labels": []}, "labels"),
    ({}, "labels"),
    ({"labels": [{"assignment_id": 1, "label": "positive"}]}, "labels"),
    ({"labels": [{"assignment_id": "x", "worker_id": "w", "label": "positive"}]}, "labels"),
    ({"labels": [{"assignment_id": 1, "worker_id": "w", "label": "positive",
                  "worker_identity": "short"}]}, "labels"),
])
def test_malformed_submissions_are_refused(app, world, leased_eu, body, field):
    response = world.post("vendor_eu", "/api/v1/vendor/labels", json=body,
                          headers={"Idempotency-Key": "k"})
    assert field in problem(response, 422)["errors"]
    assert count(app, IdempotentRequest) == 0


def test_more_than_5000_labels_are_refused(app, world, leased_eu):
    _, leases = leased_eu
    labels = [label(leases[0]["assignment_id"], f"w{n}") for n in range(5001)]
    response = submit(world, "vendor_eu", labels)
    assert "labels" in problem(response, 422)["errors"]
    assert count(app, Label) == 0 and count(app, IdempotentRequest) == 0


def test_exactly_5000_labels_are_taken(app, world, leased_eu):
    _, leases = leased_eu
    labels = [label(leases[n % 6]["assignment_id"], f"w{n}") for n in range(5000)]
    document = submitted(world, "vendor_eu", labels)
    assert (document["created"], document["errors"]) == (6, 4994)


@pytest.mark.parametrize("key", [None, "", "   ", "k" * 201])
def test_a_missing_or_oversized_idempotency_key_is_refused(app, world, leased_eu, key):
    _, leases = leased_eu
    headers = {} if key is None else {"Idempotency-Key": key}
    response = world.post("vendor_eu", "/api/v1/vendor/labels",
                          json={"labels": [label(leases[0]["assignment_id"], "w1")]}, headers=headers)
    assert "Idempotency-Key" in problem(response, 422)["errors"]
    assert count(app, Label) == 0


# --- idempotency -----------------------------------------------------------------------------


def test_a_retry_returns_the_first_answer_and_creates_nothing(app, world, leased_eu):
    _, leases = leased_eu
    labels = [label(leases[0]["assignment_id"], "w1"), label(leases[1]["assignment_id"], "w1")]
    first = submit(world, "vendor_eu", labels, key="batch-7")
    assert first.status_code == 200 and first.headers["Idempotent-Replayed"] == "false"
    again = submit(world, "vendor_eu", labels, key="batch-7")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert count(app, Label) == 1 and count(app, IdempotentRequest) == 1


def test_the_same_key_with_a_different_body_is_a_conflict(app, world, leased_eu):
    _, leases = leased_eu
    submitted(world, "vendor_eu", [label(leases[0]["assignment_id"], "w1")], key="batch-8")
    response = submit(world, "vendor_eu", [label(leases[1]["assignment_id"], "w2")], key="batch-8")
    assert "Idempotency-Key" in problem(response, 409)["detail"]
    assert count(app, Label) == 1
    [untouched] = rows(app, Assignment, Assignment.id == leases[1]["assignment_id"])
    assert untouched.status == "leased"


def test_keys_belong_to_one_vendor(app, world, project_id):
    base = prepare(world, project_id, [task("en-1", "en")], **BOTH_REGIONS)
    dispatch(world, base)
    eu, india = lease(world, "vendor_eu"), lease(world, "vendor_in")
    first = submitted(world, "vendor_eu", [label(eu[0]["assignment_id"], "w1")], key="shared")
    other = submit(world, "vendor_in", [label(india[0]["assignment_id"], "w1")], key="shared")
    assert other.headers["Idempotent-Replayed"] == "false"
    assert codes(first) == codes(other.get_json()) == ["created"]
    assert count(app, Label) == 2


# --- expiry, corrections, identities ---------------------------------------------------------


def test_a_late_label_is_kept_aside_and_the_work_goes_back_to_the_pool(app, world, project_id, ids):
    base = prepare(world, project_id, [task("de-1", "de")])
    dispatch(world, base)
    leases = lease(world, "vendor_eu", 1)
    late = leases[0]["assignment_id"]
    expire(app, late)
    assert by_name(progress(world, base))["Vendor EU"]["overdue"] == 1

    document = submitted(world, "vendor_eu", [label(late, "w1")])
    assert codes(document) == ["lease_expired"] and document["created"] == 0
    assert "kept aside" in document["results"][0]["error"]["message"]
    [kept] = rows(app, Label)
    assert kept.id == document["results"][0]["label_id"]
    assert (kept.counted, kept.set_aside) == (False, "late")
    [old] = rows(app, Assignment, Assignment.id == late)
    assert old.status == "expired" and old.worker_id is None
    [replacement] = rows(app, Assignment, Assignment.replaces_id == late)
    assert replacement.status == "offered" and replacement.task_id == old.task_id
    assert replacement.workforce_id == old.workforce_id and replacement.price == old.price

    row = by_name(progress(world, base))["Vendor EU"]
    assert (row["expired"], row["offered"], row["submitted"], row["overdue"]) == (1, 3, 0, 0)
    assert row["cost"] == "0.0000"
    assert count(app, TaskWorker) == 0

    # The replacement is leased and labelled like any other.
    again = lease(world, "vendor_eu")
    assert replacement.id in {item["assignment_id"] for item in again}
    assert codes(submitted(world, "vendor_eu", [label(replacement.id, "w2")])) == ["created"]


def test_an_expired_lease_is_offered_again_at_the_next_pull(app, world, project_id):
    base = prepare(world, project_id, [task("de-1", "de")], redundancy=1)
    dispatch(world, base)
    [first] = lease(world, "vendor_eu")
    expire(app, first["assignment_id"])
    [second] = lease(world, "vendor_eu")
    assert second["assignment_id"] != first["assignment_id"]
    assert second["task"]["external_id"] == "de-1"
    statuses = {a.id: a.status for a in rows(app, Assignment)}
    assert statuses == {first["assignment_id"]: "expired", second["assignment_id"]: "leased"}
    # The expired one never counted, so a new dispatch places nothing.
    assert dispatch(world, base)["assignments_created"] == 0


def test_a_correction_supersedes_and_keeps_history(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    first = submitted(world, "vendor_eu", [label(a[0], "w1", "positive")])
    original = first["results"][0]["label_id"]

    corrected = submitted(world, "vendor_eu", [label(a[0], "w1", "negative", supersedes=original)])
    assert codes(corrected) == ["created"]
    assert corrected["results"][0]["supersedes"] == original
    newer = corrected["results"][0]["label_id"]

    history = rows(app, Label, order=Label.id)
    assert [(h.id, h.value, h.counted, h.set_aside, h.supersedes_id) for h in history] == [
        (original, "positive", False, "superseded", None),
        (newer, "negative", True, None, original),
    ]
    [assignment] = rows(app, Assignment, Assignment.id == a[0])
    assert assignment.status == "submitted"

    # The old label is history now: it cannot be corrected again.
    stale = submitted(world, "vendor_eu", [label(a[0], "w1", "neutral", supersedes=original)])
    assert codes(stale) == ["not_current"]
    # A chain of corrections leaves exactly one counted label.
    chained = submitted(world, "vendor_eu", [label(a[0], "w1", "neutral", supersedes=newer)])
    assert codes(chained) == ["created"]
    assert count(app, Label) == 3 and count(app, Label, Label.counted.is_(True)) == 1


def test_only_the_same_worker_may_correct_a_label(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    original = submitted(world, "vendor_eu", [label(a[0], "w1")])["results"][0]["label_id"]
    document = submitted(world, "vendor_eu", [label(a[0], "w2", "negative", supersedes=original)])
    assert codes(document) == ["other_worker"]
    assert [(h.counted, h.set_aside) for h in rows(app, Label)] == [(True, None)]


def test_a_correction_through_the_wrong_assignment_or_vendor_is_refused(app, world, project_id):
    base = prepare(world, project_id, [task("en-1", "en")], **BOTH_REGIONS)
    dispatch(world, base)
    eu, india = lease(world, "vendor_eu"), lease(world, "vendor_in")
    original = submitted(world, "vendor_eu", [label(eu[0]["assignment_id"], "w1")])["results"][0]["label_id"]
    foreign = submitted(world, "vendor_in", [
        label(eu[0]["assignment_id"], "w1", "negative", supersedes=original),
        label(india[0]["assignment_id"], "w1", "negative", supersedes=original)])
    assert codes(foreign) == ["not_found", "not_current"]
    assert count(app, Label, Label.counted.is_(True)) == 1


def test_the_same_person_is_recognised_across_vendors(app, world, project_id):
    base = prepare(world, project_id, [task("en-1", "en")], **BOTH_REGIONS)
    dispatch(world, base)
    eu, india = lease(world, "vendor_eu"), lease(world, "vendor_in")
    assert len(eu) == 1 and len(india) == 2
    document = submitted(world, "vendor_eu", [
        label(eu[0]["assignment_id"], "anna", worker_identity=IDENTITY)])
    assert codes(document) == ["created"]
    document = submitted(world, "vendor_in", [
        label(india[0]["assignment_id"], "a-77", worker_identity=IDENTITY),
        label(india[1]["assignment_id"], "b-12", worker_identity=OTHER_IDENTITY)])
    assert codes(document) == ["duplicate_worker", "created"]
    assert "a-77" in document["results"][0]["error"]["message"]
    assert count(app, Label) == 2
    workers = {w.external_id: w.identity_hash for w in rows(app, Worker)}
    assert workers == {"anna": IDENTITY, "b-12": OTHER_IDENTITY}
    # Whatever worker id the vendor gives them, the same identity is the same person.
    document = submitted(world, "vendor_in", [
        label(india[0]["assignment_id"], "c-3", worker_identity=IDENTITY)])
    assert codes(document) == ["duplicate_worker"]
    assert codes(submitted(world, "vendor_in", [label(india[0]["assignment_id"], "c-3")])) == ["created"]


def test_a_worker_is_recognised_with_or_without_their_identity(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    assert codes(submitted(world, "vendor_eu", [label(a[0], "w1")])) == ["created"]
    # The vendor sends the identity only now: still the worker who labelled the task.
    late_identity = submitted(world, "vendor_eu", [label(a[1], "w1", worker_identity=IDENTITY)])
    assert codes(late_identity) == ["duplicate_worker"]
    assert codes(submitted(world, "vendor_eu", [
        label(a[1], "w2", worker_identity=IDENTITY),
        label(a[2], "w3", worker_identity=IDENTITY)])) == ["created", "duplicate_worker"]
    assert count(app, Label) == 2


# --- a crash half-way ------------------------------------------------------------------------


def _fail_task_worker_insert(monkeypatch):
    def failing(*args, **kwargs):  # after the assignments were claimed and the labels went in
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(label_services, "_insert_claims", failing)


def _fail_marking_submitted(monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("the connection dropped")

    monkeypatch.setattr(label_services, "_claim_assignments", failing)


def _fail_audit(monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(label_services, "record", failing)


@pytest.mark.parametrize("crash", [_fail_task_worker_insert, _fail_marking_submitted, _fail_audit])
def test_a_crash_half_way_leaves_no_partial_state(app, world, leased_eu, monkeypatch, crash):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    labels = [label(a[0], "w1"), label(a[1], "w2", "nope"), label(a[2], "w3")]
    crash(monkeypatch)
    response = submit(world, "vendor_eu", labels, key="crash-1")
    body = problem(response, 500)
    assert body["status"] == 500 and "disk" not in json.dumps(body)
    assert count(app, Label) == 0 and count(app, TaskWorker) == 0
    assert count(app, IdempotentRequest) == 0 and count(app, Worker) == 0
    assert {(x.status, x.worker_id, x.submitted_at) for x in rows(app, Assignment)} == {
        ("leased", None, None)}

    # The key was not spent: once the fault is gone the same request goes through, once.
    monkeypatch.undo()
    retried = submit(world, "vendor_eu", labels, key="crash-1")
    assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "false"
    assert codes(retried.get_json()) == ["created", "invalid_label", "created"]
    assert count(app, Label) == 2


# --- review and progress ---------------------------------------------------------------------


def test_review_accepts_and_rejects_with_a_reason(app, world, leased_eu):
    _, leases = leased_eu
    a = _of(leases, "de-1")
    submitted(world, "vendor_eu", [label(a[0], "w1"), label(a[1], "w2")])
    review = "/api/v1/assignments/{}/review"

    for reason in (None, "", "   "):
        response = world.post("manager", review.format(a[0]), json={"decision": "reject", "reason": reason})
        assert "reason" in problem(response, 422)["errors"]
    problem(world.post("manager", review.format(a[0]), json={"decision": "maybe"}), 422)
    problem(world.post("manager", review.format(a[0]), json={}), 422)
    problem(world.post("vendor_eu", review.format(a[0]), json={"decision": "accept"}), 403)
    problem(world.post("auditor", review.format(a[0]), json={"decision": "accept"}), 403)
    problem(world.post("manager", review.format(999_999), json={"decision": "accept"}), 404)
    # Only submitted work is reviewed.
    problem(world.post("manager", review.format(a[2]), json={"decision": "accept"}), 409)

    rejected = world.post("manager", review.format(a[0]),
                          json={"decision": "reject", "reason": "Copied the previous answer."})
    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.get_json()["status"] == "rejected"
    accepted = world.post("manager", review.format(a[1]), json={"decision": "accept"})
    assert accepted.get_json()["status"] == "accepted"

    seen = world.get("vendor_eu", "/api/v1/vendor/assignments?status=rejected").get_json()
    assert [(s["id"], s["review_reason"]) for s in seen] == [(a[0], "Copied the previous answer.")]
    assert count(app, Assignment, Assignment.reviewed_at.is_not(None)) == 2


def test_progress_counts_each_state_overdue_and_cost_in_each_currency(app, world, project_id):
    base = prepare(world, project_id, [task("en-1", "en"), task("en-2", "en")], **BOTH_REGIONS)
    dispatch(world, base)
    eu, india = lease(world, "vendor_eu"), lease(world, "vendor_in")
    assert (len(eu), len(india)) == (2, 4)
    submitted(world, "vendor_eu", [label(eu[0]["assignment_id"], "w1")])
    submitted(world, "vendor_in", [label(india[n]["assignment_id"], f"w{n}") for n in range(3)])
    expire(app, india[3]["assignment_id"])

    document = progress(world, base)
    rows_ = by_name(document)
    assert document["paused"] is False
    europe, bharat = rows_["Vendor EU"], rows_["Vendor IN"]
    assert (europe["leased"], europe["submitted"], europe["overdue"], europe["offered"]) == (1, 1, 0, 0)
    assert (bharat["leased"], bharat["submitted"], bharat["overdue"]) == (1, 3, 1)
    assert (europe["cost"], europe["currency"], europe["cost_display"]) == ("0.0500", "EUR", "€0.05")
    assert (bharat["cost"], bharat["currency"], bharat["cost_display"]) == ("6.0000", "INR", "₹6.00")
    assert document["cost_by_currency"] == {"EUR": "€0.05", "INR": "₹6.00"}

    # Accepted work still costs, rejected work does not.
    review = "/api/v1/assignments/{}/review"
    world.post("manager", review.format(india[0]["assignment_id"]), json={"decision": "accept"})
    world.post("manager", review.format(india[1]["assignment_id"]),
               json={"decision": "reject", "reason": "off topic"})
    bharat = by_name(progress(world, base))["Vendor IN"]
    assert (bharat["accepted"], bharat["rejected"], bharat["submitted"]) == (1, 1, 1)
    assert bharat["cost"] == "4.0000"
    german = progress(world, base, "de")
    assert german["cost_by_currency"]["EUR"] == "0,05\xa0€"


def test_progress_of_an_unknown_project_is_404_and_vendors_may_not_read_it(world, project_id):
    problem(world.get("auditor", "/api/v1/projects/999999/progress"), 404)
    problem(world.get("vendor_eu", f"/api/v1/projects/{project_id}/progress"), 403)
    empty = world.get("auditor", f"/api/v1/projects/{project_id}/progress").get_json()
    assert empty == {"paused": False, "workforces": [], "cost_by_currency": {}}


def test_the_manager_lists_a_projects_assignments_by_state(world, leased_eu):
    base, leases = leased_eu
    submitted(world, "vendor_eu", [label(leases[0]["assignment_id"], "w1")])
    listed = world.get("manager", f"{base}/assignments?status=submitted")
    assert [a["id"] for a in listed.get_json()] == [leases[0]["assignment_id"]]
    assert json.loads(world.get("manager", f"{base}/assignments").headers["X-Pagination"])["total"] == 6
