"""Triggers that make the database itself refuse to edit or delete an audit event.

The hash chain detects a rewritten trail; these triggers stop the service's own database
user (and anyone else without the rights to drop a trigger) from rewriting it at all:
every ``UPDATE`` or ``DELETE`` of a row of ``audit_events`` fails. On PostgreSQL a row
trigger does not fire for ``TRUNCATE`` and a table owner can disable or drop the trigger;
what such a person does still breaks the chain, which ``audit verify`` with a head noted
earlier (``expect_head``) reveals.

This module imports only the standard library: the migration that adds the triggers, and
the tests that tamper with events on purpose, use it too.
"""

from __future__ import annotations

#: The PostgreSQL trigger and the function it calls.
PG_TRIGGER = "audit_events_append_only"
PG_FUNCTION = "audit_events_refuse_change"
#: The SQLite triggers, one per statement kind (SQLite has no ``UPDATE OR DELETE``).
SQLITE_TRIGGERS = {"UPDATE": "audit_events_no_update", "DELETE": "audit_events_no_delete"}
#: The message both databases give.
MESSAGE = "audit events are append-only"


def create_statements(dialect: str) -> list[str]:
    """Return the statements that add the triggers on ``dialect``."""
    if dialect == "postgresql":
        return [
            f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{MESSAGE}: % of audit event % refused', TG_OP, OLD.seq "
            "USING ERRCODE = 'restrict_violation'; END $$",
            f"CREATE TRIGGER {PG_TRIGGER} BEFORE UPDATE OR DELETE ON audit_events "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
        ]
    return [f"CREATE TRIGGER {name} BEFORE {kind} ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            for kind, name in SQLITE_TRIGGERS.items()]


def drop_statements(dialect: str) -> list[str]:
    """Return the statements that remove the triggers on ``dialect``."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {PG_TRIGGER} ON audit_events",
                f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS.values()]


def suspend_statements(dialect: str) -> tuple[list[str], list[str]]:
    """Return the statements that lift the guard and those that put it back, in a transaction.

    For tests and scratch databases only: on PostgreSQL the table owner disables the
    trigger; SQLite cannot disable one, so it is dropped and created again (its DDL is
    transactional, so a rollback puts it back too).
    """
    if dialect == "postgresql":
        return ([f"ALTER TABLE audit_events DISABLE TRIGGER {PG_TRIGGER}"],
                [f"ALTER TABLE audit_events ENABLE TRIGGER {PG_TRIGGER}"])
    return ([f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS.values()],
            create_statements(dialect))
