"""The HTTP contract of projects and tasks."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.fields import LocaleCode, RegionCode, unique_list

_name = fields.String(
    required=True,
    validate=validate.Length(min=1, max=200),
    metadata={"description": "unique name of the project"},
)
_classes = unique_list(
    fields.String(validate=validate.Length(min=1, max=200)),
    minimum=2,
    maximum=1000,
    required=True,
    metadata={"description": "the allowed labels; at least two"},
)


class ProjectIn(Schema):
    """A new project."""

    name = _name
    description = fields.String(load_default="", validate=validate.Length(max=20_000))
    label_classes = _classes
    source_locale = LocaleCode(required=True, metadata={"example": "en"})
    redundancy = fields.Integer(
        load_default=3,
        validate=validate.Range(min=1, max=25),
        metadata={"description": "labels wanted per task, from distinct workers"},
    )
    residency_region = RegionCode(
        load_default="global",
        metadata={"description": "region the data must stay in, or global"},
    )
    allowed_regions = unique_list(
        RegionCode(), minimum=0, maximum=50, load_default=list,
        metadata={"description": "workforce regions that may receive the data; empty: only "
                  "the residency region, or any region when it is global"},
    )
    lease_minutes = fields.Integer(
        load_default=60, validate=validate.Range(min=1, max=10080),
        metadata={"description": "how long a vendor holds leased work"},
    )
    gold_rate = fields.Float(
        load_default=0.0, validate=validate.Range(min=0, max=1, max_inclusive=False),
        metadata={"description": "share of each workforce's new work that is gold questions, "
                  "0 to below 1; 0 dispatches gold tasks like any other"},
    )
    gold_accuracy_floor = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=1),
        metadata={"description": "block workers whose gold accuracy falls below this; "
                  "empty: block nobody"},
    )
    gold_min_answers = fields.Integer(
        load_default=10, validate=validate.Range(min=1, max=100_000),
        metadata={"description": "gold answers a worker gives before being judged"},
    )
    target_confidence = fields.Float(
        load_default=0.95, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "posterior at which a task stops collecting labels"},
    )
    max_overlap = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=25),
        metadata={"description": "most labels per task under dynamic overlap, at least the "
                  "redundancy; empty: the redundancy"},
    )
    review_workforce_id = fields.Integer(
        load_default=None, allow_none=True,
        metadata={"description": "the expert workforce that settles review items"},
    )


class ProjectPatch(ProjectIn):
    """Changes to a project; load it with ``partial=True`` so every field is optional."""


class ProjectOut(Schema):
    """A project as the API shows it."""

    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    label_classes = fields.List(fields.String())
    source_locale = fields.String()
    redundancy = fields.Integer()
    residency_region = fields.String()
    allowed_regions = fields.List(fields.String())
    lease_minutes = fields.Integer()
    paused = fields.Boolean()
    gold_rate = fields.Float()
    gold_accuracy_floor = fields.Float(allow_none=True)
    gold_min_answers = fields.Integer()
    target_confidence = fields.Float()
    max_overlap = fields.Integer(allow_none=True)
    review_workforce_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class TaskOut(Schema):
    """A task as the API shows it."""

    id = fields.Integer()
    external_id = fields.String()
    payload = fields.Dict()
    content_hash = fields.String()
    languages = fields.List(fields.String())
    gold = fields.String(allow_none=True)
    created_at = fields.DateTime()


class DuplicateGroupOut(Schema):
    """Tasks whose payloads are byte-for-byte the same."""

    content_hash = fields.String()
    external_ids = fields.List(fields.String())


class ImportResultOut(Schema):
    """What a bulk import did."""

    received = fields.Integer(metadata={"description": "tasks in the body"})
    created = fields.Integer(metadata={"description": "new tasks stored"})
    unchanged = fields.Integer(
        metadata={"description": "tasks already stored with the same content (a retry)"}
    )
    duplicates = fields.List(
        fields.Nested(DuplicateGroupOut),
        metadata={"description": "groups of tasks in the project with identical payloads"},
    )
