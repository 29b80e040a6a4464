"""Tasks a quality round settled, which ordinary dispatch must not top up again.

A round withdraws the offers of a confident task and records an OverlapStop; a task with a
review item waits for, or has, a verdict. Dispatch counts only live assignments, so without
this list it would hand such a task out again up to the redundancy.
"""

from __future__ import annotations

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from coordinator.quality.models import OverlapStop, ReviewItem


def settled_task_ids(session: Session, project_id: int) -> set[int]:
    """Return the ids of the project's tasks stopped by dynamic overlap or sent to review."""
    return set(session.scalars(union(
        select(OverlapStop.task_id).where(OverlapStop.project_id == project_id),
        select(ReviewItem.task_id).where(ReviewItem.project_id == project_id))))
