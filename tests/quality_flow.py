"""Steps shared by the quality tests: a project, its tasks, leases, labels, runs and rounds."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

GUIDE = "# Guide\n\nLabel the sentiment.\n"
_keys = count()


def prepare(world: Any, project_id: int, tasks: list[dict[str, Any]], **settings: Any) -> str:
    """Apply ``settings``, publish a guideline and import ``tasks``; return the project's URL."""
    base = f"/api/v1/projects/{project_id}"
    if settings:
        patched = world.patch("manager", base, json=settings)
        assert patched.status_code == 200, patched.get_json()
    created = world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    assert created.status_code == 201, created.get_json()
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    import_tasks(world, base, tasks)
    return base


def import_tasks(world: Any, base: str, tasks: list[dict[str, Any]]) -> None:
    body = ("\n".join(json.dumps(t) for t in tasks) + "\n").encode()
    imported = world.post("manager", f"{base}/tasks/import", data=body,
                          headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 200, imported.get_json()


def task(external_id: str, gold: str | None = None, language: str = "en") -> dict[str, Any]:
    row: dict[str, Any] = {"external_id": external_id, "payload": {"text": f"text {external_id}"},
                           "languages": [language]}
    if gold is not None:
        row["gold"] = gold
    return row


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def dispatch(world: Any, base: str) -> dict[str, Any]:
    return ok(world.post("manager", f"{base}/dispatch", json={}))


def lease(world: Any, who: str, limit: int = 500) -> list[dict[str, Any]]:
    return ok(world.post(who, "/api/v1/vendor/leases", json={"limit": limit}))["leases"]


def submit(world: Any, who: str, labels: list[tuple[int, str, str]]) -> dict[str, Any]:
    """Send (assignment id, worker, label) labels; return the answer."""
    body = {"labels": [{"assignment_id": a, "worker_id": w, "label": v} for a, w, v in labels]}
    return ok(world.post(who, "/api/v1/vendor/labels", json=body,
                         headers={"Idempotency-Key": f"quality-{next(_keys)}"}))


def codes(answer: dict[str, Any]) -> list[str]:
    return [r["error"]["code"] if r["status"] == "error" else r["status"] for r in answer["results"]]


def consensus(world: Any, base: str, method: str = "dawid_skene") -> dict[str, Any]:
    response = world.post("manager", f"{base}/consensus", json={"method": method})
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()


def quality_round(world: Any, base: str, **body: Any) -> dict[str, Any]:
    return ok(world.post("manager", f"{base}/quality/rounds", json=body))


def label_by_task(world: Any, who: str, leases: list[dict[str, Any]],
                  answer: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Label each leased task named in ``answer`` (external id -> (worker, label)) once."""
    rows, done = [], set()
    for leased in leases:
        key = leased["task"]["external_id"]
        if key in answer and key not in done:
            rows.append((leased["assignment_id"], *answer[key]))
            done.add(key)
    return submit(world, who, rows)
