"""The HTTP contract of reports and lineage."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_babel import gettext
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from coordinator.reports.services import DEFAULT_TOP


class DayOrMoment(fields.Field):
    """An ISO 8601 date (``2026-11-23``) or a time with its offset."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date | datetime:
        text = str(value)
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(gettext(
                "Give a date such as 2026-11-23 or a time with its offset such as "
                "2026-11-23T08:00:00+01:00.")) from None
        if moment.tzinfo is None:
            raise ValidationError(gettext("Give the time with its offset, e.g. +00:00."))
        return moment


class ReportQuery(Schema):
    """Which labels and run a report covers."""

    run_id = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "the consensus run (default: the project's newest)"})
    since = DayOrMoment(metadata={"description": "labels submitted from this date or time"})
    until = DayOrMoment(metadata={
        "description": "labels submitted before this time; a date includes that whole day"})
    top = fields.Integer(load_default=DEFAULT_TOP, validate=validate.Range(min=0, max=1000),
                         metadata={"description": "items listed under most disagreement"})

    @validates_schema
    def _range(self, data: dict[str, Any], **_kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None:
            from coordinator.reports.services import day_window

            window = day_window(since, until)
            if window.until <= window.since:
                raise ValidationError(gettext("Give an end after the start."), "until")


class ReportPageQuery(ReportQuery):
    """A report query that may come as a signed link instead of with a token."""

    link = fields.String(validate=validate.Length(max=4000), metadata={
        "description": "a signed link from /report/links; then no bearer token is needed"})


class ReportLinkQuery(ReportQuery):
    """The report a link opens, and how long it lasts."""

    expires_in = fields.Integer(validate=validate.Range(min=60, max=604800), metadata={
        "description": "seconds the links last (default: the REPORT_LINK_SECONDS setting)"})


class ReportLinksOut(Schema):
    """Links that open the report in a browser without a token, until they expire."""

    expires_at = fields.String(metadata={"description": "ISO 8601 time"})
    page = fields.String(metadata={"description": "the HTML report page"})
    csv = fields.Dict(keys=fields.String(), values=fields.String(),
                      metadata={"description": "one CSV download per table"})


class ReportOut(Schema):
    """The whole report; every section names its source: run, label count and fingerprint."""

    project = fields.Dict()
    generated_at = fields.String(metadata={"description": "ISO 8601 time"})
    source = fields.Dict(metadata={"description": "run_id, run_fingerprint, labels, "
                                                  "labels_fingerprint, since, until"})
    run = fields.Dict(allow_none=True)
    agreement = fields.Dict()
    gold_over_time = fields.Dict()
    confusion = fields.Dict()
    cost = fields.Dict()
    disagreement = fields.Dict()
    model = fields.Dict(allow_none=True, metadata={
        "description": "model-versus-crowd figures; null until a training run judged them"})


class LineageOut(Schema):
    """Where one consensus label came from."""

    task = fields.Dict()
    consensus = fields.Dict()
    run = fields.Dict()
    labels = fields.List(fields.Dict(), metadata={
        "description": "every label of the task: worker, workforce, guideline version and "
                       "locale seen, assignment price; in_run: read by the run (from the "
                       "run's label watermark; null for runs made before it was kept)"})
    in_run_checked = fields.Boolean(metadata={
        "description": "whether the labels marked in_run are exactly as many as the run "
                       "counted for the task; false: do not rely on in_run here"})
    training = fields.Dict(allow_none=True, metadata={
        "description": "the training run that judged this label; null while none has"})
