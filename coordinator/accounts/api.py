"""HTTP endpoints for accounts, tokens and the caller itself."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from coordinator import db
from coordinator.accounts import services
from coordinator.accounts.schemas import (
    AccountIn,
    AccountOut,
    AccountPatch,
    IssuedTokenOut,
    MeOut,
    TokenIn,
    TokenOut,
)
from coordinator.api import PAGINATE, Augmented, page_window
from coordinator.auth import (
    ADMINS,
    EVERYONE,
    current_actor,
    current_principal,
    requires,
)

blp = Blueprint("accounts", __name__, url_prefix="",
                description="Accounts, their roles and API tokens.")


@blp.route("/me")
@requires(*EVERYONE)
@blp.response(200, MeOut)
def me() -> Any:
    """Show the account the token belongs to."""
    principal = current_principal()
    return {"account": services.get_account(db.session(), principal.account_id),
            "token_id": principal.token_id}


@blp.route("/accounts")
class Accounts(MethodView):
    @requires(*ADMINS)
    @blp.response(200, AccountOut(many=True))
    @blp.paginate(**PAGINATE)
    def get(self, pagination_parameters: Any) -> Any:
        """List accounts by name."""
        offset, limit = page_window(pagination_parameters)
        items, pagination_parameters.item_count = services.list_accounts(
            db.session(), offset=offset, limit=limit)
        return items

    @requires(*ADMINS)
    @blp.arguments(AccountIn)
    @blp.response(201, AccountOut)
    def post(self, values: dict[str, Any]) -> Any:
        """Create an account."""
        account = services.create_account(db.session(), current_actor(), **values)
        db.session().commit()
        return account


@blp.route("/accounts/<int:account_id>")
class AccountItem(MethodView):
    @requires(*ADMINS)
    @blp.response(200, AccountOut)
    def get(self, account_id: int) -> Any:
        """Show an account."""
        return services.get_account(db.session(), account_id)

    @requires(*ADMINS)
    @blp.arguments(AccountPatch)
    @blp.response(200, AccountOut)
    def patch(self, changes: dict[str, Any], account_id: int) -> Any:
        """Change an account's name, role, workforce, locale or whether it is active."""
        account = services.update_account(db.session(), current_actor(), account_id, changes)
        db.session().commit()
        return account


@blp.route("/accounts/<int:account_id>/tokens", methods=["POST"])
@requires(*ADMINS)
@blp.arguments(TokenIn)
@blp.response(201, IssuedTokenOut)
def create_token(values: dict[str, Any], account_id: int) -> Any:
    """Create a token for an account; the response is the only place its secret appears."""
    issued = services.issue_token(db.session(), current_actor(), account_id, **values)
    db.session().commit()
    return Augmented(issued.token, secret=issued.secret)


@blp.route("/tokens", methods=["GET"])
@requires(*EVERYONE)
@blp.response(200, TokenOut(many=True))
@blp.paginate(**PAGINATE)
def list_tokens(pagination_parameters: Any) -> Any:
    """List tokens: an admin sees all, anyone else their own."""
    principal = current_principal()
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_tokens(
        db.session(), offset=offset, limit=limit,
        account_id=None if principal.role == "admin" else principal.account_id)
    return items


@blp.route("/tokens/<int:token_id>", methods=["DELETE"])
@requires("admin", "manager", "vendor")
@blp.response(200, TokenOut)
def revoke_token(token_id: int) -> Any:
    """Revoke a token: an admin any, a manager or vendor their own; auditors only read."""
    principal = current_principal()
    token = services.revoke_token(
        db.session(), current_actor(), token_id,
        owner=None if principal.role == "admin" else principal.account_id)
    db.session().commit()
    return token
