"""The ``coordinator`` command: serve, migrate, seed and administer the service."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask

from coordinator import create_app, db, jobs, schema
from coordinator.config import ConfigError


def _app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _session() -> Iterator[Any]:
    app = _app()
    with app.app_context():
        yield db.session()


@click.group()
@click.version_option(package_name="annotation-coordinator")
def main() -> None:
    """Coordinate annotation work across vendors, MTurk and languages."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Web processes (gunicorn).")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (and, without a broker, run the background jobs in process)."""
    app = _app()
    _require_current_schema(app)
    click.echo(f"API docs: http://{host}:{port}/api/docs   OpenAPI: "
               f"http://{host}:{port}/api/v1/openapi.json", err=True)
    click.echo(_jobs_line(app), err=True)
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # Windows: no gunicorn, fall back to Werkzeug's threaded server
        jobs.start_ticker(app)
        app.run(host=host, port=port, threaded=True)
        return

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("timeout", 300)  # large imports stream for a while

        def load(self) -> Flask:  # runs in each web process, after the fork
            jobs.start_ticker(app)
            return app

    _Gunicorn().run()


def _require_current_schema(app: Flask) -> None:
    engine = db.database(app).engine
    if not schema.is_current(engine):
        raise click.ClickException(
            "the database is not at the latest migration: run `coordinator db upgrade` first")
    engine.dispose()  # processes fork from this one: none may inherit its connection


def _jobs_line(app: Flask) -> str:
    broker = app.config["BROKER_URL"]
    if broker:
        return (f"Background jobs: on Celery workers through {_safe_broker(broker)} "
                "(run `coordinator worker`)")
    if app.config["JOBS_IN_PROCESS"] == "off":
        return "Background jobs: off in process (run `coordinator jobs run ...` yourself)"
    periods = jobs.sweep_periods(app.config)
    sweeps = ", ".join(f"{name.replace('_', ' ')} every {seconds} s"
                       for name, seconds in periods.items()) or "no sweeps"
    return f"Background jobs: in each web process ({sweeps})"


def _safe_broker(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


@main.command()
@click.option("--queues", default=jobs.DEFAULT_QUEUE, show_default=True,
              help=f"Comma-separated queues to consume; the GPU worker takes "
                   f"`{jobs.TRAINING_QUEUE}` only.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Worker processes.  [default: one per CPU]")
@click.option("--beat/--no-beat", default=True, show_default=True,
              help="Also send the periodic sweeps; with several workers give --no-beat to "
                   "all but one (a duplicate sweep is harmless, only wasted).")
def worker(queues: str, concurrency: int | None, beat: bool) -> None:
    """Run a Celery worker for the configured broker (COORDINATOR_BROKER_URL)."""
    app = _app()
    if not app.config["BROKER_URL"]:
        raise click.ClickException(
            "COORDINATOR_BROKER_URL is not set, so jobs run inside `coordinator serve` and "
            "there is nothing for a worker to do. Set it to a redis:// or amqp:// URL.")
    names = [name.strip() for name in queues.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one queue", param_hint="--queues")
    _require_current_schema(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)  # beat keeps its schedule there
    celery = jobs.celery_app(app)
    click.echo(f"Worker: broker {_safe_broker(app.config['BROKER_URL'])}, queues "
               f"{', '.join(names)}, beat {'on' if beat else 'off'}", err=True)
    argv = ["worker", "--queues", ",".join(names), "--loglevel", app.config["LOG_LEVEL"].upper()]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if beat:
        argv.append("--beat")
    celery.worker_main(argv)


@main.group(name="jobs")
def jobs_group() -> None:
    """Run background jobs by hand (or from cron)."""


@jobs_group.command(name="run")
@click.argument("name", type=click.Choice([name.replace("_", "-") for name in jobs.JOBS]))
def jobs_run(name: str) -> None:
    """Run job NAME once, now, in this process, whatever the broker."""
    app = _app()
    click.echo(f"Running {name} ...", err=True)
    result = jobs.run_job(app, name.replace("-", "_"))
    jobs.jobs(app).in_process.wait()  # the jobs it queued in turn, such as webhook delivery
    click.echo(f"{name}: {result}")


@main.group(name="db")
def db_group() -> None:
    """Migrate the database schema."""


@db_group.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Migrate the database up to the latest (or the given) revision."""
    app = _app()
    schema.upgrade(app.config["DATABASE_URL"], revision)
    click.echo(f"database at {_safe_url(app.config['DATABASE_URL'])} is at {revision}")


@db_group.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (``base`` removes every table)."""
    app = _app()
    schema.downgrade(app.config["DATABASE_URL"], revision)
    click.echo(f"database is at {revision}")


@db_group.command()
def current() -> None:
    """Show the revision the database is at and the latest one."""
    app = _app()
    with db.database(app).engine.connect() as connection:
        click.echo(f"current: {schema.current_revision(connection) or 'none'}   "
                   f"latest: {schema.head_revision()}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command("create-admin")
@click.argument("name")
def create_admin(name: str) -> None:
    """Create an admin account NAME and print its first API token."""
    from coordinator.accounts import services
    from coordinator.audit.services import Actor
    from coordinator.errors import CoordinatorError

    with _session() as session:
        try:
            account = services.create_account(session, Actor.system(), name=name, role="admin")
            issued = services.issue_token(session, Actor.system(), account.id, name="created by CLI")
        except CoordinatorError as exc:
            raise click.ClickException(exc.detail or str(exc)) from None
        session.commit()
    click.echo(f"admin account {name!r} created (id {account.id}). Its token, shown only now:",
               err=True)
    click.echo(issued.secret)


@main.command()
def demo() -> None:
    """Seed a small multilingual project, vendors and accounts, and print tokens to try them."""
    from coordinator.demo import seed_demo

    with _session() as session:
        result = seed_demo(session)
        session.commit()
    state = "created" if result.created else "already there"
    click.echo(f"Demo project {result.project.name!r} (id {result.project.id}): {state}.")
    click.echo(f"Manager token (shown only now):  {result.manager_token}")
    click.echo(f"Vendor token for {result.vendor_name}:  {result.vendor_token}")
    click.echo("Try:  curl -H 'Authorization: Bearer <manager token>' "
               "http://127.0.0.1:8000/api/v1/projects")


@main.group(name="i18n")
def i18n_group() -> None:
    """Extract, update and compile the service's message catalogs (i18n/translations)."""


@i18n_group.command(name="extract")
def i18n_extract() -> None:
    """Write the messages of the code to i18n/translations/messages.pot."""
    from i18n import catalogs

    try:
        path = catalogs.extract()
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"template: {path}")


@i18n_group.command(name="update")
@click.option("--locale", "locales", multiple=True,
              help="Only this locale (repeatable); default: every shipped and existing one.")
def i18n_update(locales: tuple[str, ...]) -> None:
    """Create missing catalogs and make every catalog follow the template."""
    from i18n import catalogs

    try:
        states = catalogs.update(list(locales) or None)
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    for state in states:
        todo = len(state.untranslated) + len(state.fuzzy)
        click.echo(f"{state.locale:8} {'created' if state.created else 'updated'}  "
                   f"{state.messages} messages, {todo} to translate")


@i18n_group.command(name="compile")
@click.option("--locale", "locales", multiple=True,
              help="Only this locale (repeatable); default: every catalog.")
def i18n_compile(locales: tuple[str, ...]) -> None:
    """Compile every catalog (.po) into the .mo file the service reads."""
    from i18n import catalogs

    try:
        written = catalogs.compile(list(locales) or None)
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"compiled {len(written)} catalogs")


if __name__ == "__main__":
    sys.exit(main())
