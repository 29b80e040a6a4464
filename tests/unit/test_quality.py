"""The pure parts of quality: gold quotas and placement, worker scores, the overlap plan."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coordinator.dispatch.routing import Candidate, Router
from coordinator.quality.gold import below_floor, gold_quota, score_workers, shuffle_rows
from coordinator.quality.overlap import TaskState, plan_overlap
from coordinator.quality.services import ActiveBlock


def test_gold_quota_keeps_the_share_over_all_the_work():
    assert gold_quota(90, 0, 0.1) == 10  # 10 of 100
    assert gold_quota(90, 4, 0.1) == 6
    assert gold_quota(90, 12, 0.1) == 0  # never negative
    assert gold_quota(0, 0, 0.5) == 0 and gold_quota(10, 0, 0.0) == 0
    assert gold_quota(3, 0, 0.25) == 1


def test_shuffle_rows_mixes_regular_and_gold_alike():
    rows = [{"task_id": i, "workforce_id": 1} for i in range(100)]
    mixed = shuffle_rows(rows, random.Random(7))
    assert sorted(r["task_id"] for r in mixed) == list(range(100)) and len(mixed) == 100
    assert [r["task_id"] for r in mixed] != list(range(100))  # regular rows move too
    assert rows == [{"task_id": i, "workforce_id": 1} for i in range(100)]  # input untouched
    # Without a generator the order comes from the operating system, not from a seed.
    assert shuffle_rows(rows) != shuffle_rows(rows)


def test_a_vendor_block_refuses_every_later_label_an_mturk_one_only_later_work():
    since = datetime(2026, 1, 2, tzinfo=UTC)
    before, after = since - timedelta(hours=1), since + timedelta(hours=1)
    vendor, mturk = ActiveBlock(since, at_lease=False), ActiveBlock(since, at_lease=True)
    assert vendor.refuses(before, after) and vendor.refuses(None, after)
    assert not vendor.refuses(before, before)
    assert not mturk.refuses(before, after) and mturk.refuses(after, after)


def test_scores_and_the_floor_need_enough_answers():
    rows = [(1, 10, "a", "a"), (1, 10, "b", "a"), (1, 10, "b", "a"),
            (2, 10, "a", "a"), (2, 10, "b", "a"),
            (3, 20, "a", "a"), (3, 20, "a", "a"), (3, 20, "a", "a")]
    scores = score_workers(rows)
    assert (scores[1].answers, scores[1].correct) == (3, 1)
    assert scores[3].workforce_id == 20 and scores[3].accuracy == 1.0
    assert below_floor(scores, 0.5, 3) == [1]  # worker 2 has only 2 answers
    assert below_floor(scores, 0.5, 2) == [1]  # 1 of 2 is not below 0.5
    assert below_floor(scores, 0.6, 2) == [1, 2]
    assert below_floor(score_workers([]), 0.5, 1) == []
    assert math.isnan(type(scores[1])(workforce_id=10).accuracy)  # no answers: no accuracy


def test_plan_overlap_sorts_every_case():
    states = [
        TaskState(1, 0.99, 2, 2, 0),   # confident: stop
        TaskState(2, 0.6, 2, 2, 0),    # uncertain, room left: one more
        TaskState(3, 0.6, 2, 3, 1),    # uncertain, work still out: wait
        TaskState(4, 0.6, 4, 4, 0),    # uncertain at the maximum: review
        TaskState(5, 0.1, 1, 1, 0, excluded=True),  # gold or reviewed: left alone
        TaskState(6, 0.9, 1, 1, 0),    # exactly the target counts as confident
        TaskState(7, 0.5, 1, 4, 0),    # four assignments live already: wait, do not add
    ]
    plan = plan_overlap(states, 0.9, 4)
    assert (plan.stop, plan.extra, plan.waiting, plan.review) == ([1, 6], [2], [3, 7], [4])
    # Confident on fewer labels than the redundancy: wait for the rest, do not stop.
    plan = plan_overlap(states, 0.9, 4, redundancy=2)
    assert (plan.stop, plan.extra, plan.waiting, plan.review) == ([1], [2], [3, 6, 7], [4])
    assert plan_overlap([], 0.9, 4).extra == []


def _candidate(id: int, price: float) -> Candidate:
    return Candidate(id=id, name=f"wf{id}", region="eu", languages=("en",), active=True,
                     daily_capacity=100, capacity_left=100, price=Decimal(str(price)),
                     currency="USD", price_usd=price)


def test_route_avoids_when_it_can_and_not_when_it_cannot():
    router = Router([_candidate(1, 1.0), _candidate(2, 3.0)], [])
    assert router.route(["en"], 1).chosen == [1]
    assert router.route(["en"], 1, avoid=[1]).chosen == [2]
    # Both avoided: the ordinary policy decides (price, then a different workforce).
    assert router.route(["en"], 2, avoid=[1, 2]).chosen == [1, 2]
    only = Router([_candidate(1, 1.0)], [])
    assert only.route(["en"], 1, avoid=[1]).chosen == [1]
