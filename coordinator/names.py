"""Unique names: one check shared by every model whose ``name`` must be unique."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.errors import Conflict


def ensure_name_free(session: Session, model: Any, name: str, detail: str, *,
                     other_than: int | None = None) -> None:
    """Raise Conflict with ``detail`` when another ``model`` row already has ``name``."""
    query = select(model.id).where(model.name == name)
    if other_than is not None:
        query = query.where(model.id != other_than)
    if session.scalar(query) is not None:
        raise Conflict(detail, errors={"name": [gettext("This name is taken.")]})
