"""The HTTP contract of accounts and tokens."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.accounts.models import ROLES
from coordinator.fields import LocaleCode


class AccountIn(Schema):
    """A new account."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    workforce_id = fields.Integer(load_default=None, allow_none=True,
                                  metadata={"description": "required for, and only for, vendors"})
    locale = LocaleCode(load_default=None, allow_none=True,
                        metadata={"description": "preferred language of messages"})


class AccountPatch(Schema):
    """Changes to an account."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    role = fields.String(validate=validate.OneOf(ROLES))
    workforce_id = fields.Integer(allow_none=True)
    locale = LocaleCode(allow_none=True)
    active = fields.Boolean(metadata={"description": "false disables every token at once"})


class AccountOut(Schema):
    """An account as the API shows it."""

    id = fields.Integer()
    name = fields.String()
    role = fields.String()
    workforce_id = fields.Integer(allow_none=True)
    locale = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()


class TokenIn(Schema):
    """A token to create."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"description": "what the token is for, e.g. 'nightly sync'"})
    expires_in_days = fields.Integer(load_default=None, allow_none=True,
                                     validate=validate.Range(min=1, max=3650))


class TokenOut(Schema):
    """A token as listed: never its secret."""

    id = fields.Integer()
    account_id = fields.Integer()
    name = fields.String()
    display_prefix = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class IssuedTokenOut(TokenOut):
    """A token just created, with its secret; the only time the secret is shown."""

    secret = fields.String(metadata={"description": "send as 'Authorization: Bearer <secret>'"})


class MeOut(Schema):
    """The caller, as its token resolves."""

    account = fields.Nested(AccountOut)
    token_id = fields.Integer()
