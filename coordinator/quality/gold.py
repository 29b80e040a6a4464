"""Gold questions: mix them into each workforce's new work, unannounced, at the project's rate.

A project with ``gold_rate`` r > 0 does not route its gold tasks for redundancy. Instead,
each dispatch run tops up every workforce that receives new work there so that, over all of
its assignments on the project, gold makes up share r: with R regular assignments it should
hold ``round(R * r / (1 - r))`` gold ones. A gold task goes to a workforce at most once
while that workforce holds it live, so it may end up with more assignments than the
redundancy (it measures workers; it needs no consensus). Gold assignments take capacity like
any other, take their price and guideline, and are placed at random positions among the
run's regular assignments of the same workforce, so neither their order nor their content
(the lease payload never carries the gold answer) tells a vendor which tasks are gold.
When a workforce has run out of capacity or of eligible gold tasks it gets fewer.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordinator.dispatch.models import LIVE_STATES, Assignment
from coordinator.dispatch.routing import Decision, Router
from coordinator.projects.models import Project, Task


def gold_quota(regular: int, gold: int, rate: float) -> int:
    """Return how many more gold assignments keep ``gold / (regular + gold)`` near ``rate``."""
    if rate <= 0 or regular <= 0:
        return 0
    wanted = int(regular * rate / (1 - rate) + 0.5)
    return max(wanted - gold, 0)


def gold_task_ids(session: Session, project_id: int) -> set[int]:
    """Return the ids of the project's gold tasks."""
    return set(session.scalars(
        select(Task.id).where(Task.project_id == project_id, Task.gold.is_not(None))))


def _held(session: Session, project_id: int, gold: set[int]) -> tuple[dict[int, int], dict[int, int],
                                                                     dict[int, set[int]]]:
    """Return per workforce its live regular and gold assignments, and the gold tasks it holds."""
    regular: dict[int, int] = defaultdict(int)
    on_gold: dict[int, int] = defaultdict(int)
    holds: dict[int, set[int]] = defaultdict(set)
    rows = session.execute(
        select(Assignment.workforce_id, Assignment.task_id, func.count())
        .where(Assignment.project_id == project_id, Assignment.status.in_(LIVE_STATES))
        .group_by(Assignment.workforce_id, Assignment.task_id))
    for workforce_id, task_id, count in rows:
        if task_id in gold:
            on_gold[workforce_id] += count
            holds[workforce_id].add(task_id)
        else:
            regular[workforce_id] += count
    return regular, on_gold, holds


def mix_gold(session: Session, project: Project, router: Router,
             decisions: Iterable[tuple[Any, Decision, int]], gold: set[int]
             ) -> list[tuple[Any, Decision, int]]:
    """Return routing decisions that give each workforce with new work its share of gold."""
    new: dict[int, int] = defaultdict(int)
    for _, decision, _ in decisions:
        for workforce_id in decision.chosen:
            new[workforce_id] += 1
    if not new:
        return []
    regular, on_gold, holds = _held(session, project.id, gold)
    tasks = list(session.execute(
        select(Task.id, Task.external_id, Task.languages).where(Task.id.in_(sorted(gold)))
        .order_by(Task.id)))
    given: dict[int, int] = defaultdict(int)  # gold assignments per task, to spread them
    chosen: dict[int, list[int]] = defaultdict(list)
    candidates = {c.id: c for c in router.candidates}
    for workforce_id in sorted(new):
        quota = gold_quota(regular[workforce_id] + new[workforce_id], on_gold[workforce_id],
                           project.gold_rate)
        candidate = candidates[workforce_id]
        open_tasks = [t for t in tasks if t.id not in holds[workforce_id]
                      and candidate in router.eligible(t.languages)[1]]
        open_tasks.sort(key=lambda t: (given[t.id], t.id))
        for task in open_tasks[:min(quota, candidate.capacity_left)]:
            candidate.capacity_left -= 1
            given[task.id] += 1
            chosen[task.id].append(workforce_id)
    return [(task, Decision(group=router.eligible(task.languages)[0], chosen=chosen[task.id],
                            scores={}), len(chosen[task.id]))
            for task in tasks if chosen[task.id]]


def interleave(rows: list[dict[str, Any]], gold: set[int], seed: int) -> list[dict[str, Any]]:
    """Return ``rows`` with the gold ones moved to random places among their workforce's rows.

    Regular rows keep their order; vendors lease in row order, so gold must not come last.
    """
    rng = random.Random(seed)
    places: dict[int, list[int]] = defaultdict(list)
    keys: list[float] = []
    for row in rows:
        if row["task_id"] not in gold:
            places[row["workforce_id"]].append(len(keys))
            keys.append(float(len(keys)))
    end = float(len(keys))
    keyed = [(position, row) for position, row in zip(keys, (r for r in rows if r["task_id"] not in gold),
                                                     strict=True)]
    for row in rows:
        if row["task_id"] in gold:
            spots = places[row["workforce_id"]]
            at = rng.randint(0, len(spots))
            keyed.append((spots[at] - 0.5 if at < len(spots) else (spots[-1] + 0.5 if spots else end),
                          row))
    keyed.sort(key=lambda pair: pair[0])
    return [row for _, row in keyed]


@dataclass
class GoldScore:
    """A worker's answers on tasks with a known answer, and how many were right."""

    workforce_id: int
    answers: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.answers if self.answers else float("nan")


def score_workers(rows: Iterable[tuple[int, int, str, str]]) -> dict[int, GoldScore]:
    """Return per worker their gold score from ``(worker, workforce, label, known answer)`` rows."""
    scores: dict[int, GoldScore] = {}
    for worker_id, workforce_id, label, answer in rows:
        score = scores.setdefault(worker_id, GoldScore(workforce_id))
        score.answers += 1
        score.correct += label == answer
    return scores


def below_floor(scores: dict[int, GoldScore], floor: float, min_answers: int) -> list[int]:
    """Return the workers with at least ``min_answers`` gold answers and accuracy below ``floor``."""
    return sorted(worker for worker, score in scores.items()
                  if score.answers >= min_answers and score.accuracy < floor)
