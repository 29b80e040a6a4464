"""Accounts and their API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordinator.accounts.models import Account, ApiToken
from coordinator.audit.services import Actor, apply_changes, record, snapshot
from coordinator.auth import hash_token, new_token_secret
from coordinator.db import utcnow
from coordinator.errors import InvalidInput, NotFound
from coordinator.names import ensure_name_free
from coordinator.workforces.models import Workforce

AUDITED_FIELDS = ("name", "role", "workforce_id", "locale", "active")


@dataclass
class IssuedToken:
    """A token just created: the stored row and the secret, which is never shown again."""

    token: ApiToken
    secret: str


def get_account(session: Session, account_id: int) -> Account:
    """Return the account or raise NotFound."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(gettext("There is no account %(id)s.", id=account_id))
    return account


def list_accounts(session: Session, *, offset: int, limit: int) -> tuple[list[Account], int]:
    """Return one page of accounts by name and the total."""
    total = session.scalar(select(func.count()).select_from(Account)) or 0
    page = session.scalars(select(Account).order_by(Account.name).offset(offset).limit(limit))
    return list(page), total


def _check_role_scope(session: Session, role: str, workforce_id: int | None) -> None:
    if role == "vendor":
        if workforce_id is None:
            raise InvalidInput(errors={"workforce_id": [
                gettext("A vendor account needs the workforce it acts for.")]})
        if session.get(Workforce, workforce_id) is None:
            raise InvalidInput(errors={"workforce_id": [
                gettext("There is no workforce %(id)s.", id=workforce_id)]})
    elif workforce_id is not None:
        raise InvalidInput(errors={"workforce_id": [
            gettext("Only vendor accounts belong to a workforce.")]})


def _ensure_name_free(session: Session, name: str, *, other_than: int | None = None) -> None:
    ensure_name_free(session, Account, name, gettext("An account named %(name)s already exists.", name=name),
                     other_than=other_than)


def create_account(
    session: Session, actor: Actor, *, name: str, role: str,
    workforce_id: int | None = None, locale: str | None = None,
) -> Account:
    """Add an account; a vendor account must name its workforce."""
    _ensure_name_free(session, name)
    _check_role_scope(session, role, workforce_id)
    account = Account(name=name, role=role, workforce_id=workforce_id, locale=locale)
    session.add(account)
    session.flush()
    record(session, actor, "account.create", "account", account.id,
           after=snapshot(account, AUDITED_FIELDS))
    return account


def update_account(session: Session, actor: Actor, account_id: int, changes: dict[str, Any]) -> Account:
    """Apply validated ``changes`` to an account; disabling it stops its tokens at once."""
    account = get_account(session, account_id)
    if "name" in changes:
        _ensure_name_free(session, changes["name"], other_than=account.id)
    role = changes.get("role", account.role)
    workforce_id = changes.get("workforce_id", account.workforce_id if role == "vendor" else None)
    _check_role_scope(session, role, workforce_id)
    apply_changes(session, actor, account, {**changes, "workforce_id": workforce_id},
                  action="account.update", subject_type="account", fields=AUDITED_FIELDS)
    return account


def issue_token(
    session: Session, actor: Actor, account_id: int, *, name: str, expires_in_days: int | None = None
) -> IssuedToken:
    """Create a token for an account and return its secret, which is stored only hashed."""
    account = get_account(session, account_id)
    secret = new_token_secret()
    token = ApiToken(
        account_id=account.id,
        name=name,
        token_hash=hash_token(secret),
        display_prefix=secret[:10],
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    session.flush()
    record(session, actor, "token.create", "api_token", token.id, after={
        "account_id": account.id, "name": name, "display_prefix": token.display_prefix,
        "expires_at": token.expires_at,
    })
    return IssuedToken(token=token, secret=secret)


def list_tokens(
    session: Session, *, offset: int, limit: int, account_id: int | None = None
) -> tuple[list[ApiToken], int]:
    """Return one page of tokens, newest first, optionally of one account."""
    query = select(ApiToken)
    if account_id is not None:
        query = query.where(ApiToken.account_id == account_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(ApiToken.id.desc()).offset(offset).limit(limit))
    return list(page), total


def revoke_token(session: Session, actor: Actor, token_id: int, *, owner: int | None = None) -> ApiToken:
    """Revoke a token; revoking twice is harmless. ``owner`` limits it to one account's tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or (owner is not None and token.account_id != owner):
        raise NotFound(gettext("There is no token %(id)s.", id=token_id))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        record(session, actor, "token.revoke", "api_token", token.id,
               before={"revoked_at": None}, after={"revoked_at": token.revoked_at})
    return token
