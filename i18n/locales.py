"""Parse and validate locale identifiers against Babel's CLDR data."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.numbers import get_territory_currencies

TRANSLATIONS_DIR = Path(__file__).parent / "translations"

_SHAPE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")


class InvalidLocale(ValueError):
    """Raised when a string is not a locale CLDR knows."""


@lru_cache(maxsize=1024)
def parse_locale(identifier: str) -> Locale:
    """Return the CLDR locale for ``identifier`` (``pt_BR``, ``pt-BR``, ``zh_Hant_TW``)."""
    text = (identifier or "").strip()
    if not _SHAPE.match(text):
        raise InvalidLocale(identifier)
    try:
        return Locale.parse(text.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        raise InvalidLocale(identifier) from None


def normalise_locale(identifier: str) -> str:
    """Return ``identifier`` in canonical form, e.g. ``pt-br`` -> ``pt_BR``."""
    return str(parse_locale(identifier))


def normalise_language(identifier: str) -> str:
    """Return the language part of a locale, e.g. ``pt_BR`` -> ``pt``."""
    return parse_locale(identifier).language


#: CLDR territory codes that name no country: unknown, unions, groupings, pseudo-locales.
_NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"})


@lru_cache(maxsize=1)
def _territories() -> frozenset[str]:
    return frozenset(
        code for code in Locale("en").territories if code.isalpha() and code not in _NOT_COUNTRIES
    )


def is_country(code: str) -> bool:
    """Return whether ``code`` is an ISO 3166-1 alpha-2 country CLDR knows."""
    return len(code) == 2 and code.upper() in _territories()


@lru_cache(maxsize=1)
def _tender_currencies() -> frozenset[str]:
    today = date.today()
    return frozenset(
        code
        for territory in _territories()
        for code in get_territory_currencies(territory, start_date=today, tender=True)
    )


def is_currency(code: str) -> bool:
    """Return whether ``code`` is an ISO 4217 currency that is legal tender today."""
    return len(code) == 3 and code.upper() in _tender_currencies()


def available_message_locales() -> list[str]:
    """Return the locales the service's own messages are translated into, source first."""
    found = sorted(p.parent.parent.name for p in TRANSLATIONS_DIR.glob("*/LC_MESSAGES/*.po"))
    return ["en", *[name for name in found if name != "en"]]
