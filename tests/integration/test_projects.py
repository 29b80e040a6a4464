"""Projects over HTTP: create, list, read, change, the validation errors, and their audit trail."""

from __future__ import annotations

import json
from typing import Any

from coordinator.audit.models import AuditEvent
from coordinator.errors import PROBLEM_JSON
from coordinator.projects.models import Project, Task
from tests.conftest import PROJECT
from tests.helpers import assert_invalid as _assert_invalid
from tests.helpers import audit_events as _audit_events
from tests.helpers import count_rows as _count

URL = "/api/v1/projects"
NDJSON = {"Content-Type": "application/x-ndjson"}


def _project(**changes: Any) -> dict[str, Any]:
    """Return a valid project body with ``changes`` applied (None removes a key)."""
    body = {**PROJECT, **changes}
    return {key: value for key, value in body.items() if value is not None}


def _import(world: Any, project_id: int, *tasks: dict[str, Any]) -> Any:
    """Import ``tasks`` into a project as JSON lines."""
    data = "".join(json.dumps(task) + "\n" for task in tasks).encode()
    return world.post("manager", f"{URL}/{project_id}/tasks/import", data=data, headers=NDJSON)


# --- create, read, list ---------------------------------------------------------------------


def test_create_returns_the_stored_project(world):
    response = world.post("manager", URL, json=_project(source_locale="pt-br"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["source_locale"] == "pt_BR"  # stored in canonical form
    assert body["label_classes"] == PROJECT["label_classes"]
    assert world.get("auditor", f"{URL}/{body['id']}").get_json() == body


def test_create_fills_defaults(world):
    body = _project(redundancy=None, residency_region=None)
    created = world.post("admin", URL, json=body).get_json()
    assert (created["redundancy"], created["residency_region"], created["description"]) == (
        3, "global", "")


def test_get_missing_project_is_404(world):
    response = world.get("manager", f"{URL}/424242")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_JSON


def _create_many(world: Any, count: int) -> list[int]:
    """Create ``count`` projects and return their ids in creation order."""
    ids = []
    for number in range(count):
        response = world.post("manager", URL, json=_project(name=f"Project {number:02d}"))
        assert response.status_code == 201
        ids.append(response.get_json()["id"])
    return ids


def test_list_is_paginated_newest_first(world):
    ids = _create_many(world, 5)
    pages = []
    for page in (1, 2, 3):
        response = world.get("auditor", f"{URL}?page={page}&page_size=2")
        assert response.status_code == 200
        pagination = json.loads(response.headers["X-Pagination"])
        assert pagination["total"] == 5 and pagination["total_pages"] == 3
        assert pagination["page"] == page
        pages.append([item["id"] for item in response.get_json()])
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]


def test_list_defaults_to_one_page_of_everything(world):
    ids = _create_many(world, 3)
    response = world.get("manager", URL)
    assert [item["id"] for item in response.get_json()] == ids[::-1]
    assert json.loads(response.headers["X-Pagination"])["total"] == 3


def test_bad_pagination_is_422(world):
    for query in ("page=0", "page_size=0", "page_size=501", "page=x"):
        _assert_invalid(world.get("manager", f"{URL}?{query}"), query.split("=")[0])


# --- validation ------------------------------------------------------------------------------


INVALID_PROJECTS = [
    ({"label_classes": ["only"]}, "label_classes"),
    ({"label_classes": ["yes", "no", "yes"]}, "label_classes"),
    ({"label_classes": ["yes", ""]}, "label_classes"),
    ({"label_classes": None}, "label_classes"),
    ({"colour": "blue"}, "colour"),
    ({"source_locale": "xx_YY"}, "source_locale"),
    ({"source_locale": "en_US;drop"}, "source_locale"),
    ({"source_locale": None}, "source_locale"),
    ({"redundancy": 0}, "redundancy"),
    ({"redundancy": 26}, "redundancy"),
    ({"redundancy": "three"}, "redundancy"),
    ({"residency_region": "EU West!"}, "residency_region"),
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
]


def test_invalid_project_is_422_naming_the_field(app, world):
    events = _count(app, AuditEvent)
    for changes, field in INVALID_PROJECTS:
        response = world.post("manager", URL, json=_project(**changes))
        assert _assert_invalid(response, field, context=changes)
    # Nothing of any failed request was stored, audit trail included.
    assert (_count(app, Project), _count(app, AuditEvent)) == (0, events)


def test_repeated_classes_are_named_in_the_message(world):
    response = world.post("manager", URL, json=_project(label_classes=["cat", "dog", "cat"]))
    [message] = _assert_invalid(response, "label_classes")
    assert "cat" in message and "dog" not in message


def test_validation_reports_every_bad_field_at_once(world):
    response = world.post("manager", URL, json=_project(redundancy=0, source_locale="xx_YY"))
    assert set(response.get_json()["errors"]) == {"redundancy", "source_locale"}


def test_body_that_is_not_json_is_refused(app, world):
    response = world.post("manager", URL, data="name=x",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code in (415, 422)
    assert response.mimetype == PROBLEM_JSON
    assert _count(app, Project) == 0


def test_duplicate_name_is_409(app, world, project_id):
    response = world.post("manager", URL, json=_project(label_classes=["a", "b"]))
    _assert_invalid(response, "name", status=409)
    assert _count(app, Project) == 1
    assert len(_audit_events(app, "project.create")) == 1


def test_rename_onto_a_taken_name_is_409(world, project_id):
    other = world.post("manager", URL, json=_project(name="Other")).get_json()["id"]
    response = world.patch("manager", f"{URL}/{other}", json={"name": PROJECT["name"]})
    _assert_invalid(response, "name", status=409)


def test_rename_to_its_own_name_is_fine(world, project_id):
    response = world.patch("manager", f"{URL}/{project_id}", json={"name": PROJECT["name"]})
    assert response.status_code == 200


# --- patch ----------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(world, project_id):
    world.patch("manager", f"{URL}/{project_id}", json={"description": "Tweets"})
    response = world.patch("manager", f"{URL}/{project_id}", json={"redundancy": 5})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    # Load defaults of the create schema must not leak into a partial patch.
    assert body["redundancy"] == 5
    assert (body["description"], body["residency_region"]) == ("Tweets", "eu")


INVALID_PATCHES = [
    ({"redundancy": 26}, "redundancy"),
    ({"label_classes": ["one"]}, "label_classes"),
    ({"source_locale": "en_US;drop"}, "source_locale"),
    ({"id": 7}, "id"),
]


def test_invalid_patch_is_422_and_changes_nothing(app, world, project_id):
    before = world.get("manager", f"{URL}/{project_id}").get_json()
    for changes, field in INVALID_PATCHES:
        response = world.patch("manager", f"{URL}/{project_id}", json=changes)
        _assert_invalid(response, field, context=changes)
    assert world.get("manager", f"{URL}/{project_id}").get_json() == before
    assert _audit_events(app, "project.update") == []


def test_patch_of_missing_project_is_404(world):
    assert world.patch("manager", f"{URL}/999999", json={"redundancy": 2}).status_code == 404


def test_removing_a_class_used_as_gold_is_422(app, world, project_id):
    imported = _import(world, project_id, {"external_id": "t1", "payload": {"text": "great"},
                                           "gold": "positive"})
    assert imported.status_code == 200, imported.get_json()
    assert _count(app, Task) == 1
    response = world.patch("manager", f"{URL}/{project_id}",
                           json={"label_classes": ["negative", "neutral"]})
    messages = _assert_invalid(response, "label_classes")
    assert "positive" in messages[0]
    stored = world.get("manager", f"{URL}/{project_id}").get_json()
    assert stored["label_classes"] == PROJECT["label_classes"]


def test_removing_a_class_no_gold_uses_is_fine(world, project_id):
    _import(world, project_id, {"external_id": "t1", "payload": {"text": "x"}, "gold": "positive"})
    response = world.patch("manager", f"{URL}/{project_id}",
                           json={"label_classes": ["positive", "negative"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["label_classes"] == ["positive", "negative"]


def test_auditor_may_read_but_not_patch(world, project_id):
    assert world.get("auditor", f"{URL}/{project_id}").status_code == 200
    assert world.patch("auditor", f"{URL}/{project_id}", json={"redundancy": 2}).status_code == 403


# --- audit trail ----------------------------------------------------------------------------


def test_create_writes_one_audit_event(app, world):
    response = world.post("manager", URL, json=PROJECT)
    project_id = response.get_json()["id"]
    [event] = _audit_events(app, "project.create")
    assert (event.subject_type, event.subject_id) == ("project", str(project_id))
    assert event.actor_id == world.account_ids["manager"]
    assert event.request_id == response.headers["X-Request-ID"]
    assert event.before is None
    assert event.after["name"] == PROJECT["name"]
    assert event.after["label_classes"] == PROJECT["label_classes"]


def test_update_writes_before_and_after(app, world, project_id):
    world.patch("admin", f"{URL}/{project_id}", json={"redundancy": 7, "description": "v2"})
    [event] = _audit_events(app, "project.update")
    assert event.actor_id == world.account_ids["admin"]
    assert (event.before["redundancy"], event.after["redundancy"]) == (3, 7)
    assert (event.before["description"], event.after["description"]) == ("", "v2")
    assert event.before["name"] == event.after["name"] == PROJECT["name"]


def test_patch_that_changes_nothing_writes_no_event(app, world, project_id):
    response = world.patch("manager", f"{URL}/{project_id}", json={"redundancy": 3})
    assert response.status_code == 200
    assert _audit_events(app, "project.update") == []


def test_failed_import_leaves_no_rows(app, world, project_id):
    events = _count(app, AuditEvent)
    response = _import(world, project_id,
                       {"external_id": "ok", "payload": {"text": "fine"}},
                       {"external_id": "bad", "payload": {"text": "x"}, "gold": "sarcastic"})
    assert response.status_code == 422
    assert "gold" in response.get_json()["errors"]["line 2"]
    assert (_count(app, Task), _count(app, AuditEvent)) == (0, events)
