"""Dates, money, numbers and plurals formatted for a reader's locale with CLDR data."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, get_timezone_name
from babel.numbers import format_currency, format_decimal, format_percent

from i18n.locales import parse_locale


def format_deadline(moment: datetime, timezone: str, locale: str, *, length: str = "medium") -> str:
    """Return ``moment`` as a reader in ``timezone`` and ``locale`` expects to see it."""
    if moment.tzinfo is None:
        raise ValueError("deadlines must be timezone-aware")
    zone = ZoneInfo(timezone)
    text = format_datetime(moment, length, tzinfo=zone, locale=parse_locale(locale))
    return f"{text} ({get_timezone_name(zone, width='short', locale=parse_locale(locale))})"


def format_money(amount: Decimal | int | float, currency: str, locale: str) -> str:
    """Return an amount in ``currency`` written the way ``locale`` writes money."""
    return format_currency(Decimal(str(amount)), currency, locale=parse_locale(locale))


def format_number(value: Decimal | int | float, locale: str) -> str:
    """Return a number with the locale's grouping and decimal marks."""
    return format_decimal(value, locale=parse_locale(locale))


def format_ratio(value: float, locale: str, *, digits: int = 1) -> str:
    """Return a 0..1 ratio as a percentage in the locale's style, e.g. 87,5 % in French."""
    rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-(digits + 2)))
    return format_percent(rounded, locale=parse_locale(locale), decimal_quantization=False)


def plural_category(count: int | float, locale: str) -> str:
    """Return the CLDR plural category (zero, one, two, few, many, other) of ``count``."""
    return parse_locale(locale).plural_form(count)


def plural_categories(locale: str) -> list[str]:
    """Return the plural categories ``locale`` distinguishes, in CLDR order."""
    order = ["zero", "one", "two", "few", "many", "other"]
    rules = Locale.parse(str(parse_locale(locale))).plural_form.tags
    return [tag for tag in order if tag in rules or tag == "other"]
