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
    after_seq = fields.Integer(validate=validate.Range(min=0), metadata={
        "description": "only events appended after the event with this seq"})

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

    kind = fields.String(metadata={"description": "edited, deleted, reordered or rewritten"})
    seq = fields.Integer()
    event_id = fields.Integer()
    detail = fields.String()


class ChainVerdictOut(Schema):
    """The result of walking the whole chain."""

    ok = fields.Boolean()
    events = fields.Integer(metadata={"description": "events read before stopping (after the "
                                                     "checkpoint, when one was given)"})
    head_seq = fields.Integer(allow_none=True)
    head_hash = fields.String(allow_none=True, metadata={
        "description": "note it down: a later verify that still ends in it shows nothing "
                       "before it was rewritten"})
    problem = fields.Nested(ChainProblemOut, allow_none=True)


#: A noted chain position: ``seq:hash``, as verify's ``head_seq`` and ``head_hash`` give it.
_POSITION = r"^[1-9][0-9]{0,18}:[0-9a-f]{64}$"


def parse_position(value: str) -> tuple[int, str]:
    """Return the seq and hash of a validated ``seq:hash``."""
    seq, digest = value.split(":")
    return int(seq), digest


class VerifyQuery(Schema):
    """Where to start the walk, and the head the chain must still hold."""

    from_seq = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "a checkpoint: start after this event, verified before; give from_hash "
                       "with it"})
    from_hash = fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$"), metadata={
        "description": "the hash the checkpoint event had when it was verified"})
    expect_head = fields.String(validate=validate.Regexp(_POSITION), metadata={
        "description": "`seq:hash` of a head noted earlier; the chain must still hold it"})

    @pre_load
    def _known(self, data: Any, **_kwargs: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationError({name: [gettext("Unknown parameter.")] for name in unknown})
        return data

    @validates_schema
    def _pair(self, data: dict, **_kwargs: object) -> None:
        if ("from_seq" in data) != ("from_hash" in data):
            missing = "from_hash" if "from_seq" in data else "from_seq"
            raise ValidationError(gettext("Give from_seq and from_hash together."), missing)
