"""What operators and client authors rely on: probes, request ids, the API document, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from flask import Flask

from coordinator import create_app, db, schema
from coordinator.accounts.models import ROLES
from coordinator.errors import PROBLEM_JSON

API = "/api/v1"
#: Views under /api/v1 that are public on purpose.
PUBLIC_ENDPOINTS = {"api-docs.openapi_json"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _fresh_app(url: str, tmp_path: Path) -> Flask:
    """Create the service on ``url`` without migrating it."""
    return create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test",
                       "INSTANCE_PATH": str(tmp_path / "instance")})


@pytest.fixture
def unmigrated(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    """An app on a new, empty SQLite file, and that file's URL."""
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    application = _fresh_app(url, tmp_path)
    yield application, url
    db.database(application).engine.dispose()


def _api_rules(app: Flask) -> list[Any]:
    """Return the URL rules under /api/v1 except the public ones."""
    return [rule for rule in app.url_map.iter_rules()
            if rule.rule.startswith(API + "/") and rule.endpoint not in PUBLIC_ENDPOINTS]


def _methods(rule: Any) -> list[str]:
    """Return the HTTP methods a rule serves, without the automatic ones."""
    return sorted(set(rule.methods) - IGNORED_METHODS)


def _openapi_path(rule: Any) -> str:
    """Return the OpenAPI form of a Werkzeug rule: <int:id> becomes {id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def _sample_url(rule: Any) -> str:
    """Return a concrete URL matching ``rule``, with 1 for every variable."""
    return re.sub(r"<[^<>]+>", "1", rule.rule)


# --- probes ----------------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok",
                                   "checks": {"database": "ok", "schema": "ok"}}


def test_readyz_is_503_on_an_empty_database_until_migrated(unmigrated):
    app, url = unmigrated
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok",
                              "schema": f"at nothing, need {schema.head_revision()}"}
    assert app.test_client().get("/healthz").status_code == 200  # alive, just not ready
    schema.upgrade(url)
    assert app.test_client().get("/readyz").status_code == 200


def test_readyz_is_503_one_migration_behind(unmigrated):
    app, url = unmigrated
    head = schema.head_revision()
    previous = ScriptDirectory(str(schema.MIGRATIONS_DIR)).get_revision(head).down_revision
    if previous is None:
        pytest.skip("only one migration exists")
    schema.upgrade(url, previous)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["schema"] == f"at {previous}, need {head}"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    app = _fresh_app(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}", tmp_path)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("unreachable")


# --- request ids -----------------------------------------------------------------------------


def _generated(request_id: str) -> bool:
    """Return whether ``request_id`` looks like one the service made up."""
    return re.fullmatch(r"[0-9a-f]{32}", request_id) is not None


def test_every_response_gets_a_fresh_request_id(client):
    for url in ("/healthz", f"{API}/me", f"{API}/no-such-thing", "/api/docs"):
        first = client.get(url).headers["X-Request-ID"]
        second = client.get(url).headers["X-Request-ID"]
        assert _generated(first) and _generated(second), url
        assert first != second


def test_a_safe_request_id_is_echoed(client):
    for incoming in ("abc-123", "lb:7f3a.2_x", "A" * 64):
        response = client.get("/healthz", headers={"X-Request-ID": incoming})
        assert response.headers["X-Request-ID"] == incoming


def test_an_unsafe_request_id_is_replaced(client):
    for incoming in ("has space", "A" * 65, "<script>", "a/b", "é", ""):
        response = client.get("/healthz", headers={"X-Request-ID": incoming})
        assert _generated(response.headers["X-Request-ID"]), incoming


def test_problem_bodies_carry_the_request_id(client):
    unauthenticated = client.get(f"{API}/me", headers={"X-Request-ID": "trace-401"})
    assert unauthenticated.get_json()["request_id"] == "trace-401"
    missing = client.get(f"{API}/nowhere")
    assert missing.get_json()["request_id"] == missing.headers["X-Request-ID"]


# --- the API document and the docs page -----------------------------------------------------


def test_openapi_document_lists_every_api_route(app, client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    paths = response.get_json()["paths"]
    served = {}
    for rule in _api_rules(app):
        served.setdefault(_openapi_path(rule), set()).update(_methods(rule))
    assert set(paths) == set(served)
    for path, methods in served.items():
        assert {method.lower() for method in methods} <= set(paths[path]), path


def test_every_documented_operation_declares_bearer_auth(client):
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            if method != "parameters":
                assert operation.get("security") == [{"bearerAuth": []}], (method, path)


def _view_methods(app: Flask, rule: Any) -> Iterator[tuple[str, Any]]:
    """Yield (method, handler) for every method a rule serves."""
    view = app.view_functions[rule.endpoint]
    view_class = getattr(view, "view_class", None)
    for method in _methods(rule):
        yield method, getattr(view_class, method.lower()) if view_class else view


def test_every_api_view_declares_required_roles(app):
    rules = _api_rules(app)
    assert len(rules) >= 10  # the walk must actually see the API
    for rule in rules:
        for method, handler in _view_methods(app, rule):
            roles = getattr(handler, "required_roles", None)
            assert roles, f"{method} {rule.rule} is not guarded by coordinator.auth.requires"
            assert set(roles) <= set(ROLES), (rule.rule, roles)


def test_every_api_route_refuses_an_anonymous_call(app, client):
    for rule in _api_rules(app):
        for method in _methods(rule):
            response = client.open(_sample_url(rule), method=method, json={})
            assert response.status_code == 401, f"{method} {rule.rule}"


def test_docs_page_uses_local_assets(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "/api/docs/static/swagger-ui-bundle.js" in page
    assert f"{API}/openapi.json" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)


def test_docs_assets_are_served_locally(client):
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = client.get(f"/api/docs/static/{asset}")
        assert response.status_code == 200, asset
        assert len(response.get_data()) > 1000
        response.close()


def test_docs_static_does_not_leave_its_folder(client):
    assert client.get("/api/docs/static/../../../../etc/passwd").status_code == 404


# --- error shapes ----------------------------------------------------------------------------


def test_405_is_problem_json_with_allow(world):
    response = world.delete("manager", f"{API}/projects")
    assert response.status_code == 405 and response.mimetype == PROBLEM_JSON
    assert response.get_json()["status"] == 405
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed and "DELETE" not in allowed


def test_404_is_problem_json(client):
    for url in (f"{API}/no-such-thing", "/no-such-page", f"{API}/projects/x"):
        response = client.get(url)
        assert response.status_code == 404 and response.mimetype == PROBLEM_JSON, url
        body = response.get_json()
        assert (body["status"], body["instance"]) == (404, url)
        assert body["title"]
