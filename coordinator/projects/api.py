"""HTTP endpoints for projects and their tasks."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_babel import gettext
from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.auth import MANAGERS, READERS, current_actor, requires
from coordinator.errors import UnsupportedMediaType
from coordinator.projects import imports, services
from coordinator.projects.schemas import (
    ImportResultOut,
    ProjectIn,
    ProjectOut,
    ProjectPatch,
    TaskOut,
)

blp = Blueprint("projects", __name__, url_prefix="/projects",
                description="Projects: label schema, locale, redundancy, residency; and their tasks.")


@blp.route("")
class Projects(MethodView):
    @requires(*READERS)
    @blp.response(200, ProjectOut(many=True))
    @blp.paginate(**PAGINATE)
    def get(self, pagination_parameters: Any) -> Any:
        """List projects, newest first."""
        offset, limit = page_window(pagination_parameters)
        items, pagination_parameters.item_count = services.list_projects(
            db.session(), offset=offset, limit=limit)
        return items

    @requires(*MANAGERS)
    @blp.arguments(ProjectIn)
    @blp.response(201, ProjectOut)
    def post(self, values: dict[str, Any]) -> Any:
        """Create a project."""
        project = services.create_project(db.session(), current_actor(), **values)
        db.session().commit()
        return project


@blp.route("/<int:project_id>")
class ProjectItem(MethodView):
    @requires(*READERS)
    @blp.response(200, ProjectOut)
    def get(self, project_id: int) -> Any:
        """Show a project."""
        return services.get_project(db.session(), project_id)

    @requires(*MANAGERS)
    @blp.arguments(ProjectPatch(partial=True))
    @blp.response(200, ProjectOut)
    def patch(self, changes: dict[str, Any], project_id: int) -> Any:
        """Change some fields of a project."""
        project = services.update_project(db.session(), current_actor(), project_id, changes)
        db.session().commit()
        return project


@blp.route("/<int:project_id>/tasks")
class ProjectTasks(MethodView):
    @requires(*READERS)
    @blp.response(200, TaskOut(many=True))
    @blp.paginate(**PAGINATE)
    def get(self, project_id: int, pagination_parameters: Any) -> Any:
        """List a project's tasks in import order."""
        offset, limit = page_window(pagination_parameters)
        items, pagination_parameters.item_count = services.list_tasks(
            db.session(), project_id, offset=offset, limit=limit)
        return items


_IMPORT_BODY = {
    "required": True,
    "description": "One task per line (JSON lines) or per row (CSV with a header). "
    "JSON-lines keys: external_id, payload, languages, gold. CSV columns: external_id, "
    "text, media_url, payload (a JSON object), languages (separated by spaces or ;), gold.",
    "content": {
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}


@blp.route("/<int:project_id>/tasks/import", methods=["POST"])
@requires(*MANAGERS)
@blp.response(200, ImportResultOut)
@blp.doc(requestBody=_IMPORT_BODY)
def import_tasks(project_id: int) -> Any:
    """Import tasks in bulk; all or nothing, idempotent on external_id."""
    content_type = request.mimetype
    if content_type not in imports.JSONL_TYPES | imports.CSV_TYPES:
        raise UnsupportedMediaType(gettext(
            "Send the tasks as application/x-ndjson or text/csv, not %(type)s.",
            type=content_type or "nothing"))
    request.max_content_length = current_app.config["IMPORT_MAX_BYTES"]
    session = db.session()
    project = services.get_project(session, project_id)
    rows = imports.read_tasks(request.stream, content_type, project,
                              current_app.config["IMPORT_MAX_TASKS"])
    result = imports.store_tasks(session, current_actor(), project.id, rows,
                                 source_format="csv" if content_type == "text/csv" else "jsonl")
    session.commit()
    return result
