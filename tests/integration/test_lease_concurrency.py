"""Concurrency: pullers never share an assignment; retries racing with one key store labels once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from coordinator import db
from coordinator.dispatch.models import Assignment
from coordinator.labels.models import Label

pytestmark = pytest.mark.postgres_only

THREADS = 12
TASKS = 150
GUIDE = "# Guide\n\nLabel the sentiment.\n"


def _prepare(world, project_id: int) -> int:
    """Dispatch ``TASKS`` German tasks at redundancy 3, all to Vendor EU; return how many."""
    base = f"/api/v1/projects/{project_id}"
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    lines = "\n".join(json.dumps({"external_id": f"t-{n}", "payload": {"text": f"Text {n}"},
                                  "languages": ["de"]}) for n in range(TASKS))
    imported = world.post("manager", f"{base}/tasks/import", data=(lines + "\n").encode(),
                          headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 200, imported.get_json()
    dispatched = world.post("manager", f"{base}/dispatch", json={})
    assert dispatched.status_code == 200, dispatched.get_json()
    return dispatched.get_json()["assignments_created"]


def _pull_concurrently(app, world, limits: list[int]) -> list[list[list[int]]]:
    """Each thread, with its own client, leases ``limit`` at a time until it gets nothing."""
    headers = world.headers("vendor_eu")
    start = threading.Barrier(len(limits))
    pulled: list[list[list[int]]] = [[] for _ in limits]
    failures: list[Any] = []

    def pull(index: int) -> None:
        client = app.test_client()
        try:
            start.wait(timeout=10)
            while True:
                response = client.post("/api/v1/vendor/leases", json={"limit": limits[index]},
                                       headers=headers)
                if response.status_code != 200:
                    failures.append(response.get_json())
                    return
                ids = [item["assignment_id"] for item in response.get_json()["leases"]]
                if not ids:
                    return
                pulled[index].append(ids)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=pull, args=(index,)) for index in range(len(limits))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a puller never finished"
    assert not failures, failures
    return pulled


def _statuses(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session().execute(
            select(Assignment.status, func.count()).group_by(Assignment.status)).all())


def test_concurrent_pulls_never_hand_out_an_assignment_twice(app, world, project_id):
    offered = _prepare(world, project_id)
    assert offered == 3 * TASKS
    limits = [1, 3, 7, 10, 25, 50] * (THREADS // 6)
    pulled = _pull_concurrently(app, world, limits)

    handed_out = Counter(i for batches in pulled for batch in batches for i in batch)
    assert max(handed_out.values()) == 1, [i for i, n in handed_out.items() if n > 1]
    assert sum(handed_out.values()) == offered
    for limit, batches in zip(limits, pulled):
        assert all(1 <= len(batch) <= limit for batch in batches)
    assert sum(1 for batches in pulled if batches) > 1, "one thread took everything"
    assert _statuses(app) == {"leased": offered}
    with app.app_context():
        leased = set(db.session().scalars(select(Assignment.id)))
    assert leased == set(handed_out)


def test_concurrent_pulls_of_one_at_a_time(app, world, project_id):
    offered = _prepare(world, project_id)
    pulled = _pull_concurrently(app, world, [1] * THREADS)
    handed_out = Counter(i for batches in pulled for batch in batches for i in batch)
    assert len(handed_out) == sum(handed_out.values()) == offered


def test_concurrent_retries_with_one_key_store_the_labels_once(app, world, project_id):
    _prepare(world, project_id)
    leases = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 200}).get_json()["leases"]
    labels = [{"assignment_id": item["assignment_id"], "worker_id": f"w{n}", "label": "positive"}
              for n, item in enumerate(leases)]
    headers = world.headers("vendor_eu", **{"Idempotency-Key": "retried"})
    start = threading.Barrier(6)
    responses: list[Any] = [None] * 6

    def post(index: int) -> None:
        start.wait(timeout=10)
        responses[index] = app.test_client().post("/api/v1/vendor/labels", json={"labels": labels},
                                                  headers=headers)

    threads = [threading.Thread(target=post, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [r.status_code for r in responses] == [200] * 6, [r.get_json() for r in responses]
    assert sorted(r.headers["Idempotent-Replayed"] for r in responses) == ["false"] + ["true"] * 5
    assert all(r.get_json() == responses[0].get_json() for r in responses)
    assert responses[0].get_json()["created"] == len(labels)
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Label)) == len(labels)


def _post_concurrently(app, world, bodies: list[Any], keys: list[str]) -> list[Any]:
    """Post each body with its key from its own thread, all released at once."""
    start = threading.Barrier(len(bodies))
    responses: list[Any] = [None] * len(bodies)

    def post(index: int) -> None:
        start.wait(timeout=10)
        responses[index] = app.test_client().post(
            "/api/v1/vendor/labels", json=bodies[index],
            headers=world.headers("vendor_eu", **{"Idempotency-Key": keys[index]}))

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r is not None and r.status_code == 200 for r in responses), responses
    return responses


def test_racing_submissions_with_different_keys_label_each_assignment_once(app, world, project_id):
    _prepare(world, project_id)
    leases = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 100}).get_json()["leases"]
    ids = [item["assignment_id"] for item in leases]
    # Four vendor clients send overlapping halves of the same work, each under its own key.
    bodies = [{"labels": [{"assignment_id": i, "worker_id": f"client{n}-{i}", "label": "positive"}
                          for i in (ids[:60] if n % 2 else ids[40:])]} for n in range(4)]
    responses = _post_concurrently(app, world, bodies, [f"client-{n}" for n in range(4)])
    created = Counter(item["index"] for r in responses for item in r.get_json()["results"]
                      if item["status"] == "created")
    assert sum(created.values()) == len(ids)
    refused = {item["error"]["code"] for r in responses for item in r.get_json()["results"]
               if item["status"] == "error"}
    assert refused <= {"conflict", "already_submitted"}, refused
    with app.app_context():
        session = db.session()
        per_assignment = Counter(session.scalars(select(Label.assignment_id)))
        assert sorted(per_assignment) == sorted(ids) and set(per_assignment.values()) == {1}
        assert session.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.status == "submitted")) == len(ids)


def test_racing_corrections_of_one_label_keep_one(app, world, project_id):
    _prepare(world, project_id)
    lease = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 1}).get_json()["leases"][0]
    first = world.post("vendor_eu", "/api/v1/vendor/labels", headers={"Idempotency-Key": "orig"},
                       json={"labels": [{"assignment_id": lease["assignment_id"], "worker_id": "w",
                                         "label": "positive"}]}).get_json()
    original = first["results"][0]["label_id"]
    bodies = [{"labels": [{"assignment_id": lease["assignment_id"], "worker_id": "w",
                           "label": value, "supersedes": original}]}
              for value in ("negative", "neutral", "negative", "neutral")]
    responses = _post_concurrently(app, world, bodies, [f"fix-{n}" for n in range(4)])
    outcomes = Counter(r.get_json()["results"][0]["status"] for r in responses)
    assert outcomes == {"created": 1, "error": 3}
    with app.app_context():
        counted = db.session().scalars(select(Label.value).where(
            Label.assignment_id == lease["assignment_id"], Label.counted.is_(True))).all()
        assert len(counted) == 1 and counted[0] in {"negative", "neutral"}
