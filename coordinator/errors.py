"""The service's exceptions and the one ``application/problem+json`` error response."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json, request
from flask_babel import gettext, lazy_gettext
from werkzeug.exceptions import HTTPException

from i18n.validation import translate_messages

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class CoordinatorError(Exception):
    """Base of the errors a caller can act on; raise a subclass, never this."""

    status = 400
    slug = "bad-request"
    title = lazy_gettext("Bad request")

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or str(self.title))
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class InvalidInput(CoordinatorError):
    """Raise when the request is well-formed but a field breaks a rule; list them in errors."""

    status = 422
    slug = "invalid-input"
    title = lazy_gettext("The request has invalid fields")


class Unauthenticated(CoordinatorError):
    """Raise when no valid, unrevoked, unexpired token came with the request."""

    status = 401
    slug = "unauthenticated"
    title = lazy_gettext("Authentication required")

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="coordinator"'})
        super().__init__(detail, **kwargs)


class Forbidden(CoordinatorError):
    """Raise when the caller is known but its role may not do this."""

    status = 403
    slug = "forbidden"
    title = lazy_gettext("Not allowed")


class NotFound(CoordinatorError):
    """Raise when the thing does not exist or lies outside the caller's scope."""

    status = 404
    slug = "not-found"
    title = lazy_gettext("Not found")


class Conflict(CoordinatorError):
    """Raise when the request clashes with the current state (a name taken, a race lost)."""

    status = 409
    slug = "conflict"
    title = lazy_gettext("Conflict with the current state")


class PayloadTooLarge(CoordinatorError):
    """Raise when a body or a batch is larger than the service accepts."""

    status = 413
    slug = "payload-too-large"
    title = lazy_gettext("Request too large")


class UnsupportedMediaType(CoordinatorError):
    """Raise when the body is in a format this endpoint does not read."""

    status = 415
    slug = "unsupported-media-type"
    title = lazy_gettext("Unsupported body format")


_HTTP_TITLES = {
    400: lazy_gettext("Bad request"),
    401: lazy_gettext("Authentication required"),
    403: lazy_gettext("Not allowed"),
    404: lazy_gettext("Not found"),
    405: lazy_gettext("Method not allowed"),
    409: lazy_gettext("Conflict with the current state"),
    413: lazy_gettext("Request too large"),
    415: lazy_gettext("Unsupported body format"),
    422: lazy_gettext("The request has invalid fields"),
    429: lazy_gettext("Too many requests"),
    500: lazy_gettext("Internal error"),
    503: lazy_gettext("Service unavailable"),
}


def problem(
    status: int,
    title: str,
    *,
    slug: str | None = None,
    detail: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build an RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": f"urn:coordinator:problem:{slug}" if slug else "about:blank",
        "title": str(title),
        "status": status,
    }
    if detail:
        body["detail"] = str(detail)
    if errors:
        body["errors"] = errors
    body["instance"] = request.path
    if "request_id" in g:
        body["request_id"] = g.request_id
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers.extend(headers or {})
    return response


def _localised(messages: Any) -> Any:
    """Translate marshmallow's English messages inside a (nested) errors map."""
    return translate_messages(messages, gettext) if messages else messages


def _flatten_webargs(messages: dict[str, Any]) -> dict[str, Any]:
    """Turn webargs' ``{location: {field: msgs}}`` into ``{field: msgs}``, localised."""
    messages = _localised(messages)
    if len(messages) == 1:
        return next(iter(messages.values()))
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        for field, msgs in (fields or {}).items():
            flat[field if location == "json" else f"{location}.{field}"] = msgs
    return flat


def handle_coordinator_error(error: CoordinatorError) -> Response:
    """Render one of our own errors."""
    return problem(
        error.status,
        gettext(str(error.title)),
        slug=error.slug,
        detail=error.detail,
        errors=_localised(error.errors),
        headers=error.headers,
        **error.extra,
    )


def handle_http_exception(error: HTTPException) -> Response:
    """Render Werkzeug's and flask-smorest's HTTP errors, validation errors included."""
    status = error.code or 500
    title = _HTTP_TITLES.get(status, error.name)
    data = getattr(error, "data", None) or {}
    errors = _flatten_webargs(data["messages"]) if "messages" in data else None
    detail = data.get("message")
    if status == 422 and errors:
        detail = detail or gettext("Some fields are missing or invalid; see errors.")
    elif status == 413:
        detail = gettext("The body is larger than this endpoint accepts.")
    elif status >= 500:
        detail = None  # never leak internals
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_headers():
        headers.update({k: v for k, v in error.get_headers() if k.lower() == "allow"})
    return problem(status, gettext(str(title)), detail=detail, errors=errors, headers=headers)


def handle_unexpected(error: Exception) -> Response:
    """Log an unhandled error with its traceback and answer a bare 500."""
    log.exception("unhandled error", exc_info=error)
    return problem(500, gettext(str(_HTTP_TITLES[500])))


def init_app(app: Flask) -> None:
    """Route every error through ``problem``."""
    app.register_error_handler(CoordinatorError, handle_coordinator_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
