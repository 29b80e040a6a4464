"""Fixtures: the app on SQLite and, when COORDINATOR_TEST_DATABASE_URL is set, on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coordinator import create_app, db, schema
from coordinator.accounts import services as accounts
from coordinator.audit import guard
from coordinator.audit.services import Actor
from coordinator.models import Base
from coordinator.workforces import services as workforces

PG_ENV = "COORDINATOR_TEST_DATABASE_URL"


def postgres_admin_url() -> str | None:
    """Return the PostgreSQL URL the suite may create databases through, if any."""
    url = os.environ.get(PG_ENV, "").strip()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url or None


def create_postgres_database(prefix: str) -> str:
    """Create an empty, uniquely named database and return its URL."""
    admin = postgres_admin_url()
    assert admin, f"{PG_ENV} is not set"
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by create_postgres_database, closing other sessions first."""
    admin = postgres_admin_url()
    name = make_url(url).database
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database, once per backend and test process."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
        schema.upgrade(url)
        yield url
        return
    if not postgres_admin_url():
        pytest.skip(f"{PG_ENV} is not set")
    url = create_postgres_database("coord_test")
    try:
        schema.upgrade(url)
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def backend(database_url: str) -> str:
    """The name of the database backend the test runs on."""
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture(autouse=True)
def _skip_postgres_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres_only") and "database_url" in request.fixturenames:
        if request.getfixturevalue("backend") != "postgresql":
            pytest.skip("needs PostgreSQL")


def _empty_tables(app: Flask) -> None:
    engine = db.database(app).engine
    names = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            # SQLite's append-only triggers on audit_events (coordinator.audit.guard) would
            # refuse the DELETE: drop them for it and create them again, in this transaction.
            # PostgreSQL's TRUNCATE fires no row trigger.
            guarded = connection.execute(text(
                "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
            )).first() is not None
            lift, restore = guard.suspend_statements("sqlite") if guarded else ([], [])
            for statement in lift:
                connection.execute(text(statement))
            for name in names:
                connection.execute(text(f"DELETE FROM {name}"))
            for statement in restore:
                connection.execute(text(statement))
            connection.execute(text("DELETE FROM sqlite_sequence")) if _has_sequence(connection) else None


def _has_sequence(connection: Any) -> bool:
    return connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first() is not None


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The service on a clean database."""
    application = create_app({
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BROKER_URL": "",
        "JOBS_IN_PROCESS": "off",  # a test runs the jobs it means to, when it means to
    })
    yield application
    _empty_tables(application)
    db.database(application).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class World:
    """Accounts of every role, two vendor workforces, and helpers to call the API as them."""

    client: FlaskClient
    tokens: dict[str, str] = field(default_factory=dict)
    workforce_ids: dict[str, int] = field(default_factory=dict)
    account_ids: dict[str, int] = field(default_factory=dict)

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def get(self, who: str, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers(who), **kwargs)

    def post(self, who: str, url: str, **kwargs: Any) -> Any:
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        return self.client.post(url, headers=headers, **kwargs)

    def patch(self, who: str, url: str, **kwargs: Any) -> Any:
        return self.client.patch(url, headers=self.headers(who), **kwargs)

    def delete(self, who: str, url: str, **kwargs: Any) -> Any:
        return self.client.delete(url, headers=self.headers(who), **kwargs)


VENDOR_VALUES = {
    "vendor_eu": dict(kind="vendor", name="Vendor EU", region="eu", countries=["DE"],
                      languages=["de", "en"], daily_capacity=1000,
                      price_per_label=Decimal("0.05"), currency="EUR", timezone="Europe/Berlin"),
    "vendor_in": dict(kind="vendor", name="Vendor IN", region="in", countries=["IN"],
                      languages=["hi", "en"], daily_capacity=2000,
                      price_per_label=Decimal("2.00"), currency="INR", timezone="Asia/Kolkata"),
}


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    """An admin, a manager, an auditor and one vendor account for each of two workforces."""
    result = World(client=client)
    actor = Actor.system()
    with app.app_context():
        session = db.session()
        for key, values in VENDOR_VALUES.items():
            result.workforce_ids[key] = workforces.create_workforce(session, actor, **values).id
        for role in ("admin", "manager", "auditor", "vendor_eu", "vendor_in"):
            workforce_id = result.workforce_ids.get(role)
            account = accounts.create_account(
                session, actor, name=f"{role}-account",
                role="vendor" if workforce_id else role, workforce_id=workforce_id)
            result.account_ids[role] = account.id
            result.tokens[role] = accounts.issue_token(session, actor, account.id, name="test").secret
        session.commit()
    return result


PROJECT = {
    "name": "Sentiment",
    "label_classes": ["positive", "negative", "neutral"],
    "source_locale": "en",
    "redundancy": 3,
    "residency_region": "eu",
}


@pytest.fixture
def project_id(world: World) -> int:
    """A project created through the API by the manager."""
    response = world.post("manager", "/api/v1/projects", json=PROJECT)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """Serve the app over a real socket on loopback; yield its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


CHROMIUM_ENV = "COORDINATOR_TEST_CHROMIUM"
#: Flags that keep Chromium off the network it would otherwise call home on.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless system Chromium driven by Playwright (no browser download)."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not executable:
        pytest.fail("browser tests need Chromium: install Debian's `chromium` package or set "
                    f"{CHROMIUM_ENV} to a Chromium executable")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def seeder(app: Flask, world: World, project_id: int) -> Any:
    """Writes tasks, workers, assignments and labels of the project straight through the models."""
    from tests.crowd import Seeder

    return Seeder(app, world, project_id)


@pytest.fixture
def crowd(seeder: Any, project_id: int) -> str:
    """The project with tests.crowd's counted labels, gold on t1-t3, two labels kept aside."""
    from tests.crowd import ASIDE, CROWD, GOLD

    seeder.add(CROWD, gold=GOLD, aside=ASIDE)
    return f"/api/v1/projects/{project_id}"


@pytest.fixture
def run_id(world: World, crowd: str) -> int:
    """A Dawid-Skene consensus run over the crowd, made by the manager."""
    response = world.post("manager", f"{crowd}/consensus", json={})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]
