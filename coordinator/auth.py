"""Bearer tokens, roles and scoping of every API call."""

from __future__ import annotations

import copy
import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import g, request
from flask_babel import gettext
from sqlalchemy import select, update

from coordinator import db
from coordinator.accounts.models import Account, ApiToken
from coordinator.audit.services import Actor
from coordinator.errors import Forbidden, Unauthenticated

TOKEN_PREFIX = "cdt_"

#: Who may read the data of projects, tasks and reports.
READERS = ("admin", "manager", "auditor")
#: Who may change projects, tasks and dispatch.
MANAGERS = ("admin", "manager")
ADMINS = ("admin",)
EVERYONE = ("admin", "manager", "vendor", "auditor")

#: Writing ``last_used_at`` on every call would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)

F = TypeVar("F", bound=Callable[..., Any])
#: Methods that change nothing.
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of the current request."""

    account_id: int
    role: str
    workforce_id: int | None
    token_id: int
    locale: str | None

    @property
    def is_vendor(self) -> bool:
        return self.role == "vendor"


def new_token_secret() -> str:
    """Return a fresh token secret with 256 bits of entropy."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> str:
    """Return the stored form of a token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _bearer_secret() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(gettext("Send an API token as 'Authorization: Bearer <token>'."))
    return secret.strip()


def authenticate() -> Principal:
    """Resolve the request's bearer token to a Principal, or raise Unauthenticated."""
    if "principal" in g:
        return g.principal
    secret = _bearer_secret()
    session = db.session()
    row = session.execute(
        select(ApiToken, Account)
        .join(Account, Account.id == ApiToken.account_id)
        .where(ApiToken.token_hash == hash_token(secret))
    ).first()
    now = db.utcnow()
    if row is None:
        raise Unauthenticated(gettext("The API token is not known."))
    token, account = row
    if token.revoked_at is not None:
        raise Unauthenticated(gettext("The API token was revoked."))
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthenticated(gettext("The API token has expired."))
    if not account.active:
        raise Unauthenticated(gettext("The account of this API token is disabled."))
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        _touch(token.id, now)
    g.principal = Principal(account.id, account.role, account.workforce_id, token.id, account.locale)
    return g.principal


def _touch(token_id: int, now: Any) -> None:
    # Its own short transaction: a failed request still counts as a use of the token.
    with db.database().engine.begin() as connection:
        connection.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


def requires(*roles: str) -> Callable[[F], F]:
    """Let a view run only for a valid token whose role is in ``roles``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            # Auditors only read, whatever roles a view lists: checked here, once for all.
            if principal.role not in roles or (
                    principal.role == "auditor" and request.method not in _READ_METHODS):
                raise Forbidden(
                    gettext("The %(role)s role may not do this.", role=principal.role)
                )
            return view(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        doc = copy.deepcopy(getattr(wrapper, "_apidoc", {}))
        doc.setdefault("manual_doc", {}).setdefault("security", [{"bearerAuth": []}])
        wrapper._apidoc = doc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def current_principal() -> Principal:
    """Return the authenticated caller; only valid inside a view guarded by ``requires``."""
    return g.principal


def current_actor() -> Actor:
    """Return the audit Actor for the current request."""
    return Actor(account_id=g.principal.account_id, request_id=g.get("request_id"))
