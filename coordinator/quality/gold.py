"""Gold questions: mix them into each workforce's new work, unannounced, at the project's rate.

A project with ``gold_rate`` r > 0 does not route its gold tasks for redundancy. Instead,
each dispatch run tops up every workforce that receives new work there so that, over all of
its assignments on the project, gold makes up share r: with R regular assignments it should
hold ``round(R * r / (1 - r))`` gold ones. A workforce gets each gold task as many times as
it gets each regular task in the same run (three times when it is the only one eligible for
a redundancy of 3; distinct workers are still guaranteed by the label claims), so that how
often a task comes back does not tell gold apart, and a gold task it holds live is not given
to it again; so a gold task may end up with more assignments than the redundancy (it
measures workers; it needs no consensus). Gold assignments take capacity like any other,
take their price and guideline, and a run's assignments are stored in an order drawn from
the operating system's randomness, so neither their order, their ids nor their content (the
lease payload never carries the gold answer) tells a vendor which tasks are gold. When a
workforce has run out of capacity or of eligible gold tasks it gets fewer.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
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
    #: per workforce, how often each multiplicity (times it got one task) occurs in this run
    times: dict[int, Counter[int]] = defaultdict(Counter)
    for _, decision, _ in decisions:
        for workforce_id, count in Counter(decision.chosen).items():
            new[workforce_id] += count
            times[workforce_id][count] += 1
    if not new:
        return []
    regular, on_gold, holds = _held(session, project.id, gold)
    # A subquery, not the ids: a large project's gold would pass PostgreSQL's 65,535 parameters.
    tasks = list(session.execute(
        select(Task.id, Task.external_id, Task.languages)
        .where(Task.project_id == project.id, Task.gold.is_not(None)).order_by(Task.id)))
    given: dict[int, int] = defaultdict(int)  # gold assignments per task, to spread them
    chosen: dict[int, list[int]] = defaultdict(list)
    candidates = {c.id: c for c in router.candidates}
    for workforce_id in sorted(new):
        quota = gold_quota(regular[workforce_id] + new[workforce_id], on_gold[workforce_id],
                           project.gold_rate)
        candidate = candidates[workforce_id]
        # The workforce's usual number of copies of a regular task in this run (the larger
        # one on a tie); each gold task comes that many times, all counted in the quota.
        copies = max(times[workforce_id].items(), key=lambda item: (item[1], item[0]))[0]
        open_tasks = [t for t in tasks if t.id in gold and t.id not in holds[workforce_id]
                      and candidate in router.eligible(t.languages)[1]]
        open_tasks.sort(key=lambda t: (given[t.id], t.id))
        wanted = (quota + copies // 2) // copies
        for task in open_tasks[:min(wanted, candidate.capacity_left // copies)]:
            candidate.capacity_left -= copies
            given[task.id] += 1
            chosen[task.id].extend([workforce_id] * copies)
    return [(task, Decision(group=router.eligible(task.languages)[0], chosen=chosen[task.id],
                            scores={}), len(chosen[task.id]))
            for task in tasks if chosen[task.id]]


def shuffle_rows(rows: list[dict[str, Any]], rng: random.Random | None = None
                 ) -> list[dict[str, Any]]:
    """Return a run's assignment rows in a random order, gold and regular alike.

    Vendors lease in id order and ids follow the insert order; a seed anyone could know (the
    run's id, the task ids) would let a vendor replay the order, so the default draws from
    the operating system.
    """
    shuffled = list(rows)
    (rng or random.SystemRandom()).shuffle(shuffled)
    return shuffled


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
