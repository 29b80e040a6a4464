"""MTurk operations against the stand-in: the block qualification, cleanup, durable bonuses, answers
whose MTurk copy differs from ours, and the poll job."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from coordinator import db, jobs
from coordinator.audit.models import AuditEvent
from coordinator.audit.services import Actor
from coordinator.dispatch.models import Assignment, Worker
from coordinator.labels.models import Label
from coordinator.mturk import services
from coordinator.mturk.models import MTurkBonus, MTurkHit
from coordinator.quality.models import WorkerBlock
from tests.integration.test_mturk_flow import (  # noqa: F401 (fixtures)
    answer,
    mturk,
    page,
    publish,
    run_consensus,
    standin,
    token_of,
)

BLOCK = "3BLOCKQUALIFICATIONTYPE000000"
#: The requirement every HIT type carries once the project names a block qualification type.
EXCLUDED = {"QualificationTypeId": BLOCK, "Comparator": "DoesNotExist",
            "ActionsGuarded": "DiscoverPreviewAndAccept"}


def _client(app):
    return app.extensions["coordinator.mturk_client"]


def _with_block_type(world, mturk):  # noqa: F811
    url = f"/api/v1/projects/{mturk['project_id']}/mturk/{mturk['workforce_id']}"
    put = world.client.put(url, headers=world.headers("manager"),
                           json={"block_qualification_type_id": BLOCK})
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["qualification_requirements"][-1] == EXCLUDED


def _workers(app, mturk, *external_ids):  # noqa: F811
    with app.app_context():
        session = db.session()
        made = {}
        for external_id in external_ids:
            worker = Worker(workforce_id=mturk["workforce_id"], external_id=external_id)
            session.add(worker)
            session.flush()
            made[external_id] = worker.id
        session.commit()
    return made


def _block(app, mturk, worker_id):  # noqa: F811
    with app.app_context():
        session = db.session()
        block = WorkerBlock(project_id=mturk["project_id"], worker_id=worker_id,
                            workforce_id=mturk["workforce_id"], gold_answers=10,
                            gold_correct=3, accuracy=0.3, floor=0.7, blocked_at=db.utcnow())
        session.add(block)
        session.commit()
        return block.id


def _lift(world, mturk, block_id):  # noqa: F811
    lifted = world.post("manager", f"/api/v1/projects/{mturk['project_id']}/quality/blocks/"
                                   f"{block_id}/lift", json={"reason": "retrained"})
    assert lifted.status_code == 200, lifted.get_json()


def _sync(world, mturk):  # noqa: F811
    synced = world.post("manager", f"/api/v1/mturk/workforces/{mturk['workforce_id']}"
                                   "/block-qualification/sync")
    assert synced.status_code == 200, synced.get_json()
    return synced.get_json()


def _mutations(server):
    return [(name, body["WorkerId"]) for name, body in server.requests
            if name in ("AssociateQualificationWithWorker", "DisassociateQualificationFromWorker")]


# --- 1. the block qualification ---------------------------------------------------------------


def test_the_block_qualification_keeps_out_blocked_workers_only(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    _with_block_type(world, mturk)
    ids = _workers(app, mturk, "WGOOD", "WBAD")
    server.state.qualifications[BLOCK] = {"WHAND": 1}  # blocked by hand on MTurk, unknown to us
    block_id = _block(app, mturk, ids["WBAD"])

    assert _sync(world, mturk) == {"blocked": ["WBAD"], "unblocked": []}
    assert _mutations(server) == [("AssociateQualificationWithWorker", "WBAD")]
    assert server.calls("AssociateQualificationWithWorker")[0]["QualificationTypeId"] == BLOCK
    assert server.state.qualifications[BLOCK] == {"WHAND": 1, "WBAD": 1}
    assert _sync(world, mturk) == {"blocked": [], "unblocked": []}
    assert len(_mutations(server)) == 1  # the second run changed nothing on MTurk

    hit_ids = publish(world, mturk).get_json()["created"]
    (hit_type,) = server.calls("CreateHITType")
    assert EXCLUDED in hit_type["QualificationRequirements"]
    assert server.state.can_accept(hit_ids[0], "WNEVERSEEN")  # a stranger is welcome
    assert server.state.can_accept(hit_ids[0], "WGOOD")
    assert not server.state.can_accept(hit_ids[0], "WBAD")
    assert not server.state.can_accept(hit_ids[0], "WHAND")

    _lift(world, mturk, block_id)
    assert _sync(world, mturk) == {"blocked": [], "unblocked": ["WBAD"]}
    assert server.calls("DisassociateQualificationFromWorker")[0]["WorkerId"] == "WBAD"
    assert server.state.qualifications[BLOCK] == {"WHAND": 1}  # the hand-made block stays
    assert server.state.can_accept(hit_ids[0], "WBAD")
    assert _sync(world, mturk) == {"blocked": [], "unblocked": []}
    assert len(_mutations(server)) == 2
    with app.app_context():
        events = db.session().scalars(select(AuditEvent).where(
            AuditEvent.action == "mturk.qualification.sync").order_by(AuditEvent.id)).all()
        assert [event.after for event in events] == [  # only the runs that changed something
            {"blocked": ["WBAD"], "unblocked": []}, {"blocked": [], "unblocked": ["WBAD"]}]


def test_a_new_worker_takes_a_hit_under_the_block_qualification(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    _with_block_type(world, mturk)
    hit_id = publish(world, mturk).get_json()["created"][0]
    assert server.state.can_accept(hit_id, "WFIRST")
    token = token_of(page(world, hit_id, "AFIRST", "WFIRST"))
    stored = world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "AFIRST", "label": "positive", "locale": "ar"})
    assert stored.status_code == 200, stored.get_json()
    with app.app_context():
        assert db.session().scalar(select(Worker.id).where(
            Worker.workforce_id == mturk["workforce_id"], Worker.external_id == "WFIRST"))


def test_block_qualification_sync_refusals(app, world, mturk):  # noqa: F811
    url = f"/api/v1/mturk/workforces/{mturk['workforce_id']}/block-qualification/sync"
    assert world.post("auditor", url).status_code == 403
    vendor_workforce = world.workforce_ids["vendor_eu"]
    assert world.post("manager", f"/api/v1/mturk/workforces/{vendor_workforce}"
                                 "/block-qualification/sync").status_code == 404
    _with_block_type(world, mturk)
    _workers(app, mturk, "W1")
    mturk["server"].inject("ListWorkersWithQualificationType", "RequestError", 400,
                           "QualificationType does not exist.")
    refused = world.post("manager", url)
    assert refused.status_code == 409 and refused.get_json()["mturk_code"] == "RequestError"


def test_the_poll_job_syncs_the_qualification_only_when_blocks_change(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    _with_block_type(world, mturk)
    ids = _workers(app, mturk, "W1", "W2")
    block_id = _block(app, mturk, ids["W2"])
    first = jobs.run_job(app, "mturk_poll")
    assert first["qualification"] == {"blocked": 1, "unblocked": 0, "errors": []}
    listed = len(server.calls("ListWorkersWithQualificationType"))
    assert jobs.run_job(app, "mturk_poll") == 0  # nothing changed: MTurk is not even asked
    assert len(server.calls("ListWorkersWithQualificationType")) == listed
    _lift(world, mturk, block_id)
    third = jobs.run_job(app, "mturk_poll")
    assert third["qualification"] == {"blocked": 0, "unblocked": 1, "errors": []}
    assert server.state.qualifications[BLOCK] == {}


# --- 2. cleanup over HTTP ---------------------------------------------------------------------


def test_cleanup_endpoint_expires_cancelled_work_and_deletes_it(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    assert world.post("auditor", "/api/v1/mturk/cleanup").status_code == 403
    nothing = world.post("manager", "/api/v1/mturk/cleanup")
    assert nothing.status_code == 200
    assert nothing.get_json() == {"expired": [], "deleted": [], "kept": {}}
    with app.app_context():
        session = db.session()
        first = session.scalar(select(MTurkHit).where(MTurkHit.hit_id == hit_ids[0]))
        for assignment in session.scalars(select(Assignment).where(Assignment.task_id == first.task_id)):
            assignment.status = "cancelled"
        session.commit()
    done = world.post("manager", "/api/v1/mturk/cleanup").get_json()
    assert done == {"expired": [hit_ids[0]], "deleted": [hit_ids[0]], "kept": {}}
    assert hit_ids[0] not in server.state.hits and hit_ids[1] in server.state.hits
    with app.app_context():
        assert db.session().scalar(select(MTurkHit.status).where(
            MTurkHit.hit_id == hit_ids[0])) == "disposed"


def test_cleanup_endpoint_keeps_what_mturk_refuses_to_delete(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    with app.app_context():
        session = db.session()
        for assignment in session.scalars(select(Assignment)):
            assignment.status = "cancelled"
        session.commit()
    mturk["server"].inject("DeleteHIT", "RequestError", 400, "This HIT is currently in the state 'Reviewable'.")
    done = world.post("manager", "/api/v1/mturk/cleanup").get_json()
    assert sorted(done["expired"]) == sorted(hit_ids)
    assert list(done["kept"]) == [hit_ids[0]] and "Reviewable" in done["kept"][hit_ids[0]]
    assert done["deleted"] == [hit_ids[1]]


# --- 5. bonuses that survive a crash and MTurk forgetting its tokens ---------------------------


class Crash(Exception):
    """The process dying after MTurk paid and before our commit."""


class CrashAfterPaying:
    """The real client, except that the process dies right after SendBonus returns."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def send_bonus(self, **kwargs):
        self.client.send_bonus(**kwargs)
        raise Crash


