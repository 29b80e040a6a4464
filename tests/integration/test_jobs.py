"""Background jobs against a real database: in process, by hand, and on a real Celery worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from coordinator import db, jobs
from coordinator.cli import main
from coordinator.dispatch.models import Assignment

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: A Redis database of its own, so the test leaves the others alone.
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/11"
GUIDE = "# Guide\n\nLabel the sentiment.\n"


def _jsonl(*items):
    return ("\n".join(json.dumps(i) for i in items) + "\n").encode()


@pytest.fixture
def overdue(app, world, project_id):
    """Two German tasks leased to Vendor EU whose leases ran out a minute ago; their ids."""
    base = f"/api/v1/projects/{project_id}"
    world.patch("manager", base, json={"allowed_regions": ["eu", "in"], "redundancy": 1})
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    imported = world.post("manager", f"{base}/tasks/import", data=_jsonl(
        {"external_id": "de-1", "payload": {"text": "gut"}, "languages": ["de"]},
        {"external_id": "de-2", "payload": {"text": "schlecht"}, "languages": ["de"]},
    ), headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 200, imported.get_json()
    assert world.post("manager", f"{base}/dispatch", json={}).status_code == 200
    leased = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 5})
    assert leased.status_code == 200, leased.get_json()
    ids = sorted(lease["assignment_id"] for lease in leased.get_json()["leases"])
    assert len(ids) == 2
    with app.app_context():
        session = db.session()
        session.execute(update(Assignment).where(Assignment.id.in_(ids)).values(
            lease_expires_at=db.utcnow() - timedelta(minutes=1)))
        session.commit()
    return ids


def _states(app, ids):
    """The state of each of ``ids`` and of the offers that replaced them."""
    with app.app_context():
        session = db.session()
        mine = dict(session.execute(
            select(Assignment.id, Assignment.status).where(Assignment.id.in_(ids))).all())
        fresh = dict(session.execute(
            select(Assignment.replaces_id, Assignment.status)
            .where(Assignment.replaces_id.in_(ids))).all())
    return mine, fresh


def _assert_expired(app, ids):
    mine, fresh = _states(app, ids)
    assert mine == dict.fromkeys(ids, "expired")
    assert fresh == dict.fromkeys(ids, "offered")


@pytest.fixture
def webhook_runs(monkeypatch):
    """Stand in for webhook delivery and count its runs (no vendor is called)."""
    runs = []
    monkeypatch.setitem(jobs.JOBS, "deliver_webhooks", lambda session: runs.append(1) or 0)
    return runs


def test_expire_leases_runs_in_process_then_delivers_webhooks(app, overdue, webhook_runs):
    app.config["JOBS_IN_PROCESS"] = "thread"
    with app.app_context():
        future = jobs.enqueue("expire_leases")
    assert future.result(timeout=30) == 2
    jobs.jobs(app).in_process.wait()  # the follow-up delivery it queued
    _assert_expired(app, overdue)
    assert webhook_runs == [1]
    with app.app_context():
        assert jobs.enqueue("expire_leases").result(timeout=30) == 0  # nothing left to do
    jobs.jobs(app).in_process.wait()
    assert webhook_runs == [1]


def test_dispatch_asks_for_webhook_delivery_after_its_commit(app, world, project_id,
                                                             webhook_runs):
    app.config["JOBS_IN_PROCESS"] = "inline"
    base = f"/api/v1/projects/{project_id}"
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    world.post("manager", f"{base}/guidelines/1/publish")
    world.post("manager", f"{base}/tasks/import", data=_jsonl(
        {"external_id": "de-1", "payload": {"text": "gut"}, "languages": ["de"]}),
        headers={"Content-Type": "application/x-ndjson"})
    dispatched = world.post("manager", f"{base}/dispatch", json={})
    assert dispatched.status_code == 200, dispatched.get_json()
    assert dispatched.get_json()["assignments_created"] > 0
    assert webhook_runs == [1]


def test_jobs_run_by_hand(app, database_url, overdue, webhook_runs):
    env = {"COORDINATOR_DATABASE_URL": database_url, "COORDINATOR_BROKER_URL": "",
           "COORDINATOR_INSTANCE_PATH": app.instance_path, "COORDINATOR_LOG_LEVEL": "warning",
           "COORDINATOR_JOBS_IN_PROCESS": "thread"}
    result = CliRunner().invoke(main, ["jobs", "run", "expire-leases"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "expire-leases: 2"
    _assert_expired(app, overdue)
    assert webhook_runs == [1]


def _redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_worker_expires_leases_through_redis(app, database_url, overdue, tmp_path):
    """`coordinator worker` on Redis takes the job from the broker and expires the leases."""
    if not _redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    assert database_url.startswith("sqlite:///")  # a file both processes open
    queue = f"test-{uuid.uuid4().hex[:12]}"  # no other run's worker takes this job
    env = {**os.environ, "COORDINATOR_DATABASE_URL": database_url,
           "COORDINATOR_BROKER_URL": REDIS_URL, "COORDINATOR_RESULT_BACKEND_URL": REDIS_URL,
           "COORDINATOR_INSTANCE_PATH": str(tmp_path / "worker"), "COORDINATOR_LOG_FORMAT": "text",
           "COORDINATOR_LOG_LEVEL": "info", "COORDINATOR_JOBS_IN_PROCESS": "off",
           "PYTHONUNBUFFERED": "1"}
    app.config.update(BROKER_URL=REDIS_URL, RESULT_BACKEND_URL=REDIS_URL)
    celery = jobs.celery_app(app)
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "worker", "--queues", queue,
             "--concurrency", "1", "--no-beat"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    result = None
    try:
        result = celery.send_task("coordinator.expire_leases", queue=queue)
        deadline = time.monotonic() + 40
        while not result.ready():
            if worker.poll() is not None:
                pytest.fail(f"the worker stopped ({worker.returncode}):\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no result within 40 s; worker log:\n{log_path.read_text()}")
            time.sleep(0.1)
        assert result.get(timeout=5) == 2
        result.forget()
    finally:
        _stop(worker)
        celery.close()
        follow_ups = _clean_redis(queue, parent_id=result.id if result else None)
    _assert_expired(app, overdue)
    assert follow_ups == ["coordinator.deliver_webhooks"]  # sent on to the default queue


def _clean_redis(queue: str, *, parent_id: str | None) -> list[str]:
    """Drop the test's queue and the jobs its job sent on; return the names of those jobs."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        sent_on = []
        for raw in client.lrange(jobs.DEFAULT_QUEUE, 0, -1):
            headers = json.loads(raw).get("headers", {})
            if headers.get("parent_id") == parent_id:
                sent_on.append(headers["task"])
                client.lrem(jobs.DEFAULT_QUEUE, 1, raw)
        return sent_on
    finally:
        client.close()


def _stop(worker: subprocess.Popen) -> None:
    """Warm shutdown, then kill the whole process group (the pool's children too)."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(worker.pid, signal.SIGKILL)  # whatever is left of the group
    except ProcessLookupError:
        pass
    worker.wait(timeout=10)
