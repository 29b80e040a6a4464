"""The hash chain of audit events: their canonical form, their hash, and its verification.

Each event's hash is the SHA-256 of a canonical JSON document holding its content and the
hash of the event before it, so editing, deleting or reordering an event breaks the chain
at that event. ``seq`` numbers the events 1, 2, 3 ... in chain order; it is not hashed (the
links say the order), so a gap in it tells a deletion and a link to another event tells a
reordering apart from an edit.

The canonical form must give the same bytes for an event as it was recorded and as it is
read back from either database, so it writes every number as its shortest exact decimal
(JSONB keeps ``1e+16`` as ``10000000000000000`` and ``1.0`` as ``1.0``; both must hash
alike), object keys as sorted strings, and the time in UTC to the microsecond.

This module imports only the standard library: the migration that chains existing events
uses it too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

#: The hash the first event links to.
GENESIS = "0" * 64
#: Version of the canonical form; it is hashed, so a new form can live beside this one.
FORM = 1
#: The advisory lock (a PostgreSQL bigint key) that serialises appends to the chain.
LOCK_KEY = 0x617564697463686E  # "auditchn"


def _number(value: int | float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(str(value))  # JSON has none; the databases refuse them anyway
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if exact == 0:
        return "0"
    return format(exact.normalize(), "f")


def _canonical(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = sorted((str(key), item) for key, item in value.items())
        return "{" + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{_canonical(item)}"
                              for key, item in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    raise TypeError(f"audit values must be JSON values, not {type(value).__name__}")


def _moment(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite without the column type hands back naive UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event: Mapping[str, Any], prev_hash: str) -> str:
    """Return the SHA-256 of ``event`` (its audited fields) linked to ``prev_hash``."""
    document = {
        "form": FORM, "prev_hash": prev_hash, "occurred_at": _moment(event["occurred_at"]),
        "actor_id": event["actor_id"], "action": event["action"],
        "subject_type": event["subject_type"], "subject_id": event["subject_id"],
        "before": event["before"], "after": event["after"], "request_id": event["request_id"],
    }
    return hashlib.sha256(_canonical(document).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Problem:
    """The first event where the chain breaks, and how."""

    #: ``edited``, ``deleted``, ``reordered`` or ``rewritten`` (a hash noted earlier changed)
    kind: str
    seq: int
    event_id: int
    detail: str


@dataclass(frozen=True)
class Verdict:
    """What a walk along the chain found."""

    events: int
    #: seq and hash of the last event, to note down and compare with later
    head_seq: int | None
    head_hash: str | None
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(rows: Iterable[Mapping[str, Any]],
           find_seq: Callable[[str], int | None] = lambda _hash: None, *,
           start: tuple[int, str] = (1, GENESIS)) -> Verdict:
    """Walk events in ``seq`` order and return the first break, if any.

    Each row holds the audited fields and ``id``, ``seq``, ``prev_hash`` and ``hash``.
    ``find_seq`` returns the seq of the stored event with a hash, or None; it is asked only
    where a link breaks, to tell a reordering (the link points at another stored event)
    from a deletion (it points at none). ``start`` is the seq of the first row and the hash
    it links to: the walk may begin after a checkpoint verified before.
    """
    (expected_seq, prev), count, last = start, 0, None
    for row in rows:
        count += 1
        seq, event_id = row["seq"], row["id"]
        if seq != expected_seq:
            return Verdict(count, None, None, Problem(
                "deleted", seq, event_id,
                f"events {expected_seq}..{seq - 1} are missing before event {seq}"
                if seq > expected_seq + 1 else f"event {expected_seq} is missing before "
                f"event {seq}"))
        if event_hash(row, row["prev_hash"]) != row["hash"]:
            return Verdict(count, None, None, Problem(
                "edited", seq, event_id,
                f"event {seq} (id {event_id}) does not match its hash: it was edited"))
        if row["prev_hash"] != prev:
            after = find_seq(row["prev_hash"])
            if after is None:
                kind = "deleted"
                detail = (f"event {seq} (id {event_id}) links to no stored event: the event "
                          "before it was deleted")
            else:
                kind = "reordered"
                detail = (f"event {seq} (id {event_id}) was chained after event {after}, "
                          f"not after event {seq - 1}: events were reordered")
            return Verdict(count, None, None, Problem(kind, seq, event_id, detail))
        prev, last, expected_seq = row["hash"], seq, seq + 1
    return Verdict(count, last, prev if last is not None else None, None)
