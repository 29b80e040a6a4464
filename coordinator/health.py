"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text

from coordinator import db, schema

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> Any:
    """Answer while the process can serve requests."""
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz() -> Any:
    """Answer 200 when the database is reachable and at the newest migration, else 503."""
    engine = db.database().engine
    checks: dict[str, Any] = {}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = schema.current_revision(connection)
        checks["database"] = "ok"
        head = schema.head_revision()
        checks["schema"] = "ok" if current == head else f"at {current or 'nothing'}, need {head}"
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["schema"] = "unknown"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503
