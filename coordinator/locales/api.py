"""Describe a locale as CLDR knows it: validate codes before using them anywhere else."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from coordinator.auth import EVERYONE, requires
from coordinator.guidelines.services import parse_locale_field
from i18n.fallback import locale_chain, text_direction
from i18n.formatting import plural_categories
from i18n.locales import parse_locale

blp = Blueprint("locales", __name__, url_prefix="/locales",
                description="Locale validation, names, direction and plural rules from CLDR.")


class LocaleOut(Schema):
    """A locale as CLDR describes it."""

    locale = fields.String()
    language = fields.String()
    script = fields.String(allow_none=True)
    territory = fields.String(allow_none=True)
    english_name = fields.String()
    native_name = fields.String()
    direction = fields.String()
    plural_categories = fields.List(fields.String())
    fallback_chain = fields.List(fields.String(),
                                 metadata={"description": "parents tried before a project's source"})


@blp.route("/<code>", methods=["GET"])
@requires(*EVERYONE)
@blp.response(200, LocaleOut)
def describe(code: str) -> Any:
    """Validate a locale code and describe it; junk such as xx_YY is refused with 422."""
    canonical = parse_locale_field(code)
    locale = parse_locale(canonical)
    return {
        "locale": canonical, "language": locale.language, "script": locale.script,
        "territory": locale.territory, "english_name": locale.get_display_name("en"),
        "native_name": locale.get_display_name(locale), "direction": text_direction(canonical),
        "plural_categories": plural_categories(canonical),
        "fallback_chain": list(locale_chain(canonical)),
    }