def test_a_bonus_retried_a_day_later_is_found_on_mturk_not_paid_twice(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    page(world, hit_ids[0], "A1", "W1")
    url = "/api/v1/mturk/assignments/A1/bonus"
    body = {"amount": "0.50", "reason": "Careful work", "key": "week-1"}
    assert world.post("manager", url, json=body).get_json()["paid"] is True  # a first, normal bonus

    with app.app_context():  # the same amount and reason under another key, and a crash
        session = db.session()
        bonus = services.request_bonus(session, Actor.system(), "A1", amount="0.50",
                                       reason="Careful work", key="week-2")
        session.commit()
        with pytest.raises(Crash):
            services.pay_bonus(session, Actor.system(), CrashAfterPaying(_client(app)), bonus)
        session.rollback()
        assert session.scalar(select(MTurkBonus.paid).where(MTurkBonus.id == bonus.id)) is False
    assert len(server.state.payments) == 2

    server.state.forget_tokens()  # 25 hours later: MTurk no longer knows the token
    retried = world.post("manager", url, json={**body, "key": "week-2"})
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["paid"] is True and retried.get_json()["attempts"] == 2
    assert len(server.state.payments) == 2 and len(server.calls("SendBonus")) == 2
    assert server.calls("ListBonusPayments")[0] == {"AssignmentId": "A1", "MaxResults": 100}

    # a third bonus whose intent was committed but whose SendBonus never left: paid on retry
    with app.app_context():
        session = db.session()
        services.request_bonus(session, Actor.system(), "A1", amount="0.50",
                               reason="Careful work", key="week-3")
        session.commit()
    third = world.post("manager", url, json={**body, "key": "week-3"})
    assert third.get_json()["paid"] is True and len(server.state.payments) == 3
    # the retries had to page through MTurk's list (two a page)
    assert any("NextToken" in call for call in server.calls("ListBonusPayments"))
    # and the stand-in would have paid twice: it really forgot the tokens
    assert _client(app).send_bonus(worker_id="W1", assignment_id="A1", amount=Decimal("0.50"),
                                   reason="Careful work",
                                   token=retried.get_json()["request_token"]) is True


def test_a_bonus_key_reused_for_another_reason_is_refused(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    page(world, hit_ids[0], "A1", "W1")
    url = "/api/v1/mturk/assignments/A1/bonus"
    assert world.post("manager", url, json={"amount": "0.50", "reason": "a", "key": "k"}).status_code == 200
    other = world.post("manager", url, json={"amount": "0.50", "reason": "b", "key": "k"})
    assert other.status_code == 409 and len(mturk["server"].state.payments) == 1


# --- 6. an MTurk answer that differs from the label our page stored ----------------------------


def test_a_differing_mturk_answer_is_recorded_not_counted(app, world, mturk, caplog):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    token = token_of(page(world, hit_ids[0], "A1", "W1"))
    assert world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"}).status_code == 200
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("negative"))
    with app.app_context(), caplog.at_level(logging.WARNING, logger="coordinator.mturk.services"):
        result = services.poll(db.session(), _client(app))
        db.session().commit()
        assert (result.recorded, result.discrepancies, result.invalid) == (0, 1, 0)
    run_consensus(app, mturk)
    with app.app_context():
        services.poll(db.session(), _client(app))
        db.session().commit()
        labels = db.session().scalars(select(Label)).all()
        assert [label.value for label in labels] == ["positive"]  # ours stands, MTurk's not counted
        assert db.session().scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "mturk.assignment.discrepancy")) == 1
    assert "MTurk's answer says 'negative'" in caplog.text
    shown = world.get("auditor", f"/api/v1/mturk/hits/{hit_ids[0]}")
    assert shown.status_code == 200, shown.get_json()
    body = shown.get_json()
    assert body["discrepancies"] == 1
    (assignment,) = body["assignments"]
    assert assignment["answer_label"] == "negative" and "positive" in assignment["problem"]
    assert assignment["status"] == "approved"  # reviewed on the stored label (gold policy)
    assert world.get("auditor", "/api/v1/mturk/hits/NOPE").status_code == 404


