"""HTTP endpoints for guideline versions, their PO translations and their rendering."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import Augmented
from coordinator.auth import MANAGERS, READERS, current_actor, requires
from coordinator.guidelines import services
from coordinator.guidelines.schemas import (
    GuidelineDetailOut,
    GuidelineIn,
    GuidelineOut,
    GuidelinePatch,
    LocaleQuery,
    LocaleStatusOut,
    RenderedOut,
)
from coordinator.localisation import reader_locale
from i18n.formatting import format_ratio

blp = Blueprint("guidelines", __name__, url_prefix="/projects/<int:project_id>/guidelines",
                description="Versioned guidelines, PO translations and localised rendering.")

PO_MIMETYPE = "text/x-gettext-translation"
VERSION = "/<int:number>"


def _status_out(status: services.LocaleStatus) -> dict[str, Any]:
    return {
        "locale": status.locale, "direction": status.direction, "total": status.total,
        "translated": status.translated, "fuzzy": status.fuzzy, "missing": status.missing,
        "percent_complete": round(status.ratio_complete * 100, 1),
        "percent_complete_display": format_ratio(status.ratio_complete, reader_locale()),
    }


@blp.route("")
class Guidelines(MethodView):
    @requires(*READERS)
    @blp.response(200, GuidelineOut(many=True))
    def get(self, project_id: int) -> Any:
        """List the versions of a project's guideline, newest first."""
        return services.list_versions(db.session(), project_id)

    @requires(*MANAGERS)
    @blp.arguments(GuidelineIn)
    @blp.response(201, GuidelineOut)
    def post(self, values: dict[str, Any], project_id: int) -> Any:
        """Start the next version as a draft."""
        version = services.create_draft(db.session(), current_actor(), project_id, **values)
        db.session().commit()
        return version


@blp.route(VERSION)
class GuidelineItem(MethodView):
    @requires(*READERS)
    @blp.response(200, GuidelineDetailOut)
    def get(self, project_id: int, number: int) -> Any:
        """Show a version and, once published, its segments."""
        session = db.session()
        version = services.get_version(session, project_id, number)
        return Augmented(version, segments=services.segments_of(session, version))

    @requires(*MANAGERS)
    @blp.arguments(GuidelinePatch(partial=True))
    @blp.response(200, GuidelineOut)
    def patch(self, changes: dict[str, Any], project_id: int, number: int) -> Any:
        """Change a draft; published versions never change."""
        version = services.update_draft(db.session(), current_actor(), project_id, number, changes)
        db.session().commit()
        return version

    @requires(*MANAGERS)
    @blp.response(204)
    def delete(self, project_id: int, number: int) -> None:
        """Throw a draft away."""
        services.delete_draft(db.session(), current_actor(), project_id, number)
        db.session().commit()


@blp.route(VERSION + "/publish", methods=["POST"])
@requires(*MANAGERS)
@blp.response(200, GuidelineOut)
def publish(project_id: int, number: int) -> Any:
    """Freeze a draft; translations of unchanged segments carry over, changed ones turn fuzzy."""
    version = services.publish(db.session(), current_actor(), project_id, number)
    db.session().commit()
    return version


@blp.route(VERSION + "/translations", methods=["GET"])
@requires(*READERS)
@blp.response(200, LocaleStatusOut(many=True))
def translation_status(project_id: int, number: int) -> Any:
    """Report per locale: segments translated, fuzzy, missing and percent complete."""
    return [_status_out(s) for s in services.translation_status(db.session(), project_id, number)]


@blp.route(VERSION + "/translations/<locale>.po", methods=["GET"])
@requires(*MANAGERS)
@blp.response(200, {"type": "string"}, content_type=PO_MIMETYPE)
def export_po(project_id: int, number: int, locale: str) -> Any:
    """Download the PO file for translating a version into a locale."""
    data = services.export_po(db.session(), project_id, number, locale)
    filename = f"guideline-{project_id}-v{number}-{locale}.po"
    return Response(data, mimetype=PO_MIMETYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@blp.route(VERSION + "/translations/<locale>", methods=["PUT"])
@requires(*MANAGERS)
@blp.response(200, LocaleStatusOut)
@blp.doc(requestBody={"required": True, "content": {PO_MIMETYPE: {"schema": {"type": "string"}}}})
def import_po(project_id: int, number: int, locale: str) -> Any:
    """Replace a locale's translation with a filled PO file; a failed import changes nothing."""
    status = services.import_po(db.session(), current_actor(), project_id, number, locale,
                                request.get_data(cache=False))
    db.session().commit()
    return _status_out(status)


@blp.route(VERSION + "/rendered", methods=["GET"])
@requires(*READERS)
@blp.arguments(LocaleQuery, location="query")
@blp.response(200, RenderedOut)
def rendered(query: dict[str, Any], project_id: int, number: int) -> Any:
    """Show a version as a worker in a locale sees it, through the fallback chain."""
    result = services.render(db.session(), project_id, number, query["locale"])
    return {
        "project_id": project_id, "version": number, "title": result.version.title,
        "requested_locale": result.requested_locale, "served_locale": result.served_locale,
        "fallback": result.fallback, "chain": result.chain, "direction": result.direction,
        "html": result.html,
    }
