"""Review rounds through the HTTP API: the queue, verdicts, final labels, verdicts as gold."""

from __future__ import annotations

import json
from datetime import timedelta

from coordinator import db
from coordinator.db import utcnow
from coordinator.labels.models import Label
from coordinator.quality import services
from coordinator.quality.models import ReviewVerdict
from tests.helpers import assert_invalid, audit_events, count_rows
from tests.quality_flow import (
    consensus,
    dispatch,
    lease,
    ok,
    prepare,
    quality_round,
    submit,
    task,
)

POS, NEG = "positive", "negative"
VERDICTS = "/api/v1/vendor/reviews/verdicts"


def _verdicts(world, who, *items):
    body = {"verdicts": [{"review_id": r, "reviewer_id": w, "label": v} for r, w, v in items]}
    return ok(world.post(who, VERDICTS, json=body))


def _codes(answer):
    return [r["error"]["code"] if r["status"] == "error" else r["status"] for r in answer["results"]]


def test_the_review_workforce_must_be_allowed_to_see_the_data(world, project_id):
    base = f"/api/v1/projects/{project_id}"  # residency eu, no other region allowed
    messages = assert_invalid(world.patch("manager", base, json={
        "review_workforce_id": world.workforce_ids["vendor_in"]}), "review_workforce_id")
    assert "in" in messages[0]
    ok(world.patch("manager", base, json={"review_workforce_id": world.workforce_ids["vendor_eu"]}))


def test_uncertain_and_gold_conflicting_items_are_reviewed_and_the_verdict_is_final(
        app, world, project_id):
    tasks = [task("d1", language="de"), task("ok1", language="de"),
             task("g1", gold=NEG, language="de")]
    base = prepare(world, project_id, tasks, redundancy=2, max_overlap=2, target_confidence=0.9,
                   allowed_regions=["eu", "in"], review_workforce_id=world.workforce_ids["vendor_in"],
                   gold_accuracy_floor=0.6, gold_min_answers=2)
    dispatch(world, base)
    answers = {"d1": (POS, NEG), "ok1": (POS, POS), "g1": (POS, POS)}
    seen: dict[str, int] = {}
    rows = []
    for leased in lease(world, "vendor_eu"):
        key = leased["task"]["external_id"]
        worker = "ab"[seen.get(key, 0)]
        rows.append((leased["assignment_id"], worker, answers[key][seen.get(key, 0)]))
        seen[key] = seen.get(key, 0) + 1
    submit(world, "vendor_eu", rows)
    run = consensus(world, base, method="majority_vote")

    first = quality_round(world, base)
    assert (first["review_opened"], first["to_review"], first["stopped"], first["blocked"]) == (
        2, 1, 1, [])  # gold is left out of overlap; one gold answer each is too few to judge
    items = {i["external_id"]: i for i in ok(world.get("auditor", f"{base}/quality/reviews"))}
    assert {k: (i["reason"], i["status"], i["run_id"]) for k, i in items.items()} == {
        "d1": ("uncertain_at_max_overlap", "open", run["id"]),
        "g1": ("gold_conflict", "open", run["id"])}
    assert quality_round(world, base)["review_opened"] == 0  # one review per task

    # Only the review workforce is served; an expired review lease returns to the queue.
    assert ok(world.post("vendor_eu", "/api/v1/vendor/reviews/leases", json={}))["items"] == []
    with app.app_context():
        session = db.session()
        stale = services.lease_reviews(session, world.workforce_ids["vendor_in"], 1,
                                       now=utcnow() - timedelta(hours=2))
        session.commit()
    assert len(stale) == 1
    served = ok(world.post("vendor_in", "/api/v1/vendor/reviews/leases", json={"limit": 10}))
    by_task = {i["task"]["external_id"]: i for i in served["items"]}
    assert set(by_task) == {"d1", "g1"}
    text = json.dumps(served)
    assert "gold" not in text and "reason" not in text  # a reviewer is not told why
    assert by_task["d1"]["guideline"]["version"] == 1 and by_task["d1"]["label_classes"][0] == POS

    d1, g1 = by_task["d1"]["review_id"], by_task["g1"]["review_id"]
    labels_before = count_rows(app, Label)
    assert _codes(_verdicts(world, "vendor_eu", (d1, "x", NEG))) == ["not_found"]
    first_answer = _verdicts(world, "vendor_in", (d1, "expert", NEG), (g1, "expert", "meh"),
                             (d1, " ", NEG))
    assert _codes(first_answer) == ["created", "invalid_label", "invalid_reviewer"]
    retry = _verdicts(world, "vendor_in", (d1, "expert", NEG))
    assert _codes(retry) == ["unchanged"]
    assert retry["results"][0]["verdict_id"] == first_answer["results"][0]["verdict_id"]
    assert _codes(_verdicts(world, "vendor_in", (d1, "expert", POS))) == ["already_decided"]
    assert _codes(_verdicts(world, "vendor_in", (g1, "expert", POS))) == ["created"]
    assert count_rows(app, ReviewVerdict) == 2
    assert count_rows(app, Label) == labels_before  # verdicts are not crowd labels
    assert len(audit_events(app, "review.verdict")) == 2

    decided = {i["external_id"]: i for i in ok(world.get("auditor", f"{base}/quality/reviews",
                                                         query_string={"status": "decided"}))}
    assert decided["d1"]["verdict"]["label"] == NEG and decided["g1"]["verdict"]["label"] == POS
    final = {f["external_id"]: f for f in ok(world.get("auditor", f"{base}/quality/final-labels"))}
    assert (final["d1"]["label"], final["d1"]["source"], final["d1"]["consensus_label"]) == (
        NEG, "review", POS)
    assert (final["ok1"]["label"], final["ok1"]["source"], final["ok1"]["verdict_id"]) == (
        POS, "consensus", None)
    # The crowd's consensus is untouched: the same inputs give back the same run.
    again = consensus(world, base, method="majority_vote")
    assert again["id"] == run["id"] and again["reused"] is True

    # Verdicts count as gold (and win over the task's gold): worker a was right on g1 (the
    # verdict says positive, the gold said negative) and wrong on d1: 1 of 2, below 0.6.
    second = quality_round(world, base)
    blocks = ok(world.get("auditor", f"{base}/quality/blocks"))
    assert len(second["blocked"]) == 1
    assert [(b["worker_external_id"], b["gold_answers"], b["gold_correct"]) for b in blocks] == [
        ("a", 2, 1)]
