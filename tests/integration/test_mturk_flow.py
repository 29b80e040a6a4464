"""MTurk as a workforce end to end: boto3 over HTTP to the local stand-in, our real database."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from coordinator import db
from coordinator.audit.services import Actor
from coordinator.dispatch.models import Assignment
from coordinator.labels.models import Label
from coordinator.mturk import services as mturk_services
from coordinator.mturk.models import MTurkAssignment, MTurkHit, MTurkHitSlot
from coordinator.mturk.services import poll
from coordinator.workforces import services as workforces
from integrations.mturk.client import BotoMTurk, ClientSettings, build_boto_client
from integrations.mturk.hits import PREVIEW_ASSIGNMENT_ID, WORKER_LOCALE
from tests.mturk_standin import running

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
PAGE_BASE = "https://coordinator.example"
SUBMIT_TO = "https://workersandbox.mturk.com"


def answer(label, locale="ar"):
    return (f'<QuestionFormAnswers xmlns="{NS}"><Answer><QuestionIdentifier>label</QuestionIdentifier>'
            f'<FreeText>{label}</FreeText></Answer><Answer><QuestionIdentifier>locale'
            f'</QuestionIdentifier><FreeText>{locale}</FreeText></Answer></QuestionFormAnswers>')


def _jsonl(*items):
    return ("\n".join(json.dumps(i) for i in items) + "\n").encode()


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with running(page_size=2) as (server, url):
        yield server, url


@pytest.fixture
def mturk(app, world, standin, monkeypatch):
    """An MTurk workforce, a project whose Arabic tasks only it can take, and its settings.

    HITs are made in task order here (publish shuffles them), so tests can name them.
    """
    server, url = standin
    monkeypatch.setattr(mturk_services, "_shuffled", lambda planned: planned)
    settings = ClientSettings(endpoint_url=url, attempts=3, backoff_base=0.001)
    app.extensions["coordinator.mturk_client"] = BotoMTurk(build_boto_client(settings), settings)
    app.config["MTURK_WORKER_PAGE_URL"] = PAGE_BASE
    with app.app_context():
        workforce = workforces.create_workforce(
            db.session(), Actor.system(), kind="mturk", name="MTurk", region="us",
            countries=["US", "CA"], languages=["ar", "en"], daily_capacity=10000,
            price_per_label=Decimal("0.05"), currency="USD", timezone="America/New_York")
        db.session().commit()
        workforce_id = workforce.id
    created = world.post("manager", "/api/v1/projects", json={
        "name": "Arabic sentiment", "label_classes": ["positive", "negative"],
        "source_locale": "en", "redundancy": 3, "residency_region": "global"})
    project_id = created.get_json()["id"]
    base = f"/api/v1/projects/{project_id}"
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": "# Guide\n\nLabel the sentiment.\n"})
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    imported = world.post("manager", f"{base}/tasks/import", data=_jsonl(
        {"external_id": "ar-1", "payload": {"text": "رائع"}, "languages": ["ar"]},
        {"external_id": "ar-2", "payload": {"text": "سيئ"}, "languages": ["ar"], "gold": "negative"},
    ), headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 200, imported.get_json()
    put = world.client.put(f"{base}/mturk/{workforce_id}", headers=world.headers("manager"), json={
        "reward": "0.10", "title": "Sentiment of a short Arabic text", "description": "Pick one label.",
        "places": ["US", "CA-QC"], "min_approval_rate": 95, "min_approved_hits": 100,
        "review_policy": "gold"})
    assert put.status_code == 200, put.get_json()
    dispatched = world.post("manager", f"{base}/dispatch", json={})
    assert dispatched.get_json()["by_workforce"] == {str(workforce_id): 6}, dispatched.get_json()
    return {"server": server, "project_id": project_id, "workforce_id": workforce_id,
            "publish": f"{base}/mturk/{workforce_id}/publish"}


def publish(world, mturk, **body):
    return world.post("manager", mturk["publish"], json=body)


def page(world, hit_id, assignment_id, worker_id, **headers):
    return world.client.get("/mturk/task", query_string={
        "hitId": hit_id, "assignmentId": assignment_id, "workerId": worker_id,
        "turkSubmitTo": SUBMIT_TO}, headers=headers)


def token_of(response):
    return re.search(r'data-token="([^"]+)"', response.get_data(as_text=True)).group(1)


def run_consensus(app, mturk):
    """Aggregate the project's counted labels, as a manager would before reviews go out."""
    from coordinator.consensus.services import run_consensus as run

    with app.app_context():
        run(db.session(), Actor.system(), mturk["project_id"])
        db.session().commit()


