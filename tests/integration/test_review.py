"""Review rounds through the HTTP API: the queue, verdicts, final labels, verdicts as gold."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import event, select

from coordinator import db
from coordinator.audit.services import id_ranges
from coordinator.db import utcnow
from coordinator.labels.models import Label
from coordinator.quality import services
from coordinator.quality.models import ReviewItem, ReviewVerdict
from coordinator.workforces.models import Workforce
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

    # Only the review workforce is served, only with tasks in languages it covers, and only
    # while it is active; an expired review lease returns to the queue.
    assert ok(world.post("vendor_eu", "/api/v1/vendor/reviews/leases", json={}))["items"] == []
    assert ok(world.post("vendor_in", "/api/v1/vendor/reviews/leases", json={}))["items"] == []
    with app.app_context():
        session = db.session()
        reviewer = session.get(Workforce, world.workforce_ids["vendor_in"])
        reviewer.languages, reviewer.active = ["hi", "en", "de"], False
        session.commit()
    assert ok(world.post("vendor_in", "/api/v1/vendor/reviews/leases", json={}))["items"] == []
    with app.app_context():
        session = db.session()
        session.get(Workforce, world.workforce_ids["vendor_in"]).active = True
        session.commit()
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
    assert [e.after["created"] for e in audit_events(app, "review.verdicts")] == [1, 1]

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


def test_a_person_who_labelled_the_task_may_not_review_it(app, world, project_id):
    base = prepare(world, project_id, [task("d1", language="de")], redundancy=2, max_overlap=2,
                   target_confidence=0.9, review_workforce_id=world.workforce_ids["vendor_eu"])
    dispatch(world, base)
    leased = lease(world, "vendor_eu")
    body = {"labels": [{"assignment_id": leased[0]["assignment_id"], "worker_id": "a",
                        "label": POS, "worker_identity": "person-a-0123456789"},
                       {"assignment_id": leased[1]["assignment_id"], "worker_id": "b",
                        "label": NEG}]}
    ok(world.post("vendor_eu", "/api/v1/vendor/labels", json=body,
                  headers={"Idempotency-Key": "reviewer-labelled"}))
    consensus(world, base, method="majority_vote")
    assert quality_round(world, base)["review_opened"] == 1
    item = ok(world.post("vendor_eu", "/api/v1/vendor/reviews/leases", json={}))["items"][0]
    rid = item["review_id"]
    body = {"verdicts": [{"review_id": rid, "reviewer_id": "a", "label": POS},
                         {"review_id": rid, "reviewer_id": "a2", "label": POS,
                          "reviewer_identity": "person-a-0123456789"}]}
    answer = ok(world.post("vendor_eu", VERDICTS, json=body))
    assert _codes(answer) == ["reviewer_labelled", "reviewer_labelled"]
    assert _codes(_verdicts(world, "vendor_eu", (rid, "c", NEG))) == ["created"]


def _review_queue(world, project_id, keys):
    """Open a review item per task (two labels that disagree at max_overlap 2)."""
    base = prepare(world, project_id, [task(k, language="de") for k in keys], redundancy=2,
                   max_overlap=2, target_confidence=0.9,
                   review_workforce_id=world.workforce_ids["vendor_eu"])
    dispatch(world, base)
    seen: dict[str, int] = {}
    rows = []
    for leased in lease(world, "vendor_eu"):
        n = seen[leased["task"]["external_id"]] = seen.get(leased["task"]["external_id"], 0) + 1
        rows.append((leased["assignment_id"], f"w{n}", POS if n == 1 else NEG))
    submit(world, "vendor_eu", rows)
    consensus(world, base, method="majority_vote")
    assert quality_round(world, base)["review_opened"] == len(keys)
    return base


def test_review_leases_and_their_expiry_are_audited_once_per_call(app, world, project_id):
    _review_queue(world, project_id, ["d1", "d2", "d3"])
    workforce = world.workforce_ids["vendor_eu"]
    served = ok(world.post("vendor_eu", "/api/v1/vendor/reviews/leases", json={"limit": 2}))
    taken = sorted(i["review_id"] for i in served["items"])
    leases = audit_events(app, "review.lease")
    assert len(leases) == 1 and leases[0].subject_id == str(workforce)
    assert leases[0].actor_id is None or leases[0].actor_id > 0
    assert (leases[0].before, leases[0].after) == (
        {"status": "open"}, {"status": "leased", "review_item_ids": taken})
    assert audit_events(app, "review.lease_expire") == []
    # Two days on, both leases have run out: they go back to the queue in one event, and the
    # same call leases all three items again in another.
    with app.app_context():
        session = db.session()
        again = services.lease_reviews(session, workforce, 10, now=utcnow() + timedelta(days=2))
        session.commit()
    assert len(again) == 3
    expired = audit_events(app, "review.lease_expire")
    assert len(expired) == 1 and expired[0].subject_id == str(workforce)
    assert expired[0].after == {"status": "open", "review_item_ids": taken}
    assert [e.after["review_item_ids"] for e in audit_events(app, "review.lease")] == [
        taken, sorted(item.id for item, _, _ in again)]
    # Nothing leased, nothing expired: no event.
    assert ok(world.post("vendor_eu", "/api/v1/vendor/reviews/leases", json={}))["items"] == []
    assert len(audit_events(app, "review.lease")) == 2
    assert len(audit_events(app, "review.lease_expire")) == 1


def _statements(app, call):
    """Return the SQL statements ``call(session)`` sent, and what it returned."""
    with app.app_context():
        session = db.session()
        sent = []
        engine = session.get_bind()
        listener = lambda *args: sent.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            value = call(session)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        session.commit()
    return sent, value


def test_verdicts_are_audited_once_per_batch_without_a_query_per_verdict(
        app, world, project_id):
    _review_queue(world, project_id, ["d1", "d2", "d3", "d4"])
    workforce = world.workforce_ids["vendor_eu"]
    ids = sorted(i["review_id"] for i in ok(world.post(
        "vendor_eu", "/api/v1/vendor/reviews/leases", json={"limit": 10}))["items"])
    actor = services.Actor.system()

    def send(*given):
        return lambda session: services.submit_verdicts(
            session, actor, workforce, [services.VerdictIn(r, who, v) for r, who, v in given])

    one, first = _statements(app, send((ids[0], "expert1", POS)))
    # Three new verdicts by new reviewers, a repeat of one of them and an error: the same
    # queries and updates as a single verdict, and one event. (The unit of work may insert
    # row by row: SQLite cannot promise the order of a multi-row INSERT ... RETURNING.)
    three, second = _statements(app, send((ids[1], "expert2", POS), (ids[2], "expert3", NEG),
                                          (ids[3], "expert4", POS), (ids[1], "expert2", POS),
                                          (ids[3], "expert4", "meh")))
    assert _codes(first) == ["created"]
    assert _codes(second) == ["created", "created", "created", "unchanged", "invalid_label"]
    assert second["results"][3]["verdict_id"] == second["results"][0]["verdict_id"]
    def reads(statements):
        return [s for s in statements if not s.lstrip().upper().startswith("INSERT")]

    assert len(reads(three)) == len(reads(one)), (reads(one), reads(three))
    assert len(three) - len(reads(three)) <= 3 + 3 + 1  # workers, verdicts, the audit event
    events = audit_events(app, "review.verdicts")
    assert [(e.subject_id, e.after["created"]) for e in events] == [
        (str(workforce), 1), (str(workforce), 3)]
    created = [r["verdict_id"] for r in second["results"][:3]]
    assert events[1].after["review_item_ids"] == ids[1:]
    assert events[1].after["verdict_ids"] == id_ranges(created)
    with app.app_context():
        rows = [[v.id, v.review_item_id, v.task_id, v.reviewer_id, v.label]
                for v in db.session().scalars(select(ReviewVerdict).where(
                    ReviewVerdict.id.in_(created)))]
        statuses = set(db.session().scalars(select(ReviewItem.status)))
    assert events[1].after["verdicts_sha256"] == services.verdicts_hash(rows)
    assert statuses == {"decided"}
