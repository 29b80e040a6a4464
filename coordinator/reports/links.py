"""Signed, expiring links that open a report page or CSV download without a bearer token.

A browser cannot send ``Authorization`` headers when an auditor follows a link, so a reader
asks for a link instead: the link carries, signed with the app's ``SECRET_KEY``, the
project, the account that asked, the report's filters and when it expires. Following it
acts for that account, which must still be active and a reader then.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Any

from flask import current_app
from flask_babel import gettext
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from coordinator.accounts.models import Account
from coordinator.errors import Forbidden, Unauthenticated

SALT = "coordinator.reports.link"
#: The report filters a link binds, as the query names them.
FILTERS = ("run_id", "since", "until", "top")


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _canonical(query: dict[str, Any]) -> dict[str, Any]:
    """Return the filters of a parsed report query as plain JSON values."""
    return {key: value.isoformat() if isinstance(value, (date, datetime)) else value
            for key, value in sorted(query.items()) if key in FILTERS and value is not None}


def sign(project_id: int, account_id: int, query: dict[str, Any],
         seconds: int | None = None) -> tuple[str, datetime]:
    """Return a link token for the report of ``query`` and the moment it expires."""
    lifetime = seconds or current_app.config["REPORT_LINK_SECONDS"]
    expires = int(time.time()) + lifetime
    token = _signer().dumps({"p": project_id, "a": account_id, "q": _canonical(query),
                             "e": expires})
    return token, datetime.fromtimestamp(expires, tz=timezone.utc)


def check(session: Session, token: str, project_id: int, query: dict[str, Any]) -> Account:
    """Return the account a valid link acts for, or refuse it.

    Raise Unauthenticated for a forged, altered or expired link; Forbidden for a link to
    another project or other filters, or whose account may no longer read reports.
    """
    from coordinator.auth import READERS

    try:
        claims = _signer().loads(token)
    except BadSignature:
        raise Unauthenticated(gettext(
            "This report link is not valid: it was altered or signed by another server. "
            "Ask for a new link.")) from None
    if not isinstance(claims, dict) or not {"p", "a", "q", "e"} <= claims.keys():
        raise Unauthenticated(gettext("This report link is not valid. Ask for a new link."))
    if claims["e"] <= time.time():
        moment = datetime.fromtimestamp(claims["e"], tz=timezone.utc)
        raise Unauthenticated(gettext("This report link expired at %(moment)s. Ask for a new "
                                      "link.", moment=moment.isoformat(timespec="seconds")))
    if claims["p"] != project_id:
        raise Forbidden(gettext("This report link is for project %(other)s, not project "
                                "%(id)s.", other=claims["p"], id=project_id))
    given = _canonical(query)
    if any(given.get(key) != claims["q"].get(key) for key in given):
        raise Forbidden(gettext("This report link was signed for other filters; remove the "
                                "filters from the address or ask for a new link."))
    account = session.get(Account, claims["a"])
    if account is None or not account.active or account.role not in READERS:
        raise Forbidden(gettext("The account this report link was made for may no longer "
                                "read reports."))
    return account


def filters(token: str) -> dict[str, Any]:
    """Return the filters a checked link binds, as query values."""
    return dict(_signer().loads(token)["q"])