def test_publish_sends_requirements_exactly_and_caps_each_hit(world, mturk):
    response = publish(world, mturk)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert len(body["created"]) == 2 and body["failure"] is None
    server = mturk["server"]
    (hit_type,) = server.calls("CreateHITType")
    assert hit_type["Reward"] == "0.10"
    assert hit_type["QualificationRequirements"] == [
        {"QualificationTypeId": WORKER_LOCALE, "Comparator": "In",
         "LocaleValues": [{"Country": "US"}, {"Country": "CA", "Subdivision": "QC"}],
         "ActionsGuarded": "DiscoverPreviewAndAccept"},
        {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [95], "ActionsGuarded": "DiscoverPreviewAndAccept"},
        {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [100], "ActionsGuarded": "DiscoverPreviewAndAccept"}]
    hits = server.calls("CreateHITWithHITType")
    assert [h["MaxAssignments"] for h in hits] == [3, 3]
    assert all("<ExternalURL>https://coordinator.example/mturk/task</ExternalURL>" in h["Question"]
               and "رائع" not in h["Question"] for h in hits)  # the HIT carries no item data
    assert len({h["UniqueRequestToken"] for h in hits}) == 2
    # nothing left to publish: a second call creates nothing
    assert publish(world, mturk).get_json()["created"] == []


def test_a_batch_that_the_balance_cannot_pay_is_refused_with_the_numbers(world, mturk):
    mturk["server"].state.balance = Decimal("0.50")
    response = publish(world, mturk)
    assert response.status_code == 409
    detail = response.get_json()["detail"]
    # 6 assignments x 0.10 = 0.60 in rewards, 0.02 fee each = 0.12
    assert "0.50" in detail and "0.72" in detail and "0.60" in detail and "0.12" in detail
    assert mturk["server"].calls("CreateHITWithHITType") == []


def test_mturk_refusing_half_way_keeps_what_was_made_and_a_rerun_finishes(app, world, mturk):
    server = mturk["server"]
    server.inject("CreateHITWithHITType", "RequestError", 400, "Your account is suspended.", after=1)
    first = publish(world, mturk).get_json()
    assert len(first["created"]) == 1
    assert first["failure"]["code"] == "RequestError" and "suspended" in first["failure"]["message"]
    second = publish(world, mturk).get_json()
    assert len(second["created"]) == 1 and second["failure"] is None
    assert len(server.state.hits) == 2
    with app.app_context():
        assert len(db.session().scalars(select(MTurkHit)).all()) == 2


def test_a_lost_answer_to_create_hit_is_recovered_without_a_second_hit(app, world, mturk):
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    with app.app_context():  # as if we crashed after MTurk made the HIT, before our commit
        session = db.session()
        lost = session.scalar(select(MTurkHit).where(MTurkHit.hit_id == hit_ids[1]))
        session.execute(MTurkHitSlot.__table__.delete().where(MTurkHitSlot.hit_pk == lost.id))
        session.delete(lost)
        session.commit()
    again = publish(world, mturk).get_json()
    assert again["created"] == [hit_ids[1]]
    assert len(server.state.hits) == 2 and len(server.calls("CreateHITWithHITType")) == 3
    assert server.calls("GetHIT")[-1]["HITId"] == hit_ids[1]


def test_worker_page_item_label_poll_and_review(app, world, mturk):
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    preview = page(world, hit_ids[0], PREVIEW_ASSIGNMENT_ID, "")
    assert preview.status_code == 200 and 'id="preview"' in preview.get_data(as_text=True)
    assert "data-token" not in preview.get_data(as_text=True)

    shown = page(world, hit_ids[0], "A1", "W1")
    assert shown.status_code == 200
    token = token_of(shown)
    item = world.client.get("/mturk/item", query_string={"token": token})
    assert item.get_json()["payload"] == {"text": "رائع"}
    stored = world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"})
    assert stored.status_code == 200, stored.get_json()
    replayed = world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"})
    assert replayed.get_json() == stored.get_json()  # a replayed submit records nothing new

    # W2 on the second HIT (a gold task) answers wrongly; W3's answer XML is broken
    token2 = token_of(page(world, hit_ids[1], "A2", "W2"))
    assert world.client.post("/mturk/labels", json={
        "token": token2, "assignment_id": "A2", "label": "positive", "locale": "ar"}).status_code == 200
    page(world, hit_ids[1], "A3", "W3")
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("positive"))
    server.state.add_assignment(hit_ids[1], "A2", "W2", answer("positive"))
    server.state.add_assignment(hit_ids[1], "A3", "W3", "<QuestionFormAnswers><Answer>")
    with app.app_context():
        result = poll(db.session(), app.extensions["coordinator.mturk_client"])
        db.session().commit()
        # MTurk listed A1 and A2 with their workers: their page labels count now; nothing is
        # judged before a consensus run covers the task, gold or not
        assert (result.recorded, result.invalid, result.approved, result.rejected) == (0, 1, 0, 0)
        assert result.confirmed == 2
    run_consensus(app, mturk)
    with app.app_context():
        result = poll(db.session(), app.extensions["coordinator.mturk_client"])
        db.session().commit()
        assert (result.recorded, result.invalid, result.approved, result.rejected) == (0, 0, 1, 1)
        again = poll(db.session(), app.extensions["coordinator.mturk_client"])
        db.session().commit()
        assert (again.recorded, again.invalid, again.approved, again.rejected) == (0, 0, 0, 0)
        session = db.session()
        assert session.scalar(select(Label).where(Label.value == "positive").limit(1)) is not None
        assert len(session.scalars(select(Label)).all()) == 2  # the broken answer is not counted
        broken = session.scalar(select(MTurkAssignment).where(MTurkAssignment.mturk_assignment_id == "A3"))
        assert broken.status == "invalid" and broken.answer == "<QuestionFormAnswers><Answer>"
        assert "not XML" in broken.problem  # logged and kept, not lost
        states = dict(session.execute(select(Assignment.id, Assignment.status)).all())
        assert sorted(states.values()).count("accepted") == 1
        assert sorted(states.values()).count("rejected") == 1
    statuses = {a["AssignmentId"]: a for h in server.state.assignments.values() for a in h}
    assert statuses["A1"]["AssignmentStatus"] == "Approved"
    assert statuses["A2"]["AssignmentStatus"] == "Rejected"
    # the rejection of a gold answer neither names the expected answer nor says it was gold
    feedback = statuses["A2"]["RequesterFeedback"]
    assert "negative" not in feedback and "positive" not in feedback and "control" not in feedback
    # ... and is written in the language the worker's page was served in (Arabic here)
    assert feedback.startswith("لم تطابق إجابتك الإجابة المتوقعة")


