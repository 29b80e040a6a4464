"""Gold questions through the HTTP API: settings, unannounced mixing, blocking and lifting."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import select

from coordinator import db
from coordinator.audit.services import id_ranges
from coordinator.dispatch.models import Assignment
from coordinator.projects.models import Task
from coordinator.quality.models import WorkerBlock
from coordinator.webhooks.models import WebhookDelivery
from coordinator.workforces.models import Workforce
from tests.helpers import assert_invalid, audit_events, count_rows
from tests.quality_flow import (
    codes,
    consensus,
    dispatch,
    import_tasks,
    lease,
    ok,
    prepare,
    quality_round,
    submit,
    task,
)

POS, NEG = "positive", "negative"


def test_quality_settings_are_validated_and_audited(world, project_id):
    base = f"/api/v1/projects/{project_id}"
    new = {"name": "Other", "label_classes": [POS, NEG], "source_locale": "en"}
    assert_invalid(world.post("manager", "/api/v1/projects", json={**new, "gold_rate": 1.0}),
                   "gold_rate")
    assert_invalid(world.post("manager", "/api/v1/projects", json={**new, "gold_rate": -0.1}),
                   "gold_rate")
    assert_invalid(world.post("manager", "/api/v1/projects",
                              json={**new, "redundancy": 3, "max_overlap": 2}), "max_overlap")
    assert_invalid(world.post("manager", "/api/v1/projects",
                              json={**new, "review_workforce_id": 99999}), "review_workforce_id")
    assert_invalid(world.patch("manager", base, json={"target_confidence": 0}), "target_confidence")
    assert_invalid(world.patch("manager", base, json={"gold_accuracy_floor": 1.5}),
                   "gold_accuracy_floor")
    # The project has redundancy 3: a maximum overlap of 2 is refused, and so is lowering
    # the maximum below a redundancy raised in the same change.
    assert_invalid(world.patch("manager", base, json={"max_overlap": 2}), "max_overlap")
    assert_invalid(world.patch("manager", base, json={"redundancy": 5, "max_overlap": 4}),
                   "max_overlap")
    unchanged = ok(world.get("auditor", base))
    assert unchanged["max_overlap"] is None and unchanged["gold_rate"] == 0.0

    eu = world.workforce_ids["vendor_eu"]
    changed = ok(world.patch("manager", base, json={
        "gold_rate": 0.1, "gold_accuracy_floor": 0.7, "gold_min_answers": 5,
        "target_confidence": 0.9, "max_overlap": 5, "review_workforce_id": eu}))
    assert (changed["gold_rate"], changed["gold_accuracy_floor"], changed["gold_min_answers"],
            changed["target_confidence"], changed["max_overlap"], changed["review_workforce_id"]
            ) == (0.1, 0.7, 5, 0.9, 5, eu)
    # Raising the redundancy above the stored maximum overlap is refused too.
    assert_invalid(world.patch("manager", base, json={"redundancy": 6}), "max_overlap")
    update = audit_events(world.client.application, "project.update")[-1]
    assert update.after["gold_rate"] == 0.1 and update.after["review_workforce_id"] == eu


def _gold_tasks(app, project_id):
    with app.app_context():
        return set(db.session().scalars(select(Task.id).where(
            Task.project_id == project_id, Task.gold.is_not(None))))


def test_gold_is_mixed_into_each_workforces_work_at_the_rate_unannounced(app, world, project_id):
    tasks = [task(f"r{i}") for i in range(12)] + [task(f"g{i}", gold=POS) for i in range(6)]
    base = prepare(world, project_id, tasks, redundancy=1, allowed_regions=["eu", "in"],
                   gold_rate=0.25)
    first = dispatch(world, base)
    gold = _gold_tasks(app, project_id)
    with app.app_context():
        rows = list(db.session().execute(select(Assignment.task_id, Assignment.workforce_id)
                                         .order_by(Assignment.id)))
    regular = [r for r in rows if r.task_id not in gold]
    mixed = [r for r in rows if r.task_id in gold]
    assert len(regular) == 12  # gold tasks are not routed for redundancy
    for workforce in {r.workforce_id for r in regular}:
        mine = sum(1 for r in regular if r.workforce_id == workforce)
        given = sum(1 for r in mixed if r.workforce_id == workforce)
        assert given == round(mine * 0.25 / 0.75), (mine, given)  # gold is 25% of its work
    assert first["assignments_created"] == 12 + len(mixed) and len(mixed) >= 3
    assert len({(r.task_id, r.workforce_id) for r in mixed}) == len(mixed)  # never twice at once

    who = "vendor_in" if mixed[0].workforce_id == world.workforce_ids["vendor_in"] else "vendor_eu"
    leases = lease(world, who)
    text = json.dumps(leases)
    assert '"gold"' not in text  # the lease never says which tasks are gold
    order = [leased["task"]["external_id"].startswith("g") for leased in leases]
    assert any(order) and order[-sum(order):] != [True] * sum(order)  # not all at the end
    assignments = ok(world.get(who, "/api/v1/vendor/assignments"))
    assert all("gold" not in item for item in assignments)

    # More regular work tops the workforce's gold up to the rate over all its work.
    import_tasks(world, base, [task(f"s{i}") for i in range(6)])
    dispatch(world, base)
    with app.app_context():
        rows = list(db.session().execute(select(Assignment.task_id, Assignment.workforce_id)))
    for workforce in {r.workforce_id for r in rows}:
        mine = sum(1 for r in rows if r.workforce_id == workforce and r.task_id not in gold)
        given = sum(1 for r in rows if r.workforce_id == workforce and r.task_id in gold)
        assert given == min(round(mine / 3), 6)


def test_a_worker_below_the_gold_floor_is_blocked_with_evidence_and_can_be_lifted(
        app, world, project_id):
    tasks = [task(f"g{i}", gold=POS) for i in range(4)] + [task("r1"), task("r2")]
    base = prepare(world, project_id, tasks, redundancy=3, gold_accuracy_floor=0.6,
                   gold_min_answers=3)
    with app.app_context():
        session = db.session()
        session.get(Workforce, world.workforce_ids["vendor_eu"]).webhook_url = "https://eu.example/hook"
        session.commit()
    dispatch(world, base)
    leases = lease(world, "vendor_eu")
    by_task: dict[str, list[int]] = {}
    for leased in leases:
        by_task.setdefault(leased["task"]["external_id"], []).append(leased["assignment_id"])
    rows = []
    for key, (a, b, c) in sorted(by_task.items()):
        gold = key.startswith("g")
        rows += [(a, "good", POS), (b, "bad", NEG if gold else POS)]
        if key in ("g0", "g1"):
            rows.append((c, "meh", NEG))  # wrong twice, but fewer than the 3 answers needed
    assert codes(submit(world, "vendor_eu", rows)) == ["created"] * len(rows)
    # Work leased before the block stays the worker's to finish.
    import_tasks(world, base, [task("r3")])
    dispatch(world, base)
    before_block = lease(world, "vendor_eu")
    run = consensus(world, base)

    outcome = quality_round(world, base)
    assert outcome["run_id"] == run["id"] and len(outcome["blocked"]) == 1
    blocks = ok(world.get("auditor", f"{base}/quality/blocks"))
    assert [(b["worker_external_id"], b["gold_answers"], b["gold_correct"], b["accuracy"],
             b["floor"], b["run_id"], b["active"]) for b in blocks] == [
        ("bad", 4, 0, 0.0, 0.6, run["id"], True)]
    event = audit_events(app, "worker.block")[0]  # one event per round, a row per block
    assert event.after["run_id"] == run["id"] and event.after["workers"] == 1
    assert [(b["block_id"], b["gold_answers"], b["run_id"]) for b in event.after["blocks"]] == [
        (blocks[0]["id"], 4, run["id"])]
    with app.app_context():
        sent = list(db.session().scalars(select(WebhookDelivery).where(
            WebhookDelivery.event == "worker.blocked")))
    assert [d.payload["worker_id"] for d in sent] == ["bad"]
    assert sent[0].workforce_id == world.workforce_ids["vendor_eu"]
    mine = ok(world.get("vendor_eu", "/api/v1/vendor/blocks"))
    assert [b["worker_external_id"] for b in mine] == ["bad"]
    assert "lifted_by_id" not in mine[0] and "evidence" not in mine[0]
    # The scored labels are kept, by the source of their answer, so the block can be rebuilt.
    assert len(blocks[0]["evidence"]["gold"]) == 4 and blocks[0]["evidence"]["verdict"] == []
    assert event.after["blocks"][0]["label_ids"] == {
        source: id_ranges(ids) for source, ids in blocks[0]["evidence"].items()}
    assert len(event.after["evidence_sha256"]) == 64
    assert ok(world.get("vendor_in", "/api/v1/vendor/blocks")) == []
    # A second round on the same evidence blocks nobody again.
    assert quality_round(world, base)["blocked"] == []
    assert count_rows(app, WorkerBlock) == 1

    # A vendor names the worker only with the label: from the block on, the worker's labels
    # are refused, for work leased before the block as well as after.
    r3 = [leased["assignment_id"] for leased in before_block]
    assert codes(submit(world, "vendor_eu", [(r3[0], "bad", POS)])) == ["worker_blocked"]
    assert codes(submit(world, "vendor_eu", [(r3[0], "good", POS)])) == ["created"]
    import_tasks(world, base, [task("r4")])
    dispatch(world, base)
    fresh = [leased["assignment_id"] for leased in lease(world, "vendor_eu")]
    answer = submit(world, "vendor_eu", [(fresh[0], "bad", POS), (fresh[1], "good", POS)])
    assert codes(answer) == ["worker_blocked", "created"]
    assert "bad" in answer["results"][0]["error"]["message"]

    block_id = blocks[0]["id"]
    lift = f"{base}/quality/blocks/{block_id}/lift"
    assert world.post("auditor", lift, json={"reason": "appeal"}).status_code == 403
    assert_invalid(world.post("manager", lift, json={"reason": "  "}), "reason")
    lifted = ok(world.post("manager", lift, json={"reason": "retrained"}))
    assert lifted["active"] is False and lifted["lift_reason"] == "retrained"
    assert world.post("manager", lift, json={"reason": "again"}).status_code == 409
    assert audit_events(app, "worker.unblock")[0].after["reason"] == "retrained"
    assert codes(submit(world, "vendor_eu", [(fresh[0], "bad", POS)])) == ["created"]
    consensus(world, base)
    assert quality_round(world, base)["blocked"] == []  # no new gold answers since the lift
    assert ok(world.get("vendor_eu", "/api/v1/vendor/blocks", query_string={"active": "true"})) == []


def test_without_a_floor_nobody_is_blocked_and_rounds_need_a_run(world, project_id):
    base = prepare(world, project_id, [task("g0", gold=POS)], redundancy=1)
    answer = world.post("manager", f"{base}/quality/rounds", json={})
    assert answer.status_code == 409  # an empty project has no consensus run to act on
    assert "consensus" in answer.get_json()["detail"]
    assert world.post("manager", "/api/v1/projects/99999/quality/rounds", json={}).status_code == 404
    dispatch(world, base)
    leased = lease(world, "vendor_eu")
    submit(world, "vendor_eu", [(leased[0]["assignment_id"], "w", NEG)])
    consensus(world, base)
    assert quality_round(world, base)["blocked"] == []


def test_a_single_vendor_gets_gold_as_often_as_regular_work_shuffled_without_task_ids(
        app, world, project_id):
    tasks = [task(f"r{i:02}") for i in range(12)] + [task(f"g{i}", gold=POS) for i in range(6)]
    base = prepare(world, project_id, tasks, redundancy=3, gold_rate=0.25)  # eu only
    dispatch(world, base)
    leases = lease(world, "vendor_eu")
    seen = Counter(leased["task"]["external_id"] for leased in leases)
    # Every task comes three times, gold too: 36 regular and 12 gold assignments (25%).
    assert set(seen.values()) == {3}
    assert sum(n for key, n in seen.items() if key.startswith("g")) == 12
    # The run's assignments are in random order, regular ones included, and the vendor's
    # listing carries no internal task id that would set gold apart.
    order = [leased["task"]["external_id"] for leased in leases]
    assert [k for k in order if k.startswith("r")] != sorted(k for k in order if k.startswith("r"))
    listing = ok(world.get("vendor_eu", "/api/v1/vendor/assignments",
                           query_string={"page_size": 100}))
    assert len(listing) == 48 and all("task_id" not in item for item in listing)


def test_a_lifted_worker_is_judged_only_on_labels_sent_after_the_lift(app, world, project_id):
    base = prepare(world, project_id, [task(f"g{i}", gold=POS) for i in range(5)], redundancy=1,
                   gold_accuracy_floor=0.6, gold_min_answers=3)
    dispatch(world, base)
    leases = lease(world, "vendor_eu")
    submit(world, "vendor_eu", [(leased["assignment_id"], "bad", NEG) for leased in leases[:4]])
    consensus(world, base)
    block = quality_round(world, base)["blocked"][0]
    ok(world.post("manager", f"{base}/quality/blocks/{block}/lift", json={"reason": "retrained"}))
    assert codes(submit(world, "vendor_eu", [(leases[4]["assignment_id"], "bad", POS)])) == [
        "created"]
    consensus(world, base)
    # One right answer since the lift: below gold_min_answers, the old four do not count.
    assert quality_round(world, base)["blocked"] == []
    assert len(ok(world.get("auditor", f"{base}/quality/blocks"))) == 1


def test_gold_the_crowd_gets_wrong_is_reviewed_under_dawid_skene(app, world, project_id):
    tasks = [task(f"g{i}", gold=POS) for i in range(10)] + [task(f"r{i}") for i in range(4)]
    base = prepare(world, project_id, tasks, redundancy=3,
                   review_workforce_id=world.workforce_ids["vendor_eu"])
    dispatch(world, base)
    rows, n = [], Counter()
    for leased in lease(world, "vendor_eu"):
        key = leased["task"]["external_id"]
        rows.append((leased["assignment_id"], f"w{n[key]}", NEG))  # all say negative on gold
        n[key] += 1
    submit(world, "vendor_eu", rows)
    run = consensus(world, base)  # the default method clamps most gold to its answer
    assert run["gold_used"] > 0
    assert quality_round(world, base)["review_opened"] == 10
    items = ok(world.get("auditor", f"{base}/quality/reviews", query_string={"page_size": 100}))
    assert sorted(i["external_id"] for i in items if i["reason"] == "gold_conflict") == [
        f"g{i}" for i in range(10)]


def test_round_and_lift_send_the_webhooks_at_once(app, world, project_id, monkeypatch):
    import coordinator.quality.api as quality_api

    sent: list[str] = []
    monkeypatch.setattr(quality_api, "enqueue", lambda name, **kw: sent.append(name))
    base = prepare(world, project_id, [task(f"g{i}", gold=POS) for i in range(3)], redundancy=1,
                   gold_accuracy_floor=0.6, gold_min_answers=2)
    dispatch(world, base)
    submit(world, "vendor_eu", [(leased["assignment_id"], "bad", NEG)
                                for leased in lease(world, "vendor_eu")])
    consensus(world, base)
    block = quality_round(world, base)["blocked"][0]
    assert sent == ["deliver_webhooks"]
    lifted = ok(world.post("manager", f"{base}/quality/blocks/{block}/lift", json={"reason": "ok"}))
    assert sent == ["deliver_webhooks"] * 2 and lifted["id"] == block and not lifted["active"]
