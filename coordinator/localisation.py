"""Choose the language of each response: Accept-Language, then the account's preference."""

from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel

from i18n.locales import TRANSLATIONS_DIR, available_message_locales


def select_locale() -> str:
    """Return the best locale for the current request among the shipped catalogs."""
    available = current_app.extensions["coordinator.message_locales"]
    if not has_request_context():
        return current_app.config["DEFAULT_LOCALE"]
    if request.accept_languages:
        best = request.accept_languages.best_match(
            available + [name.replace("_", "-") for name in available]
        )
        if best:
            return best.replace("-", "_")
    principal = g.get("principal")
    if principal is not None and principal.locale in available:
        return principal.locale
    return current_app.config["DEFAULT_LOCALE"]


def init_app(app: Flask) -> None:
    """Install Flask-Babel with the catalogs under ``i18n/translations``."""
    app.extensions["coordinator.message_locales"] = available_message_locales()
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]
    Babel(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(TRANSLATIONS_DIR),
    )
