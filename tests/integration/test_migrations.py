"""Migrations: they build exactly the models' schema, undo it fully, and stay in one line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool

from coordinator import schema
from coordinator.models import Base
from tests.conftest import (
    create_postgres_database,
    drop_postgres_database,
    postgres_admin_url,
)

VERSIONS = schema.MIGRATIONS_DIR / "versions"
#: The file template the habits ask for: ``YYYY_MM_DD_HHMM-<revision>_<slug>.py``.
DATED_NAME = re.compile(r"^(?P<stamp>\d{4}_\d{2}_\d{2}_\d{4})-(?P<rest>.+)\.py$")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    if not postgres_admin_url():
        pytest.skip("COORDINATOR_TEST_DATABASE_URL is not set")
    url = create_postgres_database("coord_migrations")
    try:
        yield url
    finally:
        drop_postgres_database(url)


def schema_differences(url: str) -> list:
    """Return what Alembic's autogenerate would change to make the database match the models."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    """Return the names of the tables in the database."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def at_head(url: str) -> bool:
    """Return whether the database is at the newest migration."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return schema.is_current(engine)
    finally:
        engine.dispose()


def test_upgrade_builds_exactly_the_models_schema(empty_database):
    schema.upgrade(empty_database)
    assert at_head(empty_database)
    assert schema_differences(empty_database) == []


def test_downgrade_to_base_removes_every_table_and_upgrade_rebuilds_them(empty_database):
    schema.upgrade(empty_database)
    schema.downgrade(empty_database, "base")
    assert table_names(empty_database) <= {"alembic_version"}
    schema.upgrade(empty_database)
    assert table_names(empty_database) == set(Base.metadata.tables) | {"alembic_version"}
    assert at_head(empty_database)
    assert schema_differences(empty_database) == []


def test_migration_file_names_start_with_a_date_and_name_their_revision():
    scripts = {Path(script.path).name: script.revision
               for script in ScriptDirectory(str(schema.MIGRATIONS_DIR)).walk_revisions()}
    on_disk = {path.name for path in VERSIONS.glob("*.py") if path.name != "__init__.py"}
    assert on_disk == set(scripts), "every file in versions/ is a migration Alembic can read"
    for name, revision in scripts.items():
        match = DATED_NAME.match(name)
        assert match, f"{name} does not start with YYYY_MM_DD_HHMM-"
        datetime.strptime(match["stamp"], "%Y_%m_%d_%H%M")  # a real date, not just digits
        assert match["rest"].startswith(f"{revision}_"), f"{name} does not name revision {revision}"


def test_there_is_exactly_one_head():
    heads = ScriptDirectory(str(schema.MIGRATIONS_DIR)).get_heads()
    assert len(heads) == 1, f"merge the branches: heads {heads}"
    assert heads[0] == schema.head_revision()
