"""HTTP endpoints for auditors: the report as JSON, CSV and HTML, and a label's lineage."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from flask import Response, request, url_for
from flask_babel import gettext
from flask_smorest import Blueprint

from coordinator import db
from coordinator.auth import READERS, current_principal, requires
from coordinator.consensus.services import get_run
from coordinator.errors import NotFound
from coordinator.projects.services import get_project
from coordinator.reports import lineage as lineage_services
from coordinator.reports import links, rendering, services
from coordinator.reports.schemas import (
    LineageOut,
    ReportLinkQuery,
    ReportLinksOut,
    ReportOut,
    ReportPageQuery,
    ReportQuery,
)

blp = Blueprint("reports", __name__, url_prefix="", template_folder="templates",
                description="Agreement reports for auditors, and the lineage of labels.")

PROJECT = "/projects/<int:project_id>"
F = TypeVar("F", bound=Callable[..., Any])


def _plain(value: Any) -> Any:
    """Return the report with ISO times and decimal strings, as JSON and CSV write them."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _report(query: dict[str, Any], project_id: int) -> dict[str, Any]:
    return services.cached_report(
        db.session(), project_id, run_id=query.get("run_id"), top=query["top"],
        window=services.day_window(query.get("since"), query.get("until")))


def readers_or_link(view: F) -> F:
    """Let readers in with a bearer token, or anyone with a valid signed link (``?link=``).

    With a link (and no Authorization header) the report's filters are the link's; filters
    also given in the address must equal them.
    """
    guarded = requires(*READERS)(view)

    @functools.wraps(guarded)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = request.args.get("link")
        if not token or "Authorization" in request.headers:
            return guarded(*args, **kwargs)
        query = args[0]
        explicit = {key: query.get(key) for key in links.FILTERS if key in request.args}
        links.check(db.session(), token, kwargs["project_id"], explicit)
        signed = ReportQuery().load(links.filters(token))
        return view(signed | {"link": token}, *args[1:], **kwargs)

    return wrapper  # type: ignore[return-value]


def _csv_urls(project_id: int, query: dict[str, Any]) -> dict[str, str]:
    """Return a signed download link per table, so the page's links work in a browser."""
    token = query.get("link") or links.sign(project_id, current_principal().account_id,
                                            query)[0]
    return {name: url_for("reports.report_csv", project_id=project_id, table=name, link=token)
            for name in rendering.TABLES}


@blp.route(PROJECT + "/report", methods=["GET"])
@requires(*READERS)
@blp.arguments(ReportQuery, location="query")
@blp.response(200, ReportOut)
def report(query: dict[str, Any], project_id: int) -> Any:
    """Agreement, gold accuracy, confusion, cost and disagreement, each with its source."""
    return _plain(_report(query, project_id))


@blp.route(PROJECT + "/report/links", methods=["GET"])
@requires(*READERS)
@blp.arguments(ReportLinkQuery, location="query")
@blp.response(200, ReportLinksOut)
def report_links(query: dict[str, Any], project_id: int) -> Any:
    """Signed links that open this report's page and CSV downloads in a browser, no token.

    A link acts for the caller, binds the project and filters and expires (by default after
    ``REPORT_LINK_SECONDS``). Asking for links changes nothing.
    """
    get_project(db.session(), project_id)
    if query.get("run_id") is not None:
        get_run(db.session(), project_id, query["run_id"])
    token, expires = links.sign(project_id, current_principal().account_id, query,
                                query.pop("expires_in", None))
    return {"expires_at": expires.isoformat(), "page": url_for(
        "reports.report_html", project_id=project_id, link=token, _external=True),
            "csv": {name: url_for("reports.report_csv", project_id=project_id, table=name,
                                  link=token, _external=True) for name in rendering.TABLES}}


@blp.route(PROJECT + "/report/<string:table>.csv", methods=["GET"])
@blp.arguments(ReportPageQuery, location="query")
@blp.response(200, content_type="text/csv", description="One table of the report as CSV; "
              "every row names the run and the labels' fingerprint. Takes a bearer token or "
              "a signed link (``link``).")
# Beneath the arguments: the link's check needs the parsed query.
@readers_or_link
def report_csv(query: dict[str, Any], project_id: int, table: str) -> Any:
    """Download one breakdown of the report as CSV."""
    if table not in rendering.TABLES:
        raise NotFound(gettext("There is no report table %(name)s; use one of %(names)s.",
                               name=repr(table)[:80], names=", ".join(rendering.TABLES)))
    text = rendering.to_csv(_report(query, project_id), table)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="project-{project_id}-{table}.csv"'})


@blp.route(PROJECT + "/report.html", methods=["GET"])
@blp.arguments(ReportPageQuery, location="query")
@blp.response(200, content_type="text/html", description="The report as a printable page, "
              "in the reader's language, with charts. Takes a bearer token or a signed link "
              "(``link``).")
# Beneath the arguments: the link's check needs the parsed query.
@readers_or_link
def report_html(query: dict[str, Any], project_id: int) -> Any:
    """Show the report as a page to read or print to PDF."""
    data = _report(query, project_id)
    return Response(rendering.to_html(data, csv_urls=_csv_urls(project_id, query)),
                    mimetype="text/html")


@blp.route(PROJECT + "/consensus/<int:run_id>/tasks/<int:task_id>/lineage", methods=["GET"])
@requires(*READERS)
@blp.response(200, LineageOut)
def lineage(project_id: int, run_id: int, task_id: int) -> Any:
    """Trace a consensus label to its raw labels, workers, workforces, guidelines and run."""
    return _plain(lineage_services.lineage(db.session(), project_id, run_id, task_id))
