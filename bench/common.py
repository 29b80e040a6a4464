"""Scaffolding the PostgreSQL benchmarks share: the scratch database, the app, the server, timing.

The benchmarks run as scripts (``python bench/<name>.py``), which puts this folder on
``sys.path``; they import this module as ``common``.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from flask import Flask
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, make_server

from coordinator import create_app, db, schema
from coordinator.accounts import services as accounts
from coordinator.audit.services import Actor

ADMIN_ENV = "COORDINATOR_BENCH_DATABASE_URL"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Timings:
    """Seconds per repetition of one measurement."""

    name: str
    seconds: list[float] = field(default_factory=list)

    def best(self) -> float:
        """Return the fastest repetition."""
        return min(self.seconds)

    def median(self) -> float:
        """Return the median repetition."""
        return statistics.median(self.seconds)


def make_timings(*pairs: tuple[str, str]) -> dict[str, Timings]:
    """Return empty timings keyed by name, from (key, table name) pairs."""
    return {key: Timings(name) for key, name in pairs}


def expect(condition: bool, message: str) -> None:
    """Raise RuntimeError with ``message`` unless ``condition`` holds."""
    if not condition:
        raise RuntimeError(message)


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Return the seconds ``call`` took and what it returned."""
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


# --- the scratch database --------------------------------------------------------------------


def admin_url() -> str:
    """Return the SQLAlchemy URL the benchmark may create databases through."""
    url = os.environ.get(ADMIN_ENV, "").strip() or DEFAULT_ADMIN_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def admin_execute(statement: str) -> None:
    """Run one statement outside a transaction through the admin URL."""
    engine = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Create and migrate a uniquely named database; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        schema.upgrade(url)
        yield url
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str) -> str:
    """Return a SQLAlchemy PostgreSQL URL as a conninfo string psycopg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def insert_model_row(connection: psycopg.Connection, model: type, values: dict[str, Any]) -> int:
    """Insert one row of ``model``'s table with psycopg and return its id.

    Columns missing from ``values`` get the model's default (a scalar, or a callable such as
    ``utcnow``): loaders write rows with plain SQL, and a column a later stage adds with a
    model default but no server default would otherwise refuse their rows. JSON columns
    take Python values.
    """
    row = dict(values)
    table = model.__table__
    for column in table.columns:
        default = column.default
        if column.name in row or column.primary_key or default is None:
            continue
        if default.is_scalar:
            row[column.name] = default.arg
        elif default.is_callable:
            row[column.name] = default.arg(None)  # SQLAlchemy wraps it to take a context
    unknown = sorted(set(row) - set(table.columns.keys()))
    expect(not unknown, f"{table.name} has no columns {unknown}")
    names = list(row)
    params = [Jsonb(row[name]) if isinstance(table.columns[name].type, JSON) else row[name]
              for name in names]
    statement = (f"INSERT INTO {table.name} ({', '.join(names)}) "
                 f"VALUES ({', '.join(['%s'] * len(names))}) RETURNING id")
    return connection.execute(statement, params).fetchone()[0]


def server_version(conninfo: str) -> str:
    """Return PostgreSQL's version number."""
    with psycopg.connect(conninfo) as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


# --- the app, the server and the client ------------------------------------------------------


@contextmanager
def bench_app(url: str, *, quiet_werkzeug: bool = True) -> Iterator[Flask]:
    """Create the app on ``url`` with a scratch instance folder; dispose of its engine after."""
    with tempfile.TemporaryDirectory() as instance:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "INSTANCE_PATH": instance,
                          "LOG_LEVEL": "warning"})
        if quiet_werkzeug:
            # werkzeug sets its own logger to INFO; its access lines would interleave the table.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            yield app
        finally:
            db.database(app).engine.dispose()


def manager_token(app: Flask) -> str:
    """Create a manager account and return its API token secret."""
    with app.app_context():
        session = db.session()
        actor = Actor.system()
        account = accounts.create_account(session, actor, name="bench-manager", role="manager")
        secret = accounts.issue_token(session, actor, account.id, name="bench").secret
        session.commit()
    return secret


@contextmanager
def serving(app: Flask) -> Iterator[BaseWSGIServer]:
    """Serve ``app`` on a free local port from a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, name="bench-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _slices(body: bytes, size: int) -> Iterator[memoryview]:
    """Yield ``body`` in pieces of ``size`` bytes."""
    view = memoryview(body)
    for start in range(0, len(view), size):
        yield view[start:start + size]


class Client:
    """Calls the API over a real socket with http.client."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def request(self, method: str, path: str, body: Any = None, *, content_type: str =
                "application/json", headers: dict[str, str] | None = None,
                chunk: int | None = None) -> tuple[int, Any, dict[str, str]]:
        """Send one request and return the status, the decoded JSON and the headers."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        sent: Any = data
        length: dict[str, str] = {}
        if chunk and data is not None:
            # Stream the body in pieces of ``chunk`` bytes rather than in one write.
            sent, length = _slices(data, chunk), {"Content-Length": str(len(data))}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
        try:
            connection.request(method, path, body=sent, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": content_type,
                **length, "Accept-Language": "en", **(headers or {})})
            response = connection.getresponse()
            return (response.status, json.loads(response.read() or b"null"),
                    dict(response.getheaders()))
        finally:
            connection.close()

    def call(self, method: str, path: str, body: Any = None, expected: int = 200,
             **kwargs: Any) -> Any:
        """Send one request, check its status and return the decoded JSON."""
        status, document, _ = self.request(method, path, body, **kwargs)
        expect(status == expected, f"{method} {path} answered {status}: {str(document)[:500]}")
        return document


# --- the report ------------------------------------------------------------------------------


def print_timings(timings: dict[str, Timings], count: int, rate: str) -> None:
    """Print the best, median and ``count`` per second of each measurement as a table."""
    width = len(rate) + 2
    print(f"{'measurement':<34}{'best s':>9}{'median s':>10}{rate:>{width}}")
    for item in timings.values():
        print(f"{item.name:<34}{item.best():>9.3f}{item.median():>10.3f}"
              f"{count / item.best():>{width},.0f}")


def print_summary(summary: dict[str, Any], *, ensure_ascii: bool = True) -> None:
    """Print the summary as the final JSON line."""
    print(json.dumps(summary, ensure_ascii=ensure_ascii), flush=True)
