"""The declarative base, column types shared by every model, and session handling."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Surrogate keys: 64-bit on PostgreSQL, SQLite's rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: JSON documents: JSONB on PostgreSQL so they can be indexed and compared.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Base of every model; constraint names follow NAMING_CONVENTION."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def unnest(table: Table, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Any:
    """Return ``rows`` as a PostgreSQL ``unnest`` of one array per column, typed like ``table``.

    Select from it to insert or update thousands of rows in one statement.
    """
    columns = columns or list(rows[0])
    return func.unnest(*(
        bindparam(None, [row[column] for row in rows], type_=ARRAY(table.c[column].type))
        for column in columns)).table_valued(*columns).render_derived()


def is_postgres(session: Session) -> bool:
    """Return whether the session's database is PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, dictionaries with the same keys, into ``table``."""
    if not rows:
        return
    columns = list(rows[0])
    # Arrays of JSON documents would be read as nested arrays; those rows go one by one.
    documents = any(isinstance(table.c[column].type, JSON) for column in columns)
    if not is_postgres(session) or documents:
        session.execute(insert(table), rows)
        return
    # One statement over one array per column: row by row, even pipelined, most of the time
    # goes to the protocol rather than to storing the rows. A column with one value in every
    # row is sent once, not as an array.
    first = rows[0]
    same = {c for c in columns if all(row[c] == first[c] for row in rows)}
    varying = [c for c in columns if c not in same] or columns[:1]
    data = unnest(table, rows, varying)
    session.execute(insert(table).from_select(columns, select(*(
        data.c[c] if c in varying else bindparam(None, first[c], type_=table.c[c].type)
        for c in columns))))


def copy_rows(session: Session, table: Table, columns: list[str],
              rows: Iterable[tuple[Any, ...]]) -> None:
    """Write ``rows``, tuples in ``columns`` order, into ``table`` with PostgreSQL's COPY."""
    # COPY formats each row in C and sends no statement to parse: for thousands of rows it
    # beats both multi-row VALUES and arrays, whose elements psycopg dumps one by one in Python.
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    driver_connection = session.connection().connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings this service relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """The engine and session factory of one app; sessions live for one request or job."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def init_app(self, app: Flask) -> None:
        app.extensions["coordinator.db"] = self
        app.teardown_appcontext(_close_session)


def database(app: Flask | None = None) -> Database:
    """Return the Database of ``app`` (default: the current app)."""
    return (app or current_app).extensions["coordinator.db"]


def session() -> Session:
    """Return the session of the current request or job, opening it on first use."""
    if "db_session" not in g:
        g.db_session = database().sessions()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()  # rolls back whatever the boundary did not commit
