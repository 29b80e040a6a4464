"""The HTTP contract of the audit trail: filters, events and the chain's verdict."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

#: Query parameters the pagination reads.
_PAGINATION = {"page", "page_size"}


class AuditQuery(Schema):
    """Which events to list; every filter given must match."""

    actor_id = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "the account that made the change"})
    action = fields.String(validate=[validate.Length(min=1, max=64),
                                     validate.Regexp(r"^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$")],
                           metadata={"description": "an action such as `project.create`, or a "
                                                    "prefix such as `project.*`"})
    subject_type = fields.String(validate=validate.Length(min=1, max=32))
    subject_id = fields.String(validate=validate.Length(min=1, max=64))
    since = fields.AwareDateTime(metadata={
        "description": "ISO 8601 time with its offset; events at or after it"})
    until = fields.AwareDateTime(metadata={
        "description": "ISO 8601 time with its offset; events before it"})
    @pre_load
    def _known(self, data: Any, **_kwargs: Any) -> Any:
        # A misspelt filter must not silently list everything; page and page_size belong
        # to the pagination, which reads the same query string.
        unknown = sorted(set(data) - set(self.fields) - _PAGINATION)
        if unknown:
            raise ValidationError({name: [gettext("Unknown filter.")] for name in unknown})
        return data

    @validates_schema
    def _range(self, data: dict, **_kwargs: object) -> None:
        if "since" in data and "until" in data and data["until"] <= data["since"]:
            raise ValidationError(gettext("Give a time later than since."), "until")


class AuditEventOut(Schema):
    """One event and its place in the chain."""

    id = fields.Integer()
    seq = fields.Integer()
    occurred_at = fields.DateTime()
    actor_id = fields.Integer(allow_none=True)
    action = fields.String()
    subject_type = fields.String()
    subject_id = fields.String()
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)
    request_id = fields.String(allow_none=True)
    prev_hash = fields.String()
    hash = fields.String()


class ChainProblemOut(Schema):
    """Where the chain first breaks."""

    kind = fields.String(metadata={"description": "edited, deleted or reordered"})
    seq = fields.Integer()
    event_id = fields.Integer()
    detail = fields.String()


class ChainVerdictOut(Schema):
    """The result of walking the whole chain."""

    ok = fields.Boolean()
    events = fields.Integer(metadata={"description": "events read before stopping"})
    head_seq = fields.Integer(allow_none=True)
    head_hash = fields.String(allow_none=True, metadata={
        "description": "note it down: a later verify that still ends in it shows nothing "
                       "before it was rewritten"})
    problem = fields.Nested(ChainProblemOut, allow_none=True)
