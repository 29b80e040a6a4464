"""Create, change and read projects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, apply_changes, record, snapshot
from coordinator.dispatch.routing import allowed_regions
from coordinator.errors import InvalidInput, NotFound
from coordinator.names import ensure_name_free
from coordinator.projects.models import Project, Task
from coordinator.workforces.models import Workforce

Row = TypeVar("Row")

AUDITED_FIELDS = (
    "name",
    "description",
    "label_classes",
    "source_locale",
    "redundancy",
    "residency_region",
    "allowed_regions",
    "lease_minutes",
    "gold_rate",
    "gold_accuracy_floor",
    "gold_min_answers",
    "target_confidence",
    "max_overlap",
    "review_workforce_id",
)


def get_project(session: Session, project_id: int) -> Project:
    """Return the project or raise NotFound."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(gettext("There is no project %(id)s.", id=project_id))
    return project


def get_project_row(session: Session, model: type[Row], project_id: int, row_id: int,
                    missing: Callable[[], str]) -> Row:
    """Return row ``row_id`` of ``model`` if it belongs to the project, else raise NotFound.

    An unknown project gets the project's own NotFound; ``missing`` words the other case.
    """
    row = session.get(model, row_id)
    if row is None or row.project_id != project_id:
        get_project(session, project_id)
        raise NotFound(missing())
    return row


def list_projects(session: Session, *, offset: int, limit: int) -> tuple[list[Project], int]:
    """Return one page of projects, newest first, and the total count."""
    total = session.scalar(select(func.count()).select_from(Project)) or 0
    page = session.scalars(
        select(Project).order_by(Project.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(page), total


def list_tasks(
    session: Session, project_id: int, *, offset: int, limit: int
) -> tuple[list[Task], int]:
    """Return one page of a project's tasks in import order and the total."""
    get_project(session, project_id)
    total = session.scalar(
        select(func.count()).select_from(Task).where(Task.project_id == project_id)
    ) or 0
    page = session.scalars(
        select(Task).where(Task.project_id == project_id).order_by(Task.id)
        .offset(offset).limit(limit)
    )
    return list(page), total


def _ensure_name_free(session: Session, name: str, *, other_than: int | None = None) -> None:
    ensure_name_free(session, Project, name, gettext("A project named %(name)s already exists.", name=name),
                     other_than=other_than)


def _check_quality_settings(session: Session, values: dict[str, Any]) -> None:
    """Refuse a maximum overlap below the redundancy and an unknown review workforce."""
    errors: dict[str, list[str]] = {}
    max_overlap, redundancy = values.get("max_overlap"), values.get("redundancy")
    if max_overlap is not None and redundancy is not None and max_overlap < redundancy:
        errors["max_overlap"] = [gettext(
            "The maximum overlap (%(max)d) must be at least the redundancy (%(redundancy)d).",
            max=max_overlap, redundancy=redundancy)]
    review = values.get("review_workforce_id")
    workforce = session.get(Workforce, review) if review is not None else None
    if review is not None and workforce is None:
        errors["review_workforce_id"] = [gettext("There is no workforce %(id)s.", id=review)]
    elif workforce is not None and not workforce.active and values.get("review_is_new", True):
        # Only when chosen: a reviewer deactivated later is served nothing until reactivated.
        errors["review_workforce_id"] = [gettext(
            "Workforce %(name)s is not active; it cannot review.", name=workforce.name)]
    regions = values.get("regions")
    if workforce is not None and regions and workforce.region not in regions:
        # Reviewers see the task's payload: the residency rule binds them like any labeller.
        errors["review_workforce_id"] = [gettext(
            "Workforce %(name)s is in region %(region)s, where this project's data may not go.",
            name=workforce.name, region=workforce.region)]
    if errors:
        raise InvalidInput(errors=errors)


def create_project(session: Session, actor: Actor, **values: Any) -> Project:
    """Add a project from validated values."""
    _check_quality_settings(session, {**values, "regions": allowed_regions(
        values.get("residency_region", "global"), values.get("allowed_regions") or [])})
    _ensure_name_free(session, values["name"])
    project = Project(created_by_id=actor.account_id, **values)
    session.add(project)
    session.flush()
    record(session, actor, "project.create", "project", project.id,
           after=snapshot(project, AUDITED_FIELDS))
    return project


def _gold_classes_in_use(session: Session, project_id: int) -> set[str]:
    rows = session.scalars(
        select(Task.gold).where(Task.project_id == project_id, Task.gold.is_not(None)).distinct()
    )
    return set(rows)


def update_project(session: Session, actor: Actor, project_id: int, changes: dict[str, Any]) -> Project:
    """Apply validated ``changes`` to a project; a label class still used as gold stays."""
    project = get_project(session, project_id)
    _check_quality_settings(session, {
        "max_overlap": changes.get("max_overlap", project.max_overlap),
        "redundancy": changes.get("redundancy", project.redundancy),
        "review_workforce_id": changes.get("review_workforce_id", project.review_workforce_id),
        "review_is_new": "review_workforce_id" in changes,
        "regions": allowed_regions(changes.get("residency_region", project.residency_region),
                                   changes.get("allowed_regions", project.allowed_regions))})
    if "name" in changes:
        _ensure_name_free(session, changes["name"], other_than=project.id)
    if "label_classes" in changes:
        dropped = _gold_classes_in_use(session, project.id) - set(changes["label_classes"])
        if dropped:
            raise InvalidInput(
                gettext("Tasks still use these classes as gold answers."),
                errors={"label_classes": [
                    gettext("Cannot remove %(classes)s: tasks use them as gold answers.",
                            classes=", ".join(sorted(dropped)))
                ]},
            )
    apply_changes(session, actor, project, changes, action="project.update",
                  subject_type="project", fields=AUDITED_FIELDS)
    return project
