"""Choose the language of each response: Accept-Language, then the account's preference."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale

from i18n.fallback import script_of
from i18n.locales import (
    TRANSLATIONS_DIR,
    InvalidLocale,
    available_message_locales,
    parse_locale,
)


def closest_locale(tags: list[str], available: list[str]) -> str | None:
    """Return the catalog for the first of ``tags`` (best first) that one serves.

    A tag matches a catalog exactly, or else by language and script:
    en-US -> en, pt-PT -> pt_BR, zh-CN -> zh_Hans, but zh-TW (Traditional) -> nothing.
    """
    exact = {name.lower().replace("-", "_"): name for name in available}
    for tag in tags:
        if tag.lower().replace("-", "_") in exact:
            return exact[tag.lower().replace("-", "_")]
        try:
            wanted = parse_locale(tag)
        except InvalidLocale:
            continue
        for name in available:
            offered = parse_locale(name)
            if offered.language == wanted.language and offered.script in (None, script_of(wanted)):
                return name
    return None


def select_locale() -> str:
    """Return the best locale for the current request among the shipped catalogs."""
    available = current_app.extensions["coordinator.message_locales"]
    if not has_request_context():
        return current_app.config["DEFAULT_LOCALE"]
    accepted = [tag for tag, quality in request.accept_languages if tag != "*" and quality > 0]
    principal = g.get("principal")
    preferred = [principal.locale] if principal is not None and principal.locale else []
    return (closest_locale(accepted, available) or closest_locale(preferred, available)
            or current_app.config["DEFAULT_LOCALE"])


def _content_language(response: Response) -> Response:
    """Say which language the response's messages are in, and that it follows Accept-Language."""
    locale = get_locale()
    if locale is not None and "Content-Language" not in response.headers:
        response.headers["Content-Language"] = str(locale).replace("_", "-")
    response.vary.add("Accept-Language")
    return response


def init_app(app: Flask) -> None:
    """Install Flask-Babel with the catalogs under ``i18n/translations``."""
    app.extensions["coordinator.message_locales"] = available_message_locales()
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]
    Babel(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(TRANSLATIONS_DIR),
    )
    app.after_request(_content_language)


def reader_locale() -> str:
    """Return the locale the current response is written in, for formatting numbers and money."""
    locale = get_locale() if has_request_context() else None
    return str(locale) if locale is not None else current_app.config["DEFAULT_LOCALE"]
