"""The HTTP contract of label submission."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class LabelIn(Schema):
    assignment_id = fields.Integer(required=True)
    worker_id = fields.String(required=True, validate=validate.Length(min=1, max=200),
                              metadata={"description": "your own id for the person who labelled"})
    label = fields.String(required=True, validate=validate.Length(min=1, max=200))
    worker_identity = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=16, max=128),
        metadata={"description": "optional hash identifying the person across vendors"})
    locale = fields.String(load_default=None, allow_none=True,
                           metadata={"description": "guideline locale the worker read, if not "
                                     "the one served with the lease"})
    supersedes = fields.Integer(load_default=None, allow_none=True,
                                metadata={"description": "id of the label this one corrects"})


class SubmitIn(Schema):
    labels = fields.List(fields.Nested(LabelIn), required=True,
                         validate=validate.Length(min=1, max=5000))


class ItemErrorOut(Schema):
    code = fields.String()
    message = fields.String()


class ItemResultOut(Schema):
    index = fields.Integer()
    status = fields.String(metadata={"description": "created or error"})
    label_id = fields.Integer(metadata={"description": "also set for a late label kept aside"})
    supersedes = fields.Integer()
    error = fields.Nested(ItemErrorOut)


class SubmitOut(Schema):
    created = fields.Integer()
    errors = fields.Integer()
    results = fields.List(fields.Nested(ItemResultOut))


class LabelOut(Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    task_id = fields.Integer()
    assignment_id = fields.Integer()
    workforce_id = fields.Integer()
    worker_id = fields.Integer()
    value = fields.String()
    guideline_version_id = fields.Integer()
    guideline_locale = fields.String()
    counted = fields.Boolean()
    set_aside = fields.String(allow_none=True)
    supersedes_id = fields.Integer(allow_none=True)
    submitted_at = fields.DateTime()
