"""Marshmallow fields for the values this domain validates everywhere: locales, countries, money."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from typing import Any

from flask_babel import gettext
from marshmallow import ValidationError, fields

from i18n.locales import InvalidLocale, is_country, is_currency, normalise_locale

_REGION = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


class LocaleCode(fields.String):
    """A CLDR locale such as ``en``, ``pt_BR`` or ``zh_Hant_TW``, returned in canonical form."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_locale(text)
        except InvalidLocale:
            raise ValidationError(
                gettext("%(value)s is not a locale; use a code such as en, pt_BR or sr_Latn.",
                        value=repr(text)[:80])
            ) from None


class CountryCode(fields.String):
    """An ISO 3166-1 alpha-2 country code, returned upper-case."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not is_country(text):
            raise ValidationError(
                gettext("%(value)s is not an ISO 3166 country code such as DE or BR.",
                        value=repr(text)[:80])
            )
        return text


class CurrencyCode(fields.String):
    """An ISO 4217 currency code in use today, returned upper-case."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not is_currency(text):
            raise ValidationError(
                gettext("%(value)s is not a current ISO 4217 currency such as EUR or INR.",
                        value=repr(text)[:80])
            )
        return text


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class TimezoneName(fields.String):
    """An IANA timezone such as ``Europe/Berlin``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if text not in _zones():
            raise ValidationError(
                gettext("%(value)s is not an IANA timezone such as Asia/Kolkata.",
                        value=repr(text)[:80])
            )
        return text


class RegionCode(fields.String):
    """A data-residency region such as ``eu``, ``in`` or ``global``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if not _REGION.match(text):
            raise ValidationError(
                gettext("A region is 2 to 32 lower-case letters, digits or dashes, such as eu.")
            )
        return text


def unique_list(inner: fields.Field, *, minimum: int, maximum: int, **kwargs: Any) -> fields.List:
    """Return a List field that refuses repeated items and sizes outside the bounds."""

    def check(values: list[Any]) -> None:
        if len(values) < minimum:
            raise ValidationError(gettext("Give at least %(n)d items.", n=minimum))
        if len(values) > maximum:
            raise ValidationError(gettext("Give at most %(n)d items.", n=maximum))
        seen: set[Any] = set()
        repeated = [v for v in values if v in seen or seen.add(v)]
        if repeated:
            raise ValidationError(
                gettext("Items must not repeat: %(items)s.", items=", ".join(map(str, repeated)))
            )

    return fields.List(inner, validate=check, **kwargs)
