"""Read a label submission body quickly, keeping marshmallow's answers for anything unusual."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from coordinator.errors import InvalidInput
from coordinator.labels.schemas import SubmitIn
from coordinator.labels.services import MAX_LABELS_PER_REQUEST, Submission

_REQUIRED = frozenset({"assignment_id", "worker_id", "label"})
_ALLOWED = _REQUIRED | {"worker_identity", "locale", "supersedes"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(item: Any) -> bool:
    """Return whether ``item`` is a well-formed label in its most common shape."""
    if not isinstance(item, dict) or not _REQUIRED <= item.keys() <= _ALLOWED:
        return False
    worker, label = item["worker_id"], item["label"]
    identity, locale, supersedes = (item.get("worker_identity"), item.get("locale"),
                                    item.get("supersedes"))
    return (_is_int(item["assignment_id"])
            and isinstance(worker, str) and 1 <= len(worker) <= 200
            and isinstance(label, str) and 1 <= len(label) <= 200
            and (identity is None or (isinstance(identity, str) and 16 <= len(identity) <= 128))
            and (locale is None or isinstance(locale, str))
            and (supersedes is None or _is_int(supersedes)))


def parse_submission(body: Any) -> list[Submission]:
    """Return the submissions in ``body``, or raise InvalidInput with marshmallow's field errors."""
    # A batch of 5,000 labels spends more in marshmallow than in the database; the schema
    # only runs when the fast check finds something it must explain or convert.
    labels = body.get("labels") if isinstance(body, dict) and body.keys() == {"labels"} else None
    if (isinstance(labels, list) and 1 <= len(labels) <= MAX_LABELS_PER_REQUEST
            and all(_plain(item) for item in labels)):
        return [Submission(**item) for item in labels]
    try:
        loaded = SubmitIn().load(body if isinstance(body, dict) else {"_": body})
    except ValidationError as error:
        raise InvalidInput(errors=error.normalized_messages()) from None
    return [Submission(**item) for item in loaded["labels"]]
