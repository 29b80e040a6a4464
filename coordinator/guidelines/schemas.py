"""The HTTP contract of guidelines and their translations."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class GuidelineIn(Schema):
    """A new draft version."""

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    source_markdown = fields.String(
        required=True, validate=validate.Length(min=1, max=500_000),
        metadata={"description": "the guideline in the project's source locale, as Markdown"})


class GuidelinePatch(GuidelineIn):
    """Changes to a draft; load it with ``partial=True``."""


class SegmentOut(Schema):
    """A frozen segment of a published version."""

    position = fields.Integer()
    context = fields.String(metadata={"description": "the PO msgctxt of this segment"})
    kind = fields.String()
    section = fields.String()
    source_text = fields.String()


class GuidelineOut(Schema):
    """A guideline version."""

    id = fields.Integer()
    project_id = fields.Integer()
    number = fields.Integer()
    status = fields.String()
    title = fields.String()
    source_markdown = fields.String()
    source_locale = fields.String()
    content_hash = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)


class GuidelineDetailOut(GuidelineOut):
    """A guideline version with its segments (empty while a draft)."""

    segments = fields.List(fields.Nested(SegmentOut))


class LocaleStatusOut(Schema):
    """How complete one locale's translation is."""

    locale = fields.String()
    direction = fields.String()
    total = fields.Integer(metadata={"description": "segments to translate"})
    translated = fields.Integer()
    fuzzy = fields.Integer(metadata={"description": "carried over from an older text; not shown"})
    missing = fields.Integer()
    percent_complete = fields.Float()
    percent_complete_display = fields.String(
        metadata={"description": "percent_complete formatted for the reader's locale"})


class LocaleQuery(Schema):
    """The locale a reader asks for."""

    locale = fields.String(required=True, metadata={"example": "pt_BR"})


class RenderedOut(Schema):
    """A version as a worker in the requested locale sees it."""

    project_id = fields.Integer()
    version = fields.Integer()
    title = fields.String()
    requested_locale = fields.String()
    served_locale = fields.String()
    fallback = fields.Boolean(metadata={"description": "true when another locale was served"})
    chain = fields.List(fields.String(), metadata={"description": "locales tried, in order"})
    direction = fields.String(metadata={"description": "ltr or rtl"})
    html = fields.String(metadata={"description": "sanitised HTML with lang and dir set"})
