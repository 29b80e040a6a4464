"""Create, change and read workforces."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, apply_changes, record, snapshot
from coordinator.errors import NotFound
from coordinator.names import ensure_name_free
from coordinator.workforces.models import Workforce

AUDITED_FIELDS = (
    "kind", "name", "region", "countries", "languages", "daily_capacity",
    "price_per_label", "currency", "timezone", "active",
)


def get_workforce(session: Session, workforce_id: int, *, scope: int | None = None) -> Workforce:
    """Return the workforce, or raise NotFound; ``scope`` hides every other workforce."""
    workforce = session.get(Workforce, workforce_id)
    if workforce is None or (scope is not None and workforce.id != scope):
        raise NotFound(gettext("There is no workforce %(id)s.", id=workforce_id))
    return workforce


def list_workforces(
    session: Session, *, offset: int, limit: int, scope: int | None = None
) -> tuple[list[Workforce], int]:
    """Return one page of workforces by name and the total; ``scope`` limits it to one."""
    query = select(Workforce)
    if scope is not None:
        query = query.where(Workforce.id == scope)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Workforce.name).offset(offset).limit(limit)).all()
    return list(page), total


def _ensure_name_free(session: Session, name: str, *, other_than: int | None = None) -> None:
    ensure_name_free(session, Workforce, name, gettext("A workforce named %(name)s already exists.", name=name),
                     other_than=other_than)


def create_workforce(session: Session, actor: Actor, **values: Any) -> Workforce:
    """Add a workforce from validated values."""
    _ensure_name_free(session, values["name"])
    workforce = Workforce(**values)
    session.add(workforce)
    session.flush()
    record(session, actor, "workforce.create", "workforce", workforce.id,
           after=snapshot(workforce, AUDITED_FIELDS))
    return workforce


def update_workforce(
    session: Session, actor: Actor, workforce_id: int, changes: dict[str, Any]
) -> Workforce:
    """Apply validated ``changes`` to a workforce."""
    workforce = get_workforce(session, workforce_id)
    if "name" in changes:
        _ensure_name_free(session, changes["name"], other_than=workforce.id)
    apply_changes(session, actor, workforce, changes, action="workforce.update",
                  subject_type="workforce", fields=AUDITED_FIELDS)
    return workforce
