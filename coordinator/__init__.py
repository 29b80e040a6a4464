"""The annotation coordinator: a Flask service from guidelines to trustworthy labels."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

__all__ = ["create_app"]


def _instance_defaults(app: Flask) -> None:
    instance = Path(app.instance_path)
    if not app.config["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'coordinator.sqlite3'}"
    if not app.config["SECRET_KEY"]:
        key_file = instance / "secret_key"
        if not key_file.exists():
            instance.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(48))
            os.chmod(key_file, 0o600)
        app.config["SECRET_KEY"] = key_file.read_text().strip()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service: settings, database, locale, logging, errors, API, probes."""
    from coordinator import api, errors, jobs, localisation, logs
    from coordinator.accounts.api import blp as accounts_blp
    from coordinator.audit.api import blp as audit_blp
    from coordinator.config import load_settings
    from coordinator.consensus.api import blp as consensus_blp
    from coordinator.db import Database
    from coordinator.dispatch.api import blp as dispatch_blp
    from coordinator.feedback.api import blp as feedback_blp
    from coordinator.guidelines.api import blp as guidelines_blp
    from coordinator.health import blp as health_blp
    from coordinator.labels.api import blp as vendor_blp
    from coordinator.locales.api import blp as locales_blp
    from coordinator.mturk.api import blp as mturk_blp
    from coordinator.mturk.pages import pages as mturk_pages
    from coordinator.projects.api import blp as projects_blp
    from coordinator.quality.api import blp as quality_blp
    from coordinator.quality.api import vendor_blp as vendor_quality_blp
    from coordinator.reports.api import blp as reports_blp
    from coordinator.webhooks.api import blp as webhooks_blp
    from coordinator.workforces.api import blp as workforces_blp

    settings = load_settings(config)
    app = Flask(__name__, instance_path=settings.pop("INSTANCE_PATH") or None)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json.sort_keys = False
    app.json.ensure_ascii = False  # readers in every script get their text, not \u escapes
    _instance_defaults(app)
    if app.config["TRUST_PROXY_HEADERS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    if not app.config.get("TESTING"):
        logs.configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    Database(app.config["DATABASE_URL"]).init_app(app)
    jobs.init_app(app)
    localisation.init_app(app)
    logs.init_app(app)
    errors.init_app(app)
    app.register_blueprint(health_blp)
    app.register_blueprint(mturk_pages)
    api.init_app(app, [projects_blp, guidelines_blp, dispatch_blp, vendor_blp, workforces_blp,
                       accounts_blp, locales_blp, webhooks_blp, consensus_blp,
                       audit_blp, quality_blp, vendor_quality_blp, mturk_blp,
                       reports_blp, feedback_blp])
    return app
