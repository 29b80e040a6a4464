"""MTurk review fixes against the stand-in: invented assignments, expiry, returned work,
MTurk's own decisions, gold secrecy, per-HIT commits and locks, list retries, locales,
repeat workers, paused projects, recovered HITs and vanished ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from coordinator import db, jobs
from coordinator.audit.services import Actor
from coordinator.dispatch.models import Assignment
from coordinator.dispatch.services import add_assignments, set_paused
from coordinator.labels.models import Label
from coordinator.mturk import services
from coordinator.mturk.models import MTurkAssignment, MTurkHit, MTurkHitSlot, MTurkSettings
from coordinator.projects.models import Project
from coordinator.workforces.models import Workforce
from tests.integration.test_mturk_flow import (  # noqa: F401 (fixtures)
    answer,
    mturk,
    page,
    publish,
    run_consensus,
    standin,
    token_of,
)


def _client(app):
    return app.extensions["coordinator.mturk_client"]


def _label(world, hit_id, assignment_id, worker_id, label="positive"):
    response = page(world, hit_id, assignment_id, worker_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    stored = world.client.post("/mturk/labels", json={
        "token": token_of(response), "assignment_id": assignment_id, "label": label})
    assert stored.status_code == 200, stored.get_json()


def _poll(app, **kwargs):
    with app.app_context():
        result = services.poll(db.session(), _client(app), **kwargs)
        db.session().commit()
        return result


def _counted(app):
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(Label).where(
            Label.counted.is_(True)))


def _hit(session, hit_id):
    return session.scalar(select(MTurkHit).where(MTurkHit.hit_id == hit_id))


def _after_deadline(app):
    with app.app_context():
        settings = db.session().scalar(select(MTurkSettings))
        return db.utcnow() + timedelta(
            seconds=settings.assignment_duration_seconds + services.LEASE_SLACK_SECONDS + 1)


# --- 1. invented assignments ------------------------------------------------------------------


def test_invented_assignments_never_count_and_give_their_slots_back(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    for n in range(3):  # nobody accepted anything on MTurk: ids made up from the preview URL
        _label(world, hit_ids[0], f"FAKE{n}", f"ATTACKER{n}", "negative")
    taken = page(world, hit_ids[0], "REAL1", "REALWORKER")
    assert taken.status_code == 409
    assert _counted(app) == 0  # the page's word is not enough
    early = _poll(app)
    assert (early.confirmed, early.released) == (0, 0)  # MTurk's deadline has not passed yet
    late = _poll(app, now=_after_deadline(app))
    assert late.released == 3 and _counted(app) == 0
    with app.app_context():
        session = db.session()
        assert set(session.scalars(select(Label.set_aside))) == {services.UNCONFIRMED}
        assert set(session.scalars(select(MTurkAssignment.status))) == {"invalid"}
        offered = session.scalar(select(func.count()).select_from(MTurkHitSlot).join(
            Assignment, Assignment.id == MTurkHitSlot.assignment_id).where(
            MTurkHitSlot.hit_pk == _hit(session, hit_ids[0]).id, Assignment.status == "offered"))
        assert offered == 3  # replacements ride in the same live HIT again
    # a real worker now gets a slot, and their label counts once MTurk lists it
    _label(world, hit_ids[0], "REAL1", "REALWORKER")
    server.state.add_assignment(hit_ids[0], "REAL1", "REALWORKER", answer("positive"))
    assert _poll(app).confirmed == 1 and _counted(app) == 1


def test_a_listed_assignment_with_another_worker_is_not_counted(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    _label(world, hit_ids[0], "A1", "WFORGED")
    mturk["server"].state.add_assignment(hit_ids[0], "A1", "WREAL", answer("positive"))
    result = _poll(app)
    assert (result.confirmed, result.invalid) == (0, 1) and _counted(app) == 0


# --- 2, 3. expiry -------------------------------------------------------------------------------


def test_expired_hits_free_untaken_slots_for_a_new_round(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    with app.app_context():
        session = db.session()
        later = _hit(session, hit_ids[0]).expires_at + timedelta(seconds=1)
        done = services.cleanup(session, Actor.system(), _client(app), now=later)
        session.commit()
        assert sorted(done.deleted) == sorted(hit_ids)
        assert session.scalar(select(func.count()).select_from(MTurkHitSlot)) == 0
    again = publish(world, mturk).get_json()
    assert len(again["created"]) == 2 and not set(again["created"]) & set(hit_ids)
    with app.app_context():
        rounds = db.session().scalars(select(MTurkHit.round).where(
            MTurkHit.hit_id.in_(again["created"]))).all()
        assert rounds == [2, 2]


def test_an_expired_hit_is_polled_until_its_work_is_settled(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    _label(world, hit_ids[0], "A1", "W1")
    with app.app_context():
        session = db.session()
        later = _hit(session, hit_ids[0]).expires_at + timedelta(seconds=1)
        bound = session.scalar(select(MTurkAssignment))
        bound.accepted_at = later - timedelta(seconds=60)  # accepted just before the expiry
        session.commit()
    first = _poll(app, now=later)
    with app.app_context():
        session = db.session()
        assert _hit(session, hit_ids[0]).status == "expired"
        # the slots nobody took are unlinked; the one in work stays
        assert session.scalar(select(func.count()).select_from(MTurkHitSlot).where(
            MTurkHitSlot.hit_pk == _hit(session, hit_ids[0]).id)) == 1
    assert first.released == 0
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("positive"))
    server.state.assignments[hit_ids[0]][0]["AssignmentStatus"] = "Approved"  # auto-approved
    second = _poll(app, now=later + timedelta(seconds=60))
    assert (second.confirmed, second.mirrored) == (1, 1)
    with app.app_context():
        session = db.session()
        bound = session.scalar(select(MTurkAssignment))
        assert bound.status == "approved"
        assert session.get(Assignment, bound.assignment_id).status == "accepted"
    assert _poll(app, now=later + timedelta(seconds=120)).hits == 0  # nothing left to poll


# --- 4. returned work ---------------------------------------------------------------------------


def test_a_returned_assignments_slot_is_put_back_without_a_publish(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    for n in range(3):  # three workers accept, then return the HIT on MTurk
        assert page(world, hit_ids[0], f"RET{n}", f"W{n}").status_code == 200
    assert page(world, hit_ids[0], "NEW", "WNEW").status_code == 409
    with app.app_context():
        session = db.session()
        hit = _hit(session, hit_ids[0])
        bound = services.bind(session, hit, "NEW2", "WNEW2",
                              now=db.utcnow() + timedelta(hours=1))
        session.commit()
        assert session.get(Assignment, bound.assignment_id).replaces_id is not None


# --- 5. MTurk's answer unreadable after our page stored the label --------------------------------


def test_an_unreadable_answer_keeps_the_page_label_counted_and_reviewed(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    _label(world, hit_ids[0], "A1", "W1")
    mturk["server"].state.add_assignment(hit_ids[0], "A1", "W1", "<broken")
    first = _poll(app)
    assert (first.confirmed, first.invalid) == (1, 0) and _counted(app) == 1
    run_consensus(app, mturk)
    assert _poll(app).approved == 1
    with app.app_context():
        session = db.session()
        bound = session.scalar(select(MTurkAssignment))
        assert bound.status == "approved" and bound.answer == "<broken"
        assert "could not be read" in bound.problem
        assert session.get(Assignment, bound.assignment_id).status == "accepted"


# --- 6. HITs in a random order ------------------------------------------------------------------


def test_hits_are_created_in_the_shuffled_order(app, world, mturk, monkeypatch):  # noqa: F811
    monkeypatch.setattr(services, "_shuffled", lambda planned: list(reversed(planned)))
    hit_ids = publish(world, mturk).get_json()["created"]
    with app.app_context():
        session = db.session()
        tasks = [_hit(session, hit_id).task_id for hit_id in hit_ids]
        assert tasks == sorted(tasks, reverse=True)


def test_shuffled_is_a_permutation_that_moves_things():
    planned = [services.PlannedHit(task, 1, [task], 1) for task in range(40)]
    shuffled = services._shuffled(list(planned))
    assert sorted(p.task_id for p in shuffled) == list(range(40))
    assert [p.task_id for p in shuffled] != list(range(40))  # 1 in 40! to fail by chance


# --- 7. commits per HIT and the advisory lock ---------------------------------------------------


class CrashOnSecondListing:
    def __init__(self, client):
        self.client, self.listed = client, 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def list_assignments(self, hit_id):
        self.listed += 1
        if self.listed == 2:
            raise RuntimeError("the worker process died")
        return self.client.list_assignments(hit_id)


def test_the_poll_job_commits_each_hit(app, world, mturk, monkeypatch):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    _label(world, hit_ids[0], "A1", "W1")
    _label(world, hit_ids[1], "A2", "W2")
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("positive"))
    server.state.add_assignment(hit_ids[1], "A2", "W2", answer("positive"))
    monkeypatch.setattr(services, "client_for_app", lambda: CrashOnSecondListing(_client(app)))
    with pytest.raises(RuntimeError):
        jobs.run_job(app, "mturk_poll")
    assert _counted(app) == 1  # the first HIT's confirmation was committed before the crash


@pytest.mark.postgres_only
def test_a_hit_another_poller_holds_is_skipped(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    _label(world, hit_ids[0], "A1", "W1")
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("positive"))
    with app.app_context():
        hit_pk = _hit(db.session(), hit_ids[0]).id
        db.session().commit()
        with db.session().get_bind().connect() as other:
            other.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                          {"key": services.POLL_LOCK_BASE + hit_pk})
            result = _poll(app)
            assert (result.skipped, result.confirmed) == (1, 0)
            other.rollback()
    assert _poll(app).confirmed == 1


# --- 8. listings retried, MTurk's errors as problems ---------------------------------------------


def test_reconcile_retries_and_maps_mturk_errors(world, mturk):  # noqa: F811
    server = mturk["server"]
    publish(world, mturk)
    server.inject("ListHITs", "ThrottlingException", 400, "Rate exceeded")
    assert world.get("auditor", "/api/v1/mturk/reconcile").status_code == 200
    server.inject("ListHITs", "ThrottlingException", 400, "Rate exceeded", times=3)
    busy = world.get("auditor", "/api/v1/mturk/reconcile")
    assert busy.status_code == 502 and busy.get_json()["mturk_code"] == "ThrottlingException"
    server.inject("ListHITs", "AccessDenied", 400, "not allowed")
    refused = world.get("auditor", "/api/v1/mturk/reconcile")
    assert refused.status_code == 409 and refused.get_json()["mturk_code"] == "AccessDenied"


# --- 9. Worker_Locale held to the workforce's countries ----------------------------------------


def test_places_must_lie_in_the_workforces_countries(app, world, mturk):  # noqa: F811
    url = f"/api/v1/projects/{mturk['project_id']}/mturk/{mturk['workforce_id']}"
    outside = world.client.put(url, headers=world.headers("manager"), json={"places": ["CN", "US-CA"]})
    assert outside.status_code == 422 and "CN" in outside.get_json()["errors"]["places"][0]
    with app.app_context():
        session = db.session()
        session.get(Project, mturk["project_id"]).residency_region = "us"
        session.get(Workforce, mturk["workforce_id"]).countries = []
        session.scalar(select(MTurkSettings)).places = []
        session.commit()
    refused = publish(world, mturk)
    assert refused.status_code == 409 and "locale" in refused.get_json()["detail"]
    assert mturk["server"].calls("CreateHITWithHITType") == []


# --- 10, 12. repeat workers and paused projects ------------------------------------------------


def test_a_worker_cannot_take_a_later_rounds_hit_for_a_task_they_did(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    _label(world, hit_ids[0], "A1", "W1")
    with app.app_context():
        session = db.session()
        task_id = _hit(session, hit_ids[0]).task_id
        add_assignments(session, Actor.system(), mturk["project_id"], {task_id: 2}, rates=None)
        session.commit()
    (second_round,) = publish(world, mturk).get_json()["created"]
    again = page(world, second_round, "B1", "W1")
    assert again.status_code == 409 and "already worked on this item" in again.get_data(as_text=True)
    assert page(world, second_round, "B2", "W2").status_code == 200
    # a label the labels service refuses is a Conflict carrying the service's code
    token = token_of(page(world, hit_ids[1], "A9", "W9"))
    with app.app_context():
        session = db.session()
        bound = session.scalar(select(MTurkAssignment).where(
            MTurkAssignment.mturk_assignment_id == "A9"))
        session.get(Assignment, bound.assignment_id).lease_expires_at = db.utcnow() - timedelta(seconds=1)
        session.commit()
    late = world.client.post("/mturk/labels", json={"token": token, "assignment_id": "A9",
                                                    "label": "negative"})
    assert late.status_code == 409 and late.get_json()["code"] == "lease_expired"


def test_a_paused_project_takes_no_new_mturk_worker(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    with app.app_context():
        set_paused(db.session(), Actor.system(), mturk["project_id"], True)
        db.session().commit()
    paused = page(world, hit_ids[0], "A1", "W1")
    assert paused.status_code == 409 and "paused" in paused.get_data(as_text=True)
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(MTurkAssignment)) == 0


# --- 13, 14. recovered and vanished HITs --------------------------------------------------------


def test_a_recovered_hit_links_only_the_slots_it_was_made_with(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    with app.app_context():  # as if the answer to the first create was lost ...
        session = db.session()
        lost = _hit(session, hit_ids[0])
        task_id = lost.task_id
        session.execute(MTurkHitSlot.__table__.delete().where(MTurkHitSlot.hit_pk == lost.id))
        session.delete(lost)
        # ... and one more assignment of the task was offered meanwhile
        add_assignments(session, Actor.system(), mturk["project_id"], {task_id: 1}, rates=None)
        session.commit()
    again = publish(world, mturk).get_json()
    assert again["created"] == [hit_ids[0]]
    with app.app_context():
        session = db.session()
        recovered = _hit(session, hit_ids[0])
        assert recovered.max_assignments == 3
        assert session.scalar(select(func.count()).select_from(MTurkHitSlot).where(
            MTurkHitSlot.hit_pk == recovered.id)) == 3
    (extra,) = publish(world, mturk).get_json()["created"]  # the fourth goes to round 2
    assert mturk["server"].state.hits[extra]["MaxAssignments"] == 1


def test_cleanup_marks_a_hit_mturk_no_longer_has_as_disposed(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    del server.state.hits[hit_ids[0]]
    with app.app_context():
        session = db.session()
        later = _hit(session, hit_ids[0]).expires_at + timedelta(seconds=1)
        done = services.cleanup(session, Actor.system(), _client(app), now=later)
        session.commit()
        assert hit_ids[0] in done.deleted and done.kept == {}
        assert _hit(session, hit_ids[0]).status == "disposed"
        calls = len(server.requests)
        assert services.cleanup(session, Actor.system(), _client(app), now=later).deleted == []
        assert len(server.requests) == calls  # not tried again
