"""HTTP endpoints for auditors: the audit trail with filters, and the chain's verification."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.audit import services
from coordinator.audit.schemas import (
    AuditEventOut,
    AuditQuery,
    ChainVerdictOut,
    VerifyQuery,
    parse_position,
)
from coordinator.auth import requires

blp = Blueprint("audit", __name__, url_prefix="/audit",
                description="The append-only, hash-chained audit trail.")

#: The trail names every account and vendor; only auditors and admins read it.
AUDIT_READERS = ("admin", "auditor")


@blp.route("/events", methods=["GET"])
@requires(*AUDIT_READERS)
@blp.arguments(AuditQuery, location="query", error_status_code=400)
@blp.response(200, AuditEventOut(many=True))
@blp.paginate(**PAGINATE)
def events(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """List audit events in chain order; a malformed filter is a 400 naming it."""
    query.pop("page", None)
    query.pop("page_size", None)
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_events(
        db.session(), offset=offset, limit=limit, **query)
    return items


@blp.route("/verify", methods=["GET"])
@requires(*AUDIT_READERS)
@blp.arguments(VerifyQuery, location="query", error_status_code=400)
@blp.response(200, ChainVerdictOut)
def verify(query: dict[str, Any]) -> Any:
    """Walk the chain: the first edited, deleted, reordered or rewritten event, or none.

    Without parameters the walk reads every event. ``from_seq`` and ``from_hash`` (a head an
    earlier verify gave) start it after that event; ``expect_head`` (``seq:hash``) checks a
    head noted earlier is still in the chain unchanged.
    """
    checkpoint = ((query["from_seq"], query["from_hash"]) if "from_seq" in query else None)
    expected = parse_position(query["expect_head"]) if "expect_head" in query else None
    verdict = services.verify_chain(db.session(), checkpoint=checkpoint, expect_head=expected)
    problem = None
    if verdict.problem is not None:
        problem = {"kind": verdict.problem.kind, "seq": verdict.problem.seq,
                   "event_id": verdict.problem.event_id,
                   "detail": services.describe(verdict.problem)}
    return {"ok": verdict.ok, "events": verdict.events, "head_seq": verdict.head_seq,
            "head_hash": verdict.head_hash, "problem": problem}
