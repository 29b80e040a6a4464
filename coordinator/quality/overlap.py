"""Dynamic overlap, the pure part: after a consensus run, what each task needs next.

A task whose consensus confidence reaches the target stops once it has at least the
project's redundancy of counted labels: its assignments not yet leased are cancelled (a
task with fewer labels waits for them, however confident the few are). An uncertain task with fewer than ``max_overlap`` live assignments gets one
more, but only once the work already out for it has come back (none offered or leased), so
running the step twice in a row adds nothing the second time. An uncertain task whose counted
labels reach ``max_overlap`` goes to review. Gold tasks and tasks with a review verdict are
left alone: gold measures workers, and a verdict is final.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskState:
    """What the step knows of one task."""

    task_id: int
    #: posterior of the consensus label in the run
    confidence: float
    #: counted labels the run saw
    labels: int
    #: assignments still counting towards the task, and those of them not yet answered
    live: int
    pending: int
    #: gold tasks and reviewed tasks are not the step's business
    excluded: bool = False


@dataclass
class OverlapPlan:
    """The step's decision for every task of a run."""

    extra: list[int] = field(default_factory=list)
    stop: list[int] = field(default_factory=list)
    review: list[int] = field(default_factory=list)
    #: uncertain tasks still waiting for work already out
    waiting: list[int] = field(default_factory=list)


def plan_overlap(states: Iterable[TaskState], target: float, max_overlap: int,
                 redundancy: int = 1) -> OverlapPlan:
    """Sort tasks into one more label, stop, review, or wait."""
    plan = OverlapPlan()
    for state in states:
        if state.excluded:
            continue
        if state.confidence >= target and state.labels >= redundancy:
            plan.stop.append(state.task_id)
        elif state.confidence >= target:
            plan.waiting.append(state.task_id)  # the redundancy's labels are not all back
        elif state.labels >= max_overlap:
            plan.review.append(state.task_id)
        elif state.pending > 0 or state.live >= max_overlap:
            plan.waiting.append(state.task_id)
        else:
            plan.extra.append(state.task_id)
    return plan
