"""The HTTP contract of workforces."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import gettext
from marshmallow import Schema, ValidationError, fields, validate

from coordinator.fields import (
    CountryCode,
    CurrencyCode,
    LocaleCode,
    RegionCode,
    TimezoneName,
    unique_list,
)
from coordinator.localisation import reader_locale
from coordinator.workforces.models import WORKFORCE_KINDS
from i18n.formatting import format_money


def _at_most_four_places(value: Decimal) -> None:
    # Prices are stored with 4 decimals; rounding silently would change what a vendor is paid.
    if value != value.quantize(Decimal("0.0001")):
        raise ValidationError(gettext("Give at most 4 decimal places."))


class WorkforceIn(Schema):
    """A new workforce."""

    kind = fields.String(required=True, validate=validate.OneOf(WORKFORCE_KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    region = RegionCode(required=True, metadata={"example": "eu"})
    countries = unique_list(CountryCode(), minimum=1, maximum=250, required=True,
                            metadata={"example": ["DE", "AT"]})
    languages = unique_list(LocaleCode(), minimum=1, maximum=100, required=True,
                            metadata={"example": ["de", "en"]})
    daily_capacity = fields.Integer(required=True, validate=validate.Range(min=0, max=10_000_000))
    price_per_label = fields.Decimal(
        required=True, as_string=True,
        validate=[validate.Range(min=0, max=100_000), _at_most_four_places],
        metadata={"description": "price of one label in `currency`", "example": "0.0450"},
    )
    currency = CurrencyCode(required=True, metadata={"example": "EUR"})
    timezone = TimezoneName(required=True, metadata={"example": "Europe/Berlin"})
    active = fields.Boolean(load_default=True)


class WorkforcePatch(WorkforceIn):
    """Changes to a workforce; load it with ``partial=True`` so every field is optional."""


class WorkforceOut(Schema):
    """A workforce as the API shows it."""

    id = fields.Integer()
    kind = fields.String()
    name = fields.String()
    region = fields.String()
    countries = fields.List(fields.String())
    languages = fields.List(fields.String())
    daily_capacity = fields.Integer()
    price_per_label = fields.Decimal(places=4, as_string=True)
    currency = fields.String()
    price_per_label_display = fields.Method(
        "_price_display", metadata={"description": "the price written for the reader's locale"})
    timezone = fields.String()
    active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _price_display(self, workforce: Any) -> str:
        return format_money(workforce.price_per_label, workforce.currency, reader_locale())
