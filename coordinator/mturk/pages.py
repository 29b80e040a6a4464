"""The worker page MTurk frames (the ExternalQuestion URL) and the two calls it makes.

The HIT carries no item data. The page is served with a token signed with the service's
key, bound to MTurk's assignment, worker and HIT ids and valid for a limited time; with it
the page fetches its item and posts the label. No JavaScript framework: a small script
fetches the item, and the label form is plain HTML posted to MTurk once we stored the label.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import get_locale, gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from coordinator import db
from coordinator.errors import Conflict, CoordinatorError, Forbidden, InvalidInput, Unauthenticated
from coordinator.guidelines.services import render
from coordinator.mturk import services
from coordinator.projects.models import Project
from i18n.fallback import text_direction
from i18n.locales import InvalidLocale, normalise_locale
from integrations.mturk.hits import PREVIEW_ASSIGNMENT_ID

pages = Blueprint("mturk_pages", __name__, url_prefix="/mturk", template_folder="templates",
                  static_folder="static", static_url_path="/static")

TOKEN_SALT = "coordinator.mturk.item"


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token(mturk_assignment_id: str, worker_id: str, hit_id: str) -> str:
    """Return a token that lets the page of one assignment fetch its item and post its label."""
    return _signer().dumps({"a": mturk_assignment_id, "w": worker_id, "h": hit_id})


def read_token(token: str) -> dict[str, str]:
    """Return the ids a token was issued for, or refuse an expired or forged one."""
    try:
        return _signer().loads(token, max_age=current_app.config["MTURK_TOKEN_SECONDS"])  # type: ignore[no-any-return]
    except SignatureExpired:
        raise Unauthenticated(gettext("This page has expired; reload it from MTurk.")) from None
    except BadSignature:
        raise Unauthenticated(gettext("This page's token is not valid.")) from None


def _requested_locale(project: Project) -> str:
    """Return the worker's browser language, as a locale the guideline's fallback chain takes."""
    for tag, quality in request.accept_languages:
        if tag == "*" or quality <= 0:
            continue
        try:
            return normalise_locale(tag)
        except InvalidLocale:
            continue
    return project.source_locale


def _page(status: int = 200, **context: Any) -> Response:
    ui_locale = str(get_locale() or current_app.config["DEFAULT_LOCALE"])
    body = render_template("mturk/task.html", ui_locale=ui_locale.replace("_", "-"),
                           ui_direction=text_direction(ui_locale), **context)
    response = Response(body, status=status, mimetype="text/html")
    # MTurk shows the page in a frame on its own site; nowhere else may frame it.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action *; "
        "frame-ancestors https://*.mturk.com https://*.amazon.com 'self'")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.route("/task", methods=["GET"])
def task_page() -> Response:
    """Serve the HIT: a preview, or the guideline, the item and the label form."""
    args = request.args
    hit_id, assignment_id = args.get("hitId", ""), args.get("assignmentId", "")
    worker_id, submit_to = args.get("workerId", ""), args.get("turkSubmitTo", "")
    session = db.session()
    try:
        hit = services.get_hit(session, hit_id)
        project = session.get(Project, hit.project_id)
        assert project is not None
        preview = assignment_id in ("", PREVIEW_ASSIGNMENT_ID)
        token = None
        version_id = None
        if not preview:
            if not worker_id:
                raise InvalidInput(errors={"workerId": [gettext("MTurk did not say who you are.")]})
            bound = services.bind(session, hit, assignment_id, worker_id)
            session.commit()
            token = issue_token(assignment_id, worker_id, hit_id)
            _, _, version_id = services.item_of(session, bound)
        number = _guideline_number(session, hit, version_id)
        guideline = render(session, project.id, number, _requested_locale(project))
    except CoordinatorError as exc:
        session.rollback()
        return _page(exc.status, error=exc.detail or str(exc.title))
    submit_url = submit_to.rstrip("/") + "/mturk/externalSubmit" if submit_to else ""
    return _page(preview=preview, guideline=guideline, classes=project.label_classes,
                 token=token, assignment_id=assignment_id, submit_url=submit_url)


def _guideline_number(session: Any, hit: Any, version_id: int | None) -> int:
    from coordinator.guidelines.models import GuidelineVersion
    from coordinator.mturk.models import MTurkHitType

    if version_id is None:
        version_id = session.get(MTurkHitType, hit.hit_type_pk).guideline_version_id
    return int(session.get(GuidelineVersion, version_id).number)


@pages.route("/item", methods=["GET"])
def item() -> Response:
    """Return the item of the token's assignment."""
    claims = read_token(request.args.get("token", ""))
    session = db.session()
    bound = services.get_bound(session, claims["a"], claims["w"])
    task, project, _ = services.item_of(session, bound)
    return jsonify({"payload": task.payload, "classes": project.label_classes,
                    "assignment_id": claims["a"]})


@pages.route("/labels", methods=["POST"])
def post_label() -> Response:
    """Store the worker's label with us; the page then submits the HIT to MTurk."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput(errors={"body": [gettext("Send a JSON object.")]})
    claims = read_token(str(body.get("token", "")))
    if body.get("assignment_id") != claims["a"]:
        raise Forbidden(gettext("This assignment is not yours."))
    label = body.get("label")
    if not isinstance(label, str) or not label:
        raise InvalidInput(errors={"label": [gettext("Choose a label.")]})
    locale = body.get("locale")
    session = db.session()
    bound = services.get_bound(session, claims["a"], claims["w"])
    result = services.record_label(session, bound, label,
                                   locale if isinstance(locale, str) and locale else None)
    if result["status"] != "created":
        session.rollback()
        code = result["error"]["code"]
        if code == "invalid_label":
            raise InvalidInput(errors={"label": [result["error"]["message"]]})
        raise Conflict(result["error"]["message"], code=code)
    session.commit()
    return jsonify({"label_id": result["label_id"]})
