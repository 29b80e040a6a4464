"""The flask-smorest Api: OpenAPI document, docs page and problem+json errors."""

from __future__ import annotations

from typing import Any

from flask import Flask, send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path

from coordinator.errors import handle_http_exception

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
PAGINATE = {"page_size": PAGE_SIZE, "max_page_size": MAX_PAGE_SIZE}

API_SETTINGS: dict[str, Any] = {
    "API_TITLE": "Annotation coordinator",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "v1/openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    # Served by us so the docs page works behind firewalls and offline.
    "OPENAPI_SWAGGER_UI_URL": "/api/docs/static/",
    "API_SPEC_OPTIONS": {
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API token"}
            }
        },
        "info": {
            "description": "Coordinates annotation work across vendors, MTurk and languages. "
            "Errors are application/problem+json (RFC 9457)."
        },
    },
}


class CoordinatorApi(Api):
    """An Api whose HTTP errors are problem+json like the rest of the service."""

    def handle_http_exception(self, error: Any) -> Any:  # noqa: D102 - inherited contract
        return handle_http_exception(error)


def _swagger_static(filename: str) -> Any:
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask, blueprints: list[Any]) -> CoordinatorApi:
    """Create the Api on ``app`` and register the service's blueprints on it."""
    for key, value in API_SETTINGS.items():
        app.config.setdefault(key, value)
    api = CoordinatorApi(app)
    app.add_url_rule("/api/docs/static/<path:filename>", "swagger_static", _swagger_static)
    for blueprint in blueprints:
        api.register_blueprint(blueprint, url_prefix=f"/api/v1{blueprint.url_prefix or ''}")
    return api


def page_window(pagination_parameters: Any) -> tuple[int, int]:
    """Return (offset, limit) of the page flask-smorest parsed."""
    size = pagination_parameters.page_size
    return (pagination_parameters.page - 1) * size, size


class Augmented:
    """An object's attributes plus a few more, for a response schema to serialise once."""

    def __init__(self, base: Any, **extra: Any) -> None:
        self._base = base
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        return getattr(self._base, name)
