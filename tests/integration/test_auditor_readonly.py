"""The auditor role is read-only everywhere: every state-changing route refuses its token."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from coordinator import db
from coordinator.audit.models import AuditEvent

WRITES = ("post", "put", "patch", "delete")
#: Fewer state-changing routes than this means the walk missed the document's routes.
AT_LEAST = 15


def _placeholder(path: str) -> str:
    """Fill every ``{parameter}`` with an id that may or may not exist: 1."""
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_state_changing_route_refuses_an_auditor(app, world, project_id, client):
    document = client.get("/api/v1/openapi.json").get_json()
    with app.app_context():
        events_before = db.session().scalar(select(func.count()).select_from(AuditEvent))
    walked, open_routes = [], []
    for path, item in document["paths"].items():
        for method in WRITES:
            operation = item.get(method)
            if operation is None:
                continue
            url = _placeholder(path)
            for body in ({}, {"name": "x", "value": "x"}):
                response = client.open(url, method=method.upper(), json=body,
                                       headers=world.headers("auditor"))
                secured = operation.get("security", document.get("security"))
                if secured:
                    assert response.status_code == 403, (method, path, response.get_json())
                    assert response.get_json()["type"] == "urn:coordinator:problem:forbidden"
                else:
                    # A route that does not take tokens (a signed callback) must still refuse.
                    assert response.status_code >= 400, (method, path)
                    open_routes.append((method, path))
            walked.append((method.upper(), path))
    assert len(walked) >= AT_LEAST, walked
    # Every kind of change is in the walk: creating, replacing, changing and deleting.
    assert {m for m, _ in walked} >= {"POST", "PATCH", "DELETE"}
    assert ("POST", "/api/v1/projects") in walked
    with app.app_context():
        events_after = db.session().scalar(select(func.count()).select_from(AuditEvent))
    assert events_after == events_before  # nothing was changed, so nothing was recorded


def test_the_same_routes_are_open_to_whom_they_name(world, project_id):
    # The refusal is about the auditor, not a broken route: a manager changes the project.
    url = f"/api/v1/projects/{project_id}"
    assert world.patch("auditor", url, json={"description": "x"}).status_code == 403
    assert world.patch("manager", url, json={"description": "x"}).status_code == 200
    assert world.get("auditor", url).status_code == 200