def test_bad_input_on_the_worker_page(world, mturk):
    hit_ids = publish(world, mturk).get_json()["created"]
    token = token_of(page(world, hit_ids[0], "A1", "W1"))
    token_other = token_of(page(world, hit_ids[0], "A2", "W2"))
    # a label for an assignment that is not the token's
    stolen = world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A2", "label": "positive"})
    assert stolen.status_code == 403
    # someone else claiming A1 on the page
    assert page(world, hit_ids[0], "A1", "W9").status_code == 403
    # a label outside the classes changes nothing
    outside = world.client.post("/mturk/labels", json={
        "token": token_other, "assignment_id": "A2", "label": "ecstatic"})
    assert outside.status_code == 422 and "label" in outside.get_json()["errors"]
    # a forged token
    forged = world.client.post("/mturk/labels", json={
        "token": token[:-4] + "AAAA", "assignment_id": "A1", "label": "positive"})
    assert forged.status_code == 401
    # a replay with a different label is refused, the first label stands
    assert world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive"}).status_code == 200
    assert world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "negative"}).status_code == 409
    # an unknown HIT
    assert page(world, "NOPE", "A9", "W9").status_code == 404


def test_bonus_is_paid_once_and_validated(world, mturk):
    hit_ids = publish(world, mturk).get_json()["created"]
    page(world, hit_ids[0], "A1", "W1")
    url = "/api/v1/mturk/assignments/A1/bonus"
    body = {"amount": "0.50", "reason": "Careful work", "key": "week-1"}
    assert world.post("manager", url, json=body).status_code == 200
    assert world.post("manager", url, json=body).get_json()["paid"] is True
    assert len(mturk["server"].state.bonuses) == 1
    bad = world.post("manager", url, json={**body, "amount": "abc", "key": "k2"})
    assert bad.status_code == 422 and "amount" in bad.get_json()["errors"]
    assert mturk["server"].calls("SendBonus")[0]["BonusAmount"] == "0.50"


def test_reconcile_and_cleanup(app, world, mturk):
    server = mturk["server"]
    hit_ids = publish(world, mturk).get_json()["created"]
    stranger = server.state.create_hit(hit_type_id=next(iter(server.state.hit_types)),
                                       max_assignments=1, lifetime_seconds=60, question="q",
                                       token="x", annotation="x")["HITId"]
    del server.state.hits[hit_ids[1]]
    found = world.get("auditor", "/api/v1/mturk/reconcile").get_json()
    assert found["unknown"] == [stranger]
    assert found["not_live"] == [{"hit_id": hit_ids[1], "mturk_status": "missing"}]
    with app.app_context():
        from coordinator.mturk.services import cleanup

        session = db.session()
        first = session.scalar(select(MTurkHit).where(MTurkHit.hit_id == hit_ids[0]))
        for assignment in session.scalars(select(Assignment).where(Assignment.task_id == first.task_id)):
            assignment.status = "cancelled"
        session.commit()
        done = cleanup(session, Actor.system(), app.extensions["coordinator.mturk_client"])
        session.commit()
        assert done.expired == [hit_ids[0]] and hit_ids[0] in done.deleted
        assert hit_ids[1] not in done.deleted  # its work is still offered
    assert [c["HITId"] for c in server.calls("UpdateExpirationForHIT")][0] == hit_ids[0]
    assert hit_ids[0] not in server.state.hits
