"""Fallback chains between locales, and text direction, from CLDR data."""

from __future__ import annotations

from functools import lru_cache

from babel import Locale
from babel.core import get_global

from i18n.locales import parse_locale


def _likely_script(identifier: str) -> str | None:
    likely = get_global("likely_subtags")
    language = identifier.split("_")[0]
    expanded = likely.get(identifier) or likely.get(language)
    if not expanded:
        return None
    return Locale.parse(expanded).script


def script_of(locale: Locale) -> str | None:
    """Return the script a locale is written in, explicit or CLDR's likely one."""
    return locale.script or _likely_script(
        "_".join(part for part in (locale.language, locale.territory) if part)
    )


def _parent(identifier: str) -> str | None:
    exceptions = get_global("parent_exceptions")
    if identifier in exceptions:
        parent = exceptions[identifier]
        return None if parent == "root" else parent
    return identifier.rsplit("_", 1)[0] if "_" in identifier else None


@lru_cache(maxsize=4096)
def locale_chain(identifier: str) -> tuple[str, ...]:
    """Return ``identifier`` and its CLDR parents that keep its script: zh_Hant_TW -> zh_Hant."""
    locale = parse_locale(identifier)
    script = script_of(locale)
    chain = [str(locale)]
    parent = _parent(str(locale))
    while parent:
        # sr_Latn must never fall back to sr (Cyrillic), nor zh_Hant to zh (Simplified).
        if script_of(parse_locale(parent)) == script:
            chain.append(parent)
        parent = _parent(parent)
    return tuple(chain)


def fallback_chain(requested: str, source: str) -> list[str]:
    """Return the locales to try for ``requested``, ending with the project's ``source``."""
    chain = list(locale_chain(requested))
    source = str(parse_locale(source))
    if source not in chain:
        chain.append(source)
    return chain


def text_direction(identifier: str) -> str:
    """Return ``rtl`` or ``ltr`` for a locale."""
    return parse_locale(identifier).text_direction
