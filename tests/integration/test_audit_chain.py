"""The hash-chained audit trail: appends, verification, tampering, filters, migration."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from coordinator import db, schema
from coordinator.audit import chain, guard
from coordinator.audit import services as audit_services
from coordinator.audit.models import AuditEvent
from coordinator.audit.services import Actor, record, verify_chain
from coordinator.cli import main
from tests.helpers import assert_invalid

URL = "/api/v1/audit/events"


def _events(app):
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).order_by(AuditEvent.seq)))


@contextmanager
def _unguarded(connection):
    """Lift the append-only triggers in this transaction, as whoever holds the keys could."""
    lift, restore = guard.suspend_statements(connection.dialect.name)
    for statement in lift:
        connection.execute(text(statement))
    yield
    for statement in restore:
        connection.execute(text(statement))


def _execute(app, statement, **params):
    """Tamper with the trail as someone who can lift the database's guard."""
    with db.database(app).engine.begin() as connection, _unguarded(connection):
        connection.execute(text(statement), params)


def _edit(app, event_id, **values):
    """Set columns of one stored event, the guard lifted."""
    with app.app_context():
        session = db.session()
        with _unguarded(session.connection()):
            for name, value in values.items():
                setattr(session.get(AuditEvent, event_id), name, value)
            session.flush()
        session.commit()