def test_a_matching_mturk_answer_is_no_discrepancy(app, world, mturk):  # noqa: F811
    hit_ids = publish(world, mturk).get_json()["created"]
    token = token_of(page(world, hit_ids[0], "A1", "W1"))
    world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"})
    mturk["server"].state.add_assignment(hit_ids[0], "A1", "W1", answer("positive"))
    with app.app_context():
        assert services.poll(db.session(), _client(app)).discrepancies == 0
        db.session().commit()
    (assignment,) = world.get("auditor", f"/api/v1/mturk/hits/{hit_ids[0]}").get_json()["assignments"]
    assert assignment["answer_label"] is None and assignment["problem"] is None


# --- 4. the poll as a job -----------------------------------------------------------------------


def test_the_poll_job_runs_the_poll_service(app, world, mturk):  # noqa: F811
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    token = token_of(page(world, hit_ids[0], "A1", "W1"))
    world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"})
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("positive"))
    assert jobs.run_job(app, "mturk_poll")["confirmed"] == 1
    run_consensus(app, mturk)
    app.config["JOBS_IN_PROCESS"] = "thread"
    with app.app_context():
        future = jobs.enqueue("mturk_poll")
    outcome = future.result(timeout=30)
    jobs.jobs(app).in_process.wait()
    assert (outcome["hits"], outcome["approved"], outcome["rejected"]) == (2, 1, 0)
    assert [a["AssignmentStatus"] for a in server.state.assignments[hit_ids[0]]] == ["Approved"]
    assert jobs.run_job(app, "mturk_poll") == 0  # a second run finds nothing new


def test_a_refused_batch_carries_its_numbers_as_fields(world, mturk):  # noqa: F811
    mturk["server"].state.balance = Decimal("0.50")
    body = publish(world, mturk).get_json()
    assert (body["balance"], body["cost"], body["rewards"], body["fees"], body["hits"]) == \
        ("0.50", "0.72", "0.60", "0.12", 2)
