"""Concurrent bulk imports into one project: the project row lock serialises them."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import select

from coordinator import db
from coordinator.projects.models import Task

pytestmark = pytest.mark.postgres_only

JSONL = "application/x-ndjson"
TEXTS = ["Très bien, merci.", "Sehr gut verpackt.", "配達が遅れました。", "डिलीवरी देर से आई।",
         "Muy buena atención.", "Доставка вовремя."]


def body(numbers: Iterable[int], *, variant: str = "") -> bytes:
    """Return a JSON-lines body with one task per number; ``variant`` changes every payload."""
    lines = []
    for number in numbers:
        payload = {"text": TEXTS[number % len(TEXTS)] + variant}
        if number % 7:  # every seventh task repeats a payload, for the duplicate report
            payload["n"] = number
        lines.append(json.dumps({
            "external_id": f"t-{number}",
            "payload": payload,
            "languages": ["en"],
            "gold": "positive" if number % 10 == 0 else None,
        }, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def import_concurrently(app, world, project_id: int, bodies: list[bytes]) -> list[Any]:
    """Post every body at once from its own thread and client; return the responses in order."""
    url = f"/api/v1/projects/{project_id}/tasks/import"
    headers = world.headers("manager", **{"Content-Type": JSONL})
    start = threading.Barrier(len(bodies))
    responses: list[Any] = [None] * len(bodies)
    failures: list[BaseException] = []

    def post(index: int) -> None:
        client = app.test_client()
        try:
            start.wait(timeout=10)
            responses[index] = client.post(url, data=bodies[index], headers=headers)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert all(response is not None for response in responses), "a request never finished"
    return responses


def stored_tasks(app, project_id: int) -> list[tuple[str, dict]]:
    """Return (external_id, payload) of every task the project holds."""
    with app.app_context():
        return list(db.session().execute(
            select(Task.external_id, Task.payload).where(Task.project_id == project_id)))


def assert_all_ok(responses: list[Any]) -> list[dict]:
    """Assert every response is 200 and return their JSON documents."""
    assert [response.status_code for response in responses] == [200] * len(responses), [
        response.get_json() for response in responses]
    return [response.get_json() for response in responses]


def test_identical_concurrent_imports_store_each_task_once(app, world, project_id):
    documents = assert_all_ok(import_concurrently(app, world, project_id, [body(range(1, 301))] * 6))
    assert sum(document["created"] for document in documents) == 300
    assert sorted(document["created"] for document in documents) == [0] * 5 + [300]
    assert all(document["created"] + document["unchanged"] == 300 for document in documents)
    external_ids = [external_id for external_id, _ in stored_tasks(app, project_id)]
    assert len(external_ids) == len(set(external_ids)) == 300


def test_identical_concurrent_imports_report_the_same_duplicates(app, world, project_id):
    documents = assert_all_ok(import_concurrently(app, world, project_id, [body(range(1, 101))] * 4))
    reports = [document["duplicates"] for document in documents]
    assert reports[0], "the body repeats payloads"
    assert all(report == reports[0] for report in reports)


def test_overlapping_concurrent_imports_store_the_union_once(app, world, project_id):
    ranges = [range(1, 201), range(101, 301), range(251, 401), range(1, 401), range(351, 451)]
    documents = assert_all_ok(
        import_concurrently(app, world, project_id, [body(numbers) for numbers in ranges]))
    distinct = set().union(*(set(numbers) for numbers in ranges))
    assert sum(document["created"] for document in documents) == len(distinct)
    for numbers, document in zip(ranges, documents):
        assert document["received"] == len(numbers)
        assert document["created"] + document["unchanged"] == len(numbers)
    external_ids = Counter(external_id for external_id, _ in stored_tasks(app, project_id))
    assert max(external_ids.values()) == 1
    assert set(external_ids) == {f"t-{number}" for number in distinct}


def test_conflicting_concurrent_imports_keep_one_whole_body(app, world, project_id):
    bodies = [body(range(1, 201), variant=" (A)"), body(range(1, 201), variant=" (B)")]
    responses = import_concurrently(app, world, project_id, bodies)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 422], [response.get_json() for response in responses]
    winner = " (A)" if responses[0].status_code == 200 else " (B)"
    payloads = [payload for _, payload in stored_tasks(app, project_id)]
    assert len(payloads) == 200
    assert all(payload["text"].endswith(winner) for payload in payloads), "bodies were mixed"
