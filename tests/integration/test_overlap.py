"""Dynamic overlap through the HTTP API, and add_assignments, the service it shares."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from coordinator import db
from coordinator.audit.services import Actor
from coordinator.dispatch.models import Assignment, DispatchRun
from coordinator.dispatch.services import add_assignments
from coordinator.errors import InvalidInput
from coordinator.projects.models import Task
from tests.quality_flow import (
    codes,
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


def _ids(app, project_id):
    with app.app_context():
        return dict(db.session().execute(select(Task.external_id, Task.id).where(
            Task.project_id == project_id)).all())


def _states(app, task_id):
    with app.app_context():
        return sorted(db.session().scalars(select(Assignment.status).where(
            Assignment.task_id == task_id)))


def _add(app, project_id, extra, **kwargs):
    with app.app_context():
        session = db.session()
        run = add_assignments(session, Actor.system(), project_id, extra, **kwargs)
        session.commit()
        return run.id


def test_uncertain_tasks_get_one_more_label_confident_ones_stop_and_the_last_go_to_review(
        app, world, project_id):
    base = prepare(world, project_id, [task(k, language="de") for k in "abcd"], redundancy=2,
                   max_overlap=3, target_confidence=0.9)
    ids = _ids(app, project_id)
    dispatch(world, base)
    votes = {"a": [POS, POS], "b": [POS, NEG], "c": [POS], "d": [POS, NEG]}
    rows, seen = [], {}
    for leased in lease(world, "vendor_eu"):
        key = leased["task"]["external_id"]
        n = seen.setdefault(key, 0)
        if n < len(votes[key]):
            rows.append((leased["assignment_id"], f"w{n}", votes[key][n]))
        seen[key] = n + 1
    submit(world, "vendor_eu", rows)
    _add(app, project_id, {ids["a"]: 1, ids["d"]: 1})  # work still offered for a and d
    consensus(world, base, method="majority_vote")  # confidence = share of the votes

    first = quality_round(world, base)
    # a: 2 of 2 agree, stop and withdraw its offer; c: a single label is the whole majority
    # (1.0) under majority vote, but one label is below the redundancy of 2, so it waits for
    # its second; b: 1 of 2, one more label; d: 1 of 2 but its extra offer is still out, so
    # it waits.
    assert (first["stopped"], first["extra_assignments"], first["waiting"], first["cancelled"],
            first["to_review"]) == (1, 1, 2, 1, 0)
    assert _states(app, ids["a"]) == ["cancelled", "submitted", "submitted"]
    assert _states(app, ids["c"]) == ["leased", "submitted"]
    assert _states(app, ids["b"]) == ["offered", "submitted", "submitted"]
    with app.app_context():
        run = db.session().get(DispatchRun, first["dispatch_run_id"])
        assert run.task_filter["extra"] == {str(ids["b"]): 1} and run.assignments_created == 1
    # Running the step again adds nothing: b's new label is not back yet.
    again = quality_round(world, base)
    assert (again["extra_assignments"], again["waiting"], again["cancelled"]) == (0, 3, 0)

    fresh = [l for l in lease(world, "vendor_eu") if l["task"]["external_id"] == "b"]
    assert codes(submit(world, "vendor_eu", [(fresh[0]["assignment_id"], "w2", NEG)])) == ["created"]
    consensus(world, base, method="majority_vote")
    last = quality_round(world, base)  # b: 2 of 3, below 0.9 at the maximum of 3 labels
    # Nobody reviews for the project yet: no item is opened, and b is not set aside for good.
    assert (last["to_review"], last["review_opened"], last["extra_assignments"]) == (1, 0, 0)
    assert ok(world.get("auditor", f"{base}/quality/reviews")) == []
    ok(world.patch("manager", base, json={"review_workforce_id": world.workforce_ids["vendor_eu"]}))
    reviewed = quality_round(world, base)
    assert (reviewed["to_review"], reviewed["review_opened"]) == (1, 1)
    reviews = ok(world.get("auditor", f"{base}/quality/reviews"))
    assert [(r["external_id"], r["reason"]) for r in reviews] == [("b", "uncertain_at_max_overlap")]


def test_a_project_using_one_class_stops_everywhere(app, world, project_id):
    base = prepare(world, project_id, [task(k, language="de") for k in "xyz"], redundancy=2,
                   max_overlap=4, target_confidence=0.9)
    dispatch(world, base)
    leased = lease(world, "vendor_eu")
    submit(world, "vendor_eu", [(l["assignment_id"], f"w{i % 2}", POS) for i, l in enumerate(leased)])
    consensus(world, base)  # Dawid-Skene with one class in use: every posterior is 1
    outcome = quality_round(world, base)
    assert (outcome["stopped"], outcome["extra_assignments"], outcome["to_review"],
            outcome["review_opened"]) == (3, 0, 0, 0)


def test_add_assignments_routes_by_policy_avoids_and_refuses_bad_input(app, world, project_id):
    prepare(world, project_id, [task("t", language="en"), task("u", language="en")],
            allowed_regions=["eu", "in"])
    ids = _ids(app, project_id)
    eu, india = world.workforce_ids["vendor_eu"], world.workforce_ids["vendor_in"]
    _add(app, project_id, {ids["t"]: 1})
    _add(app, project_id, {ids["u"]: 1}, avoid_workforces={ids["u"]: [india]})
    with app.app_context():
        rows = dict(db.session().execute(select(Assignment.task_id, Assignment.workforce_id)).all())
    assert rows == {ids["t"]: india, ids["u"]: eu}  # the cheaper one, unless avoided
    for extra in ({}, {ids["t"]: 0}, {ids["t"]: 26}, {10**9: 1}):
        with app.app_context(), pytest.raises(InvalidInput) as raised:
            add_assignments(db.session(), Actor.system(), project_id, extra)
        assert "extra" in raised.value.errors
    # The only eligible workforce is taken even when it is to be avoided.
    _add(app, project_id, {ids["t"]: 1}, avoid_workforces={ids["t"]: [india, eu]})
    with app.app_context():
        assert db.session().query(Assignment).filter_by(task_id=ids["t"]).count() == 2


def _label_all(world, votes):
    """Label every leased task with ``votes[task]`` (one label per lease, in order)."""
    rows, seen = [], {}
    for leased in lease(world, "vendor_eu"):
        key = leased["task"]["external_id"]
        n = seen.setdefault(key, 0)
        if n < len(votes[key]):
            rows.append((leased["assignment_id"], f"w{n}", votes[key][n]))
        seen[key] = n + 1
    return submit(world, "vendor_eu", rows)


def test_a_stopped_task_is_not_topped_up_by_the_next_dispatch(app, world, project_id):
    base = prepare(world, project_id, [task("a", language="de")], redundancy=2, max_overlap=3,
                   target_confidence=0.9)
    ids = _ids(app, project_id)
    dispatch(world, base)
    _label_all(world, {"a": [POS, POS]})
    _add(app, project_id, {ids["a"]: 1})
    consensus(world, base, method="majority_vote")
    assert quality_round(world, base)["cancelled"] == 1
    # A rejected assignment no longer counts as live: without the recorded stop, dispatch
    # would hand the withdrawn work out again.
    with app.app_context():
        rejected = db.session().scalars(select(Assignment.id).where(
            Assignment.task_id == ids["a"], Assignment.status == "submitted")).first()
    ok(world.post("manager", f"/api/v1/assignments/{rejected}/review",
                  json={"decision": "reject", "reason": "sloppy"}))
    assert dispatch(world, base)["assignments_created"] == 0
    assert _states(app, ids["a"]) == ["cancelled", "rejected", "submitted"]


def test_a_round_on_a_paused_project_keeps_its_decisions_and_says_why_no_work_was_added(
        app, world, project_id):
    base = prepare(world, project_id, [task("b", language="de")], redundancy=2, max_overlap=3,
                   target_confidence=0.9)
    dispatch(world, base)
    _label_all(world, {"b": [POS, NEG]})
    consensus(world, base, method="majority_vote")
    ok(world.post("manager", f"{base}/pause"))
    outcome = quality_round(world, base)
    assert (outcome["extra_assignments"], outcome["dispatch_run_id"]) == (0, None)
    assert "paused" in outcome["extra_skipped"]
    ok(world.post("manager", f"{base}/resume"))
    again = quality_round(world, base)
    assert again["extra_assignments"] == 1 and again["extra_skipped"] is None


def test_a_round_keeps_every_in_list_within_the_chunk(app, world, project_id, monkeypatch):
    import re

    from sqlalchemy import event

    import coordinator.dispatch.services as dispatch_services
    import coordinator.quality.services as quality_services

    monkeypatch.setattr(quality_services, "CHUNK", 4)
    monkeypatch.setattr(dispatch_services, "CHUNK", 4)
    keys = [f"t{i:02}" for i in range(12)] + [f"g{i:02}" for i in range(12)]
    base = prepare(world, project_id, [task(k, gold=POS if k[0] == "g" else None, language="de")
                                       for k in keys],
                   redundancy=2, max_overlap=3, target_confidence=0.9, gold_rate=0.2,
                   review_workforce_id=world.workforce_ids["vendor_eu"])
    widest: list[int] = []

    def measure(conn, cursor, statement, parameters, context, executemany):
        # SQLite writes ?, psycopg %(name)s: a list is what lies between IN ( and its ).
        for listed in re.findall(r"IN \(((?:[^()]|%\([^)]*\))*)\)", statement):
            widest.append(listed.count("?") + listed.count("%("))

    engine = db.database(app).engine

    def watched(step, *args):
        # Leases are bounded by their limit (500); dispatch and the round grow with the project.
        event.listen(engine, "before_cursor_execute", measure)
        try:
            return step(*args)
        finally:
            event.remove(engine, "before_cursor_execute", measure)

    watched(dispatch, world, base)
    _label_all(world, {k: [POS, NEG] for k in keys})
    consensus(world, base, method="majority_vote")
    outcome = watched(quality_round, world, base)
    assert outcome["extra_assignments"] == 12  # every regular task is uncertain: 12 ids
    assert widest and max(widest) <= 4
