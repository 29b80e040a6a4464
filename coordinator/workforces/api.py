"""HTTP endpoints for workforces; a vendor sees only its own."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.auth import (
    EVERYONE,
    MANAGERS,
    current_actor,
    current_principal,
    requires,
)
from coordinator.workforces import services
from coordinator.workforces.schemas import WorkforceIn, WorkforceOut, WorkforcePatch

blp = Blueprint("workforces", __name__, url_prefix="/workforces",
                description="Regional vendors and the MTurk crowd.")


def _scope() -> int | None:
    principal = current_principal()
    return principal.workforce_id if principal.is_vendor else None


@blp.route("")
class Workforces(MethodView):
    @requires(*EVERYONE)
    @blp.response(200, WorkforceOut(many=True))
    @blp.paginate(**PAGINATE)
    def get(self, pagination_parameters: Any) -> Any:
        """List workforces by name (a vendor sees only its own)."""
        offset, limit = page_window(pagination_parameters)
        items, pagination_parameters.item_count = services.list_workforces(
            db.session(), offset=offset, limit=limit, scope=_scope())
        return items

    @requires(*MANAGERS)
    @blp.arguments(WorkforceIn)
    @blp.response(201, WorkforceOut)
    def post(self, values: dict[str, Any]) -> Any:
        """Create a workforce."""
        workforce = services.create_workforce(db.session(), current_actor(), **values)
        db.session().commit()
        return workforce


@blp.route("/<int:workforce_id>")
class WorkforceItem(MethodView):
    @requires(*EVERYONE)
    @blp.response(200, WorkforceOut)
    def get(self, workforce_id: int) -> Any:
        """Show a workforce."""
        return services.get_workforce(db.session(), workforce_id, scope=_scope())

    @requires(*MANAGERS)
    @blp.arguments(WorkforcePatch(partial=True))
    @blp.response(200, WorkforceOut)
    def patch(self, changes: dict[str, Any], workforce_id: int) -> Any:
        """Change some fields of a workforce."""
        workforce = services.update_workforce(db.session(), current_actor(), workforce_id, changes)
        db.session().commit()
        return workforce
