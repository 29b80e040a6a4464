"""``coordinator mturk ...`` and ``coordinator jobs run mturk-poll`` against the stand-in."""

from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from coordinator import db
from coordinator.cli import main
from coordinator.dispatch.models import Assignment, Worker
from coordinator.labels.models import Label
from coordinator.mturk.models import MTurkHit
from coordinator.quality.models import WorkerBlock
from tests.integration.test_mturk_flow import (  # noqa: F401 (fixtures)
    PAGE_BASE,
    answer,
    mturk,
    page,
    run_consensus,
    standin,
    token_of,
)


@pytest.fixture
def cli(app, database_url, standin):  # noqa: F811
    """Run the command as a separate app would: settings from the environment only."""
    _, url = standin
    env = {"COORDINATOR_DATABASE_URL": database_url, "COORDINATOR_BROKER_URL": "",
           "COORDINATOR_INSTANCE_PATH": app.instance_path, "COORDINATOR_LOG_LEVEL": "warning",
           "COORDINATOR_JOBS_IN_PROCESS": "off", "COORDINATOR_MTURK_ENDPOINT_URL": url,
           "COORDINATOR_MTURK_RETRY_ATTEMPTS": "2", "COORDINATOR_MTURK_BACKOFF_MS": "1",
           "COORDINATOR_MTURK_WORKER_PAGE_URL": PAGE_BASE}

    def invoke(*args):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_publish_poll_cleanup_through_the_command(app, world, mturk, cli):  # noqa: F811
    server = mturk["server"]
    args = ("mturk", "publish", "--project", str(mturk["project_id"]),
            "--workforce", str(mturk["workforce_id"]))
    published = cli(*args)
    assert published.exit_code == 0, published.output
    assert "created 2 HIT(s) of 2 planned" in published.output and "cost 0.72 USD" in published.output
    hit_ids = list(server.state.hits)
    assert len(hit_ids) == 2
    assert all(PAGE_BASE + "/mturk/task" in h["Question"] for h in server.calls("CreateHITWithHITType"))

    token = token_of(page(world, hit_ids[0], "A1", "W1"))
    world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"})
    server.state.add_assignment(hit_ids[0], "A1", "W1", answer("negative"))
    polled = cli("mturk", "poll")
    assert polled.exit_code == 0, polled.output
    assert ("2 HIT(s) polled: 0 label(s) recorded, 1 confirmed, 0 not counted, 0 approved, "
            "0 rejected, 1 answer(s) differing from the stored label, 0 decided on MTurk, "
            "0 slot(s) released") in polled.output
    run_consensus(app, mturk)
    polled = cli("mturk", "poll")
    assert "1 approved" in polled.output, polled.output
    with app.app_context():
        assert [label.value for label in db.session().scalars(select(Label))] == ["positive"]

    with app.app_context():
        session = db.session()
        second = session.scalar(select(MTurkHit).where(MTurkHit.hit_id == hit_ids[1]))
        for assignment in session.scalars(select(Assignment).where(Assignment.task_id == second.task_id)):
            assignment.status = "cancelled"
        session.commit()
    cleaned = cli("mturk", "cleanup")
    assert cleaned.exit_code == 0, cleaned.output
    assert "expired 1, deleted 1, kept 0" in cleaned.output
    assert hit_ids[1] not in server.state.hits


def test_publish_refused_by_the_balance_exits_with_the_numbers(mturk, cli):  # noqa: F811
    mturk["server"].state.balance = Decimal("0.50")
    refused = cli("mturk", "publish", "--project", str(mturk["project_id"]),
                  "--workforce", str(mturk["workforce_id"]))
    assert refused.exit_code == 1 and "0.50" in refused.output and "0.72" in refused.output
    assert mturk["server"].calls("CreateHITWithHITType") == []