@pytest.fixture
def cli(app, database_url, tmp_path, monkeypatch):
    """Run ``coordinator`` against the test database; return (exit code, output)."""
    monkeypatch.setenv("COORDINATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("COORDINATOR_INSTANCE_PATH", str(tmp_path / "cli"))
    monkeypatch.setenv("COORDINATOR_LOG_LEVEL", "warning")

    def run(*args):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return run


@pytest.fixture
def trail(world, project_id):
    """Events from real API calls: workforces, accounts, tokens, a project and its changes."""
    for description in ("one", "two", "three"):
        response = world.patch("manager", f"/api/v1/projects/{project_id}",
                               json={"description": description})
        assert response.status_code == 200, response.get_json()
    return project_id


def test_every_event_links_to_the_one_before(app, trail, cli, world):
    events = _events(app)
    assert len(events) >= 12  # 2 workforces, 5 accounts, 5 tokens, a project, 3 updates
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == chain.GENESIS
    for before, event in zip(events, events[1:]):
        assert event.prev_hash == before.hash
    for event in events:
        assert event.hash == chain.event_hash(
            {c: getattr(event, c) for c in ("occurred_at", "actor_id", "action", "subject_type",
                                            "subject_id", "before", "after", "request_id")},
            event.prev_hash)
    code, output = cli("audit", "verify")
    assert code == 0, output
    assert f"{len(events)} events; head {len(events)}:{events[-1].hash}" in output
    body = world.get("auditor", "/api/v1/audit/verify").get_json()
    assert body == {"ok": True, "events": len(events), "head_seq": len(events),
                    "head_hash": events[-1].hash, "problem": None}


def test_an_empty_trail_verifies(app, cli):
    code, output = cli("audit", "verify")
    assert code == 0 and "no events" in output


def test_an_edited_event_is_named(app, trail, cli, world):
    target = _events(app)[5]
    _execute(app, "UPDATE audit_events SET action = 'account.delete' WHERE id = :id",
             id=target.id)
    code, output = cli("audit", "verify")
    assert code == 1
    assert f"broken at event {target.seq} (id {target.id}), edited" in output
    body = world.get("auditor", "/api/v1/audit/verify").get_json()
    assert body["ok"] is False
    assert body["problem"]["kind"] == "edited" and body["problem"]["seq"] == target.seq


def test_an_edited_hash_or_link_is_named_as_edited(app, trail, cli):
    target = _events(app)[3]
    _execute(app, "UPDATE audit_events SET prev_hash = :h WHERE id = :id", id=target.id,
             h="f" * 64)
    code, output = cli("audit", "verify")
    assert code == 1 and f"broken at event {target.seq} (id {target.id}), edited" in output


def test_edits_inside_json_documents_and_times_are_caught(app, trail, cli):
    events = _events(app)
    update = next(e for e in events if e.action == "project.update")
    after = dict(update.after, description="forged")
    _edit(app, update.id, after=after)
    code, output = cli("audit", "verify")
    assert code == 1 and f"event {update.seq} (id {update.id}), edited" in output
    _edit(app, update.id, after=update.after)
    assert cli("audit", "verify")[0] == 0  # put back, the chain is whole again
    _edit(app, events[1].id, occurred_at=events[1].occurred_at + timedelta(microseconds=1))
    code, output = cli("audit", "verify")
    assert code == 1 and f"event {events[1].seq} (id {events[1].id}), edited" in output


def test_a_deleted_event_is_named(app, trail, cli):
    events = _events(app)
    _execute(app, "DELETE FROM audit_events WHERE id = :id", id=events[4].id)
    code, output = cli("audit", "verify")
    assert code == 1
    assert f"broken at event {events[5].seq} (id {events[5].id}), deleted" in output
    assert f"event {events[4].seq} is missing" in output


def test_a_deletion_hidden_by_renumbering_is_named(app, trail, cli):
    events = _events(app)
    _execute(app, "DELETE FROM audit_events WHERE id = :id", id=events[4].id)
    _execute(app, "UPDATE audit_events SET seq = seq - 1 WHERE seq > :seq", seq=events[4].seq)
    code, output = cli("audit", "verify")
    assert code == 1
    assert f"broken at event {events[4].seq} (id {events[5].id}), deleted" in output


def test_reordered_events_are_named(app, trail, cli, world):
    events = _events(app)
    a, b = events[6], events[7]
    # Swap the two events' places in the chain (through a free seq: it is unique).
    _execute(app, "UPDATE audit_events SET seq = 0 WHERE id = :id", id=a.id)
    _execute(app, "UPDATE audit_events SET seq = :seq WHERE id = :id", seq=a.seq, id=b.id)
    _execute(app, "UPDATE audit_events SET seq = :seq WHERE id = :id", seq=b.seq, id=a.id)
    code, output = cli("audit", "verify")
    assert code == 1
    assert f"broken at event {a.seq} (id {b.id}), reordered" in output
    assert f"chained after event {b.seq}, not after event {a.seq - 1}" in output
    problem = world.get("auditor", "/api/v1/audit/verify").get_json()["problem"]
    assert problem["kind"] == "reordered" and problem["event_id"] == b.id


def test_a_truncated_tail_fails_against_the_head_noted_down(app, trail, cli):
    events = _events(app)
    head = f"{events[-1].seq}:{events[-1].hash}"
    assert cli("audit", "verify", "--expect-head", head)[0] == 0
    _execute(app, "DELETE FROM audit_events WHERE seq = :seq", seq=events[-1].seq)
    assert cli("audit", "verify")[0] == 0  # nothing in the table itself shows a cut tail
    code, output = cli("audit", "verify", "--expect-head", head)
    assert code == 1 and f"broken at event {events[-1].seq}" in output
    code, output = cli("audit", "verify", "--expect-head", "nonsense")
    assert code == 2 and "SEQ:HASH" in output


def test_the_database_refuses_to_edit_or_delete_an_event(app, trail, cli):
    target = _events(app)[2]
    for statement in ("UPDATE audit_events SET action = 'x.y' WHERE id = :id",
                      "DELETE FROM audit_events WHERE id = :id"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.database(app).engine.begin() as connection:
                connection.execute(text(statement), {"id": target.id})
    with app.app_context(), pytest.raises(DBAPIError, match="append-only"):
        session = db.session()
        session.get(AuditEvent, target.id).after = {"forged": True}
        session.commit()
    assert _events(app)[2].action == target.action
    assert cli("audit", "verify")[0] == 0


def test_verify_through_the_api_checks_a_noted_head_and_starts_at_a_checkpoint(
        app, trail, world):
    events = _events(app)
    whole = world.get("auditor", "/api/v1/audit/verify").get_json()
    head = f"{whole['head_seq']}:{whole['head_hash']}"
    assert world.get("auditor", "/api/v1/audit/verify",
                     query_string={"expect_head": head}).get_json()["ok"] is True
    middle = events[5]
    partial = world.get("auditor", "/api/v1/audit/verify", query_string={
        "from_seq": middle.seq, "from_hash": middle.hash}).get_json()
    assert partial == {"ok": True, "events": len(events) - middle.seq,
                       "head_seq": whole["head_seq"], "head_hash": whole["head_hash"],
                       "problem": None}
    # An edit before the checkpoint is not walked, but the checkpoint itself is checked.
    _execute(app, "UPDATE audit_events SET action = 'forged' WHERE id = :id", id=events[2].id)
    assert world.get("auditor", "/api/v1/audit/verify", query_string={
        "from_seq": middle.seq, "from_hash": middle.hash}).get_json()["ok"] is True
    wrong = world.get("auditor", "/api/v1/audit/verify", query_string={
        "from_seq": middle.seq, "from_hash": "a" * 64}).get_json()
    assert wrong["ok"] is False and wrong["problem"]["kind"] == "rewritten"
    # A tail cut off leaves a whole chain; only the head noted down shows it.
    _execute(app, "DELETE FROM audit_events WHERE seq = :seq", seq=events[-1].seq)
    cut = world.get("auditor", "/api/v1/audit/verify", query_string={
        "from_seq": middle.seq, "from_hash": middle.hash, "expect_head": head}).get_json()
    assert cut["ok"] is False and cut["problem"]["kind"] == "deleted"
    assert cut["problem"]["seq"] == events[-1].seq and "missing" in cut["problem"]["detail"]


@pytest.mark.parametrize(("query", "field"), [
    ({"from_seq": 3}, "from_hash"),
    ({"from_hash": "a" * 64}, "from_seq"),
    ({"from_seq": 0, "from_hash": "a" * 64}, "from_seq"),
    ({"from_seq": 1, "from_hash": "xyz"}, "from_hash"),
    ({"expect_head": "nonsense"}, "expect_head"),
    ({"head": "1:" + "a" * 64}, "head"),
])
def test_malformed_verify_parameters_are_a_400_naming_them(world, query, field):
    response = world.get("auditor", "/api/v1/audit/verify", query_string=query)
    assert_invalid(response, field, status=400, context=query)


@pytest.mark.postgres_only
def test_the_time_of_an_event_is_read_once_the_chain_is_locked(app, monkeypatch):
    with app.app_context():
        session = db.session()
        held = []

        def now():
            held.append(session.connection().scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()")))
            return db.utcnow()

        monkeypatch.setattr(audit_services, "utcnow", now)
        record(session, Actor.system(), "test.timed", "thing", 1)
        session.rollback()
    assert held == [1]


def test_values_hash_alike_as_written_and_as_read_back(app, cli):
    awkward = {"float": 1.0, "big": 1e16, "tiny": 1e-7, "third": 1 / 3, "neg_zero": -0.0,
               "huge": 1e300, "int": 2**62, 7: "int key", "text": "naïve — 東京 \"q\"",
               "nested": [{"b": 1, "a": [None, True, False]}], "empty": {}}
    with app.app_context():
        session = db.session()
        record(session, Actor.system(), "test.values", "thing", 1, before=None, after=awkward)
        record(session, Actor(None, "req-1"), "test.values", "thing", 2, before=awkward)
        session.commit()
        session.expire_all()
        assert verify_chain(session).ok
    assert cli("audit", "verify")[0] == 0


def _record_in_threads(app, threads, per_thread):
    errors = []
    start = threading.Barrier(threads)

    def work(number):
        try:
            start.wait()
            for i in range(per_thread):
                with app.app_context():
                    session = db.session()
                    record(session, Actor.system(), "test.concurrent", "thread", number,
                           after={"i": i})
                    session.commit()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


@pytest.mark.postgres_only
def test_concurrent_transactions_keep_one_chain(app, database_url, cli):
    errors = _record_in_threads(app, threads=8, per_thread=25)
    assert errors == []
    events = _events(app)
    assert len(events) == 200
    assert [e.seq for e in events] == list(range(1, 201))
    assert cli("audit", "verify")[0] == 0


def test_a_rolled_back_event_leaves_no_gap(app, cli):
    with app.app_context():
        session = db.session()
        record(session, Actor.system(), "test.kept", "thing", 1)
        session.commit()
        record(session, Actor.system(), "test.dropped", "thing", 2)
        session.rollback()
        record(session, Actor.system(), "test.kept", "thing", 3)
        session.commit()
    assert [e.action for e in _events(app)] == ["test.kept", "test.kept"]
    assert cli("audit", "verify")[0] == 0


# --- reading the trail -----------------------------------------------------------------------


def test_auditors_filter_events(app, trail, world):
    everything = world.get("auditor", f"{URL}?page_size=500")
    assert everything.status_code == 200
    events = everything.get_json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    manager = world.account_ids["manager"]
    mine = world.get("auditor", f"{URL}?actor_id={manager}").get_json()
    assert mine and all(e["actor_id"] == manager for e in mine)
    assert {e["action"] for e in mine} == {"project.create", "project.update"}
    projects = world.get("auditor", f"{URL}?action=project.*").get_json()
    assert [e["action"] for e in projects] == ["project.create"] + ["project.update"] * 3
    exact = world.get("auditor", f"{URL}?action=project.update&subject_type=project"
                                 f"&subject_id={trail}").get_json()
    assert [e["after"]["description"] for e in exact] == ["one", "two", "three"]
    assert world.get("auditor", f"{URL}?action=project").get_json() == []
    third = exact[2]["occurred_at"]
    since = world.get("auditor", URL, query_string={
        "action": "project.update", "since": third}).get_json()
    assert [e["after"]["description"] for e in since] == ["three"]
    until = world.get("auditor", URL, query_string={
        "action": "project.update", "until": third}).get_json()
    assert [e["after"]["description"] for e in until] == ["one", "two"]
    newest = events[-3]["seq"]
    later = world.get("auditor", URL, query_string={"after_seq": newest}).get_json()
    assert [e["seq"] for e in later] == [newest + 1, newest + 2]
    page = world.get("auditor", f"{URL}?page_size=2&page=2")
    assert [e["seq"] for e in page.get_json()] == [3, 4]
    assert json.loads(page.headers["X-Pagination"])["total"] == len(events)


@pytest.mark.parametrize(("query", "field"), [
    ("actor_id=abc", "actor_id"),
    ("actor_id=0", "actor_id"),
    ("since=yesterday", "since"),
    ("since=2026-01-01T00:00:00", "since"),  # no offset: ambiguous
    ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
    ("action=DROP TABLE", "action"),
    ("actorid=1", "actorid"),
    ("after_seq=-1", "after_seq"),
])
def test_malformed_filters_are_a_400_naming_the_field(world, query, field):
    response = world.get("auditor", f"{URL}?{query}")
    assert_invalid(response, field, status=400, context=query)


@pytest.mark.parametrize("who", ["manager", "vendor_eu"])
def test_only_auditors_and_admins_read_the_trail(world, who):
    assert world.get(who, URL).status_code == 403
    assert world.get(who, "/api/v1/audit/verify").status_code == 403
    assert world.get("admin", URL).status_code == 200


# --- migrating existing events ---------------------------------------------------------------


def test_the_migration_chains_existing_events_in_id_order(tmp_path, backend, database_url):
    if backend == "postgresql":
        from tests.conftest import create_postgres_database, drop_postgres_database
        url = create_postgres_database("coord_chain")
    else:
        url = f"sqlite:///{tmp_path / 'chain.sqlite3'}"
    try:
        schema.upgrade(url, "0006")
        engine = create_engine(url)
        moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
        with engine.begin() as connection:
            for number in range(7):
                connection.execute(text(
                    "INSERT INTO audit_events (occurred_at, action, subject_type, subject_id, "
                    "before, after) VALUES (:at, :action, 'thing', :id, 'null', :after)"),
                    {"at": moment + timedelta(seconds=number), "action": f"old.{number}",
                     "id": str(number), "after": '{"n": %d, "x": 1.5}' % number})
        engine.dispose()
        schema.upgrade(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(
                select(AuditEvent.__table__).order_by(AuditEvent.seq))]
        engine.dispose()
        assert [r["action"] for r in rows] == [f"old.{n}" for n in range(7)]
        assert [r["seq"] for r in rows] == list(range(1, 8))
        assert chain.verify(rows).ok
        schema.downgrade(url, "0006")
        schema.upgrade(url)
    finally:
        if backend == "postgresql":
            drop_postgres_database(url)
