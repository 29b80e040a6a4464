"""Write audit events; every service that changes state calls ``record``.

``record`` appends the event to the hash chain at once, in the caller's transaction: on
PostgreSQL it first takes a transaction-scoped advisory lock, so transactions that record
events append one at a time and each reads the tail its predecessor committed (READ
COMMITTED gives every statement a fresh snapshot; the lock is released by the commit or
rollback). The lock is held from the first event to the commit, so services record once
per batch and late in their work. SQLite lets one writer at a time hold its database, and
the unique ``seq`` turns any fork of the chain into an error rather than a silent branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from coordinator.audit import chain
from coordinator.audit.models import AuditEvent
from coordinator.db import utcnow


@dataclass(frozen=True)
class Actor:
    """Who is acting: an account (or none for the system) and the request it came through."""

    account_id: int | None
    request_id: str | None = None

    @classmethod
    def system(cls) -> "Actor":
        return cls(account_id=None)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Return the JSON-safe values of ``fields`` on ``obj``."""
    return {name: _plain(getattr(obj, name)) for name in fields}


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Return ids as sorted ``[first, last]`` runs: a batch's ids, mostly consecutive, in little room."""
    runs: list[list[int]] = []
    for value in sorted(set(ids)):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs


def record(
    session: Session,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event, chained to the last one, for a change the caller will commit."""
    values: dict[str, Any] = {
        "actor_id": actor.account_id,
        "action": action,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "before": _plain(before) if before is not None else None,
        "after": _plain(after) if after is not None else None,
        "request_id": actor.request_id,
    }
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": chain.LOCK_KEY})
    # The time is read once the chain is ours, so occurred_at never goes back along it.
    values["occurred_at"] = utcnow()
    tail = connection.execute(select(AuditEvent.seq, AuditEvent.hash)
                              .order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, prev_hash = (tail[0] + 1, tail[1]) if tail is not None else (1, chain.GENESIS)
    values.update(seq=seq, prev_hash=prev_hash, hash=chain.event_hash(values, prev_hash))
    # A Core insert on the session's connection: the row is in the transaction now, for the
    # next event's tail read, without flushing the caller's half-built objects.
    event_id = connection.execute(insert(AuditEvent.__table__).values(**values)
                                  .returning(AuditEvent.id)).scalar_one()
    return AuditEvent(id=event_id, **values)


def apply_changes(
    session: Session,
    actor: Actor,
    obj: Any,
    changes: dict[str, Any],
    *,
    action: str,
    subject_type: str,
    fields: tuple[str, ...],
) -> None:
    """Set ``changes`` on ``obj`` and record an event when an audited field really changed."""
    before = snapshot(obj, fields)
    for field, value in changes.items():
        setattr(obj, field, value)
    session.flush()
    after = snapshot(obj, fields)
    if after != before:
        record(session, actor, action, subject_type, obj.id, before=before, after=after)


# --- reading and verifying -------------------------------------------------------------------

#: Events read per round trip while verifying.
_VERIFY_BATCH = 10_000
_CHAIN_COLUMNS = (AuditEvent.id, AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash,
                  AuditEvent.occurred_at, AuditEvent.actor_id, AuditEvent.action,
                  AuditEvent.subject_type, AuditEvent.subject_id, AuditEvent.before,
                  AuditEvent.after, AuditEvent.request_id)


def list_events(session: Session, *, offset: int, limit: int, actor_id: int | None = None,
                action: str | None = None, subject_type: str | None = None,
                subject_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None, after_seq: int | None = None
                ) -> tuple[list[AuditEvent], int]:
    """Return one page of events matching every filter given, in chain order, and the total.

    ``action`` ending in ``.*`` matches every action under that prefix (``project.*``);
    ``since`` is inclusive and ``until`` exclusive; ``after_seq`` lists only events appended
    after that one (a reader following the trail asks from the last seq it saw).
    """
    conditions = []
    if after_seq is not None:
        conditions.append(AuditEvent.seq > after_seq)
    if actor_id is not None:
        conditions.append(AuditEvent.actor_id == actor_id)
    if action is not None:
        conditions.append(AuditEvent.action.startswith(action[:-1], autoescape=True)
                          if action.endswith(".*") else AuditEvent.action == action)
    if subject_type is not None:
        conditions.append(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        conditions.append(AuditEvent.subject_id == subject_id)
    if since is not None:
        conditions.append(AuditEvent.occurred_at >= since)
    if until is not None:
        conditions.append(AuditEvent.occurred_at < until)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
    page = session.scalars(select(AuditEvent).where(*conditions).order_by(AuditEvent.seq)
                           .offset(offset).limit(limit))
    return list(page), total or 0


def _chain_rows(session: Session, after: int = 0) -> Iterator[dict[str, Any]]:
    """Yield the chain fields of every event after seq ``after``, in seq order, a batch per query."""
    while True:
        rows = session.execute(select(*_CHAIN_COLUMNS).where(AuditEvent.seq > after)
                               .order_by(AuditEvent.seq).limit(_VERIFY_BATCH)).all()
        for row in rows:
            yield dict(row._mapping)
        if len(rows) < _VERIFY_BATCH:
            return
        after = rows[-1].seq


def _noted(session: Session, seq: int, digest: str) -> chain.Problem | None:
    """Return the problem when the event at ``seq`` is gone or no longer hashes to ``digest``."""
    stored = session.execute(select(AuditEvent.id, AuditEvent.hash)
                             .where(AuditEvent.seq == seq)).first()
    if stored is None:
        return chain.Problem("deleted", seq, 0, f"event {seq}, noted earlier, is missing")
    if stored.hash != digest:
        return chain.Problem("rewritten", seq, stored.id,
                             f"event {seq} (id {stored.id}) no longer has the hash noted "
                             "earlier: the chain was rewritten up to it")
    return None


def verify_chain(session: Session, *, checkpoint: tuple[int, str] | None = None,
                 expect_head: tuple[int, str] | None = None) -> chain.Verdict:
    """Walk the chain and return the first edited, deleted, reordered or rewritten event.

    ``checkpoint`` (a seq and its hash, from an earlier verify) starts the walk after that
    event instead of at the first, once the stored event still has that hash: a reader who
    verified the chain up to it need not walk it again. ``expect_head`` (a head noted
    earlier) must still be in the chain with its hash: a chain recomputed from some event
    on links up again, and only a hash kept outside the database tells it was rewritten.
    """
    def find_seq(digest: str) -> int | None:
        return session.scalar(select(AuditEvent.seq).where(AuditEvent.hash == digest).limit(1))

    start_seq, start_hash = 0, chain.GENESIS
    if checkpoint is not None:
        problem = _noted(session, *checkpoint)
        if problem is not None:
            return chain.Verdict(0, None, None, problem)
        start_seq, start_hash = checkpoint
    verdict = chain.verify(_chain_rows(session, start_seq), find_seq,
                           start=(start_seq + 1, start_hash))
    if verdict.ok and expect_head is not None:
        problem = _noted(session, *expect_head)
        if problem is not None:
            return chain.Verdict(verdict.events, None, None, problem)
    if verdict.ok and checkpoint is not None and verdict.head_seq is None:
        # Nothing after the checkpoint: the head is the checkpoint itself.
        return chain.Verdict(0, start_seq, start_hash, None)
    return verdict


def describe(problem: chain.Problem) -> str:
    """Return a reader's sentence for the first break in the chain."""
    if problem.kind == "edited":
        return gettext("Audit event %(seq)s (id %(id)s) does not match its hash: it was "
                       "edited.", seq=problem.seq, id=problem.event_id)
    if problem.kind == "reordered":
        return gettext("Audit event %(seq)s (id %(id)s) is not chained after the event before "
                       "it: events were reordered.", seq=problem.seq, id=problem.event_id)
    if problem.kind == "rewritten":
        return gettext("Audit event %(seq)s (id %(id)s) no longer has the hash noted earlier: "
                       "the chain was rewritten up to it.", seq=problem.seq, id=problem.event_id)
    if problem.event_id == 0:
        return gettext("Audit event %(seq)s, noted earlier, is missing: events were deleted.",
                       seq=problem.seq)
    return gettext("Audit events before event %(seq)s (id %(id)s) are missing: events were "
                   "deleted.", seq=problem.seq, id=problem.event_id)