def test_publish_stopped_half_way_says_to_run_again(mturk, cli):  # noqa: F811
    server = mturk["server"]
    server.inject("CreateHITWithHITType", "RequestError", 400, "Your account is suspended.", after=1)
    args = ("mturk", "publish", "--project", str(mturk["project_id"]),
            "--workforce", str(mturk["workforce_id"]))
    first = cli(*args)
    assert first.exit_code == 1 and "created 1 HIT(s)" in first.output
    assert "suspended" in first.output and "run the command again" in first.output
    second = cli(*args)
    assert second.exit_code == 0 and "created 1 HIT(s) of 1 planned" in second.output
    assert len(server.state.hits) == 2


def test_reconcile_lists_unknown_and_no_longer_live_hits(world, mturk, cli):  # noqa: F811
    server = mturk["server"]
    assert cli("mturk", "publish", "--project", str(mturk["project_id"]),
               "--workforce", str(mturk["workforce_id"])).exit_code == 0
    hit_ids = list(server.state.hits)
    agreed = cli("mturk", "reconcile")
    assert agreed.exit_code == 0 and "MTurk and we agree." in agreed.output
    stranger = server.state.create_hit(hit_type_id=next(iter(server.state.hit_types)),
                                       max_assignments=1, lifetime_seconds=60, question="q",
                                       token="x", annotation="x")["HITId"]
    del server.state.hits[hit_ids[1]]
    found = cli("mturk", "reconcile")
    assert found.exit_code == 1
    lines = found.output.splitlines()
    assert f"unknown to us: {stranger}" in lines
    assert f"not live on MTurk: {hit_ids[1]} (missing)" in lines
    assert not any(hit_ids[0] in line for line in lines)
    assert len(server.calls("ListHITs")) >= 2  # paged (two a page, three HITs)


def test_sync_qualification_command(app, world, mturk, cli):  # noqa: F811
    url = f"/api/v1/projects/{mturk['project_id']}/mturk/{mturk['workforce_id']}"
    world.client.put(url, headers=world.headers("manager"),
                     json={"block_qualification_type_id": "3BLOCK"})
    with app.app_context():
        session = db.session()
        session.add(Worker(workforce_id=mturk["workforce_id"], external_id="W1"))
        bad = Worker(workforce_id=mturk["workforce_id"], external_id="W2")
        session.add(bad)
        session.flush()
        session.add(WorkerBlock(project_id=mturk["project_id"], worker_id=bad.id,
                                workforce_id=mturk["workforce_id"], gold_answers=10,
                                gold_correct=3, accuracy=0.3, floor=0.7, blocked_at=db.utcnow()))
        session.commit()
    synced = cli("mturk", "sync-qualification", "--workforce", str(mturk["workforce_id"]))
    assert synced.exit_code == 0 and "blocked 1, unblocked 0" in synced.output
    assert "blocked: W2" in synced.output.splitlines()
    assert mturk["server"].state.qualifications["3BLOCK"] == {"W2": 1}
    missing = cli("mturk", "sync-qualification", "--workforce", "999")
    assert missing.exit_code == 1 and "999" in missing.output


def test_the_poll_job_run_by_hand(app, world, mturk, cli):  # noqa: F811
    server = mturk["server"]
    cli("mturk", "publish", "--project", str(mturk["project_id"]), "--workforce", str(mturk["workforce_id"]))
    hit_id = next(iter(server.state.hits))
    token = token_of(page(world, hit_id, "A1", "W1"))
    world.client.post("/mturk/labels", json={
        "token": token, "assignment_id": "A1", "label": "positive", "locale": "ar"})
    server.state.add_assignment(hit_id, "A1", "W1", answer("positive"))
    ran = cli("jobs", "run", "mturk-poll")
    assert ran.exit_code == 0, ran.output
    assert "'confirmed': 1" in ran.output and "'approved': 0" in ran.output
    run_consensus(app, mturk)
    ran = cli("jobs", "run", "mturk-poll")
    assert "'approved': 1" in ran.output, ran.output
    assert server.state.assignments[hit_id][0]["AssignmentStatus"] == "Approved"
