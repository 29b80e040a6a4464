"""FakeMTurk and the HTTP stand-in give the services the same answers for publish and poll.

The same flow runs twice: once on ``FakeMTurk`` called in process (no HTTP at all), once
through boto3 to the stand-in; every expectation is shared, so the fake cannot drift.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from botocore import xform_name
from sqlalchemy import select

from coordinator import db
from coordinator.audit.services import Actor
from coordinator.dispatch.models import Assignment
from coordinator.labels.models import Label
from coordinator.mturk import services
from coordinator.mturk.models import MTurkAssignment, MTurkHit
from integrations.mturk.client import MTurkError
from integrations.mturk.fake import FakeMTurk
from integrations.mturk.hits import external_question
from tests.integration.test_mturk_flow import (  # noqa: F401
    PAGE_BASE,
    answer,
    mturk,
    run_consensus,
    standin,
)

#: The calls that change something on MTurk, in order, under both clients' names.
CHANGES = ["create_hit_type", "create_hit_with_hit_type", "create_hit_with_hit_type",
           "approve_assignment", "reject_assignment"]


def _snake(name):
    return xform_name(name)  # boto3's own method names: CreateHITWithHITType -> create_hit_with_hit_type


@pytest.fixture(params=["fake", "standin"])
def side(request, app, mturk):  # noqa: F811
    """(client, state, names of the calls made so far) for one of the two MTurks."""
    if request.param == "fake":
        fake = FakeMTurk()
        app.extensions["coordinator.mturk_client"] = fake
        return fake, fake, lambda: list(fake.calls)
    server = mturk["server"]
    return (app.extensions["coordinator.mturk_client"], server.state,
            lambda: [_snake(name) for name, _ in server.requests])


def test_publish_and_poll_behave_alike(app, mturk, side):  # noqa: F811
    client, state, calls = side
    assert _snake("CreateHITWithHITType") == "create_hit_with_hit_type"
    with app.app_context():
        session = db.session()
        published = services.publish(session, Actor.system(), client, mturk["project_id"],
                                     mturk["workforce_id"], page_url=PAGE_BASE + "/mturk/task")
        session.commit()
        assert (len(published.created), published.planned, str(published.cost)) == (2, 2, "0.72")
        hits = session.scalars(select(MTurkHit).order_by(MTurkHit.id)).all()
        assert [h.max_assignments for h in hits] == [3, 3]
        assert all(h.expires_at.tzinfo is not None for h in hits)
        assert set(state.hits) == {h.hit_id for h in hits}
        again = services.publish(session, Actor.system(), client, mturk["project_id"],
                                 mturk["workforce_id"], page_url=PAGE_BASE + "/mturk/task")
        assert again.created == [] and again.planned == 0

        # W1 labels the plain task through our page; W2 answers the gold task wrongly
        first = services.bind(session, hits[0], "A1", "W1")
        services.record_label(session, first, "positive", "ar")
        second = services.bind(session, hits[1], "A2", "W2")
        services.record_label(session, second, "positive", "ar")
        session.commit()
    state.add_assignment(hits[0].hit_id, "A1", "W1", answer("positive"))
    state.add_assignment(hits[1].hit_id, "A2", "W2", answer("positive"))
    state.add_assignment(hits[1].hit_id, "A3", "W3", "<broken")
    with app.app_context():
        session = db.session()
        result = services.poll(session, client)
        session.commit()
        assert (result.hits, result.recorded, result.invalid, result.confirmed, result.approved,
                result.discrepancies, result.errors) == (2, 0, 1, 2, 0, 0, [])
    run_consensus(app, mturk)
    with app.app_context():
        session = db.session()
        result = services.poll(session, client)
        session.commit()
        assert (result.hits, result.recorded, result.invalid, result.approved, result.rejected,
                result.discrepancies, result.errors) == (2, 0, 0, 1, 1, 0, [])
        assert services.poll(session, client).approved == 0  # idempotent
        states = {a.mturk_assignment_id: a.status for a in session.scalars(select(MTurkAssignment))}
        assert states == {"A1": "approved", "A2": "rejected", "A3": "invalid"}
        assert len(session.scalars(select(Label)).all()) == 2
        assert sorted(session.scalars(select(Assignment.status).where(
            Assignment.status.in_(("accepted", "rejected"))))) == ["accepted", "rejected"]
    assert {a["AssignmentId"]: a["AssignmentStatus"] for h in state.assignments.values()
            for a in h} == {"A1": "Approved", "A2": "Rejected", "A3": "Submitted"}
    assert [c for c in calls() if c in set(CHANGES)] == CHANGES


def test_a_repeated_request_token_is_refused_by_both_and_publish_finds_the_first_hit(app, mturk, side):  # noqa: F811
    client, state, calls = side
    type_id = client.create_hit_type(Reward=Decimal("0.05"), Title="t", Description="d", Keywords="",
                                     AssignmentDurationInSeconds=600,
                                     AutoApprovalDelayInSeconds=600, QualificationRequirements=[])
    args = dict(hit_type_id=type_id, max_assignments=2, lifetime_seconds=600,
                question=external_question("https://e.org/t"), token="tok-9", annotation="tok-9")
    first = client.create_hit(**args)
    with pytest.raises(MTurkError) as caught:  # as MTurk: a second HIT is never made
        client.create_hit(**args)
    assert caught.value.already_done and first["HITId"] in caught.value.message
    found = services.create_or_find_hit(client, **args)
    assert found["HITId"] == first["HITId"] and len(state.hits) == 1
