"""The whole path from dispatch to labels, through the HTTP API."""

from __future__ import annotations

import json

import pytest

GUIDE = "# Guide\n\nLabel the sentiment.\n"


def _jsonl(*items):
    return ("\n".join(json.dumps(i) for i in items) + "\n").encode()


@pytest.fixture
def ready(world, project_id):
    """A project with a published guideline and three tasks: two in German, one in Hindi."""
    base = f"/api/v1/projects/{project_id}"
    world.patch("manager", base, json={"allowed_regions": ["eu", "in"], "redundancy": 1})
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    response = world.post("manager", f"{base}/tasks/import", data=_jsonl(
        {"external_id": "de-1", "payload": {"text": "gut"}, "languages": ["de"]},
        {"external_id": "de-2", "payload": {"text": "schlecht"}, "languages": ["de"]},
        {"external_id": "hi-1", "payload": {"text": "अच्छा"}, "languages": ["hi"]},
    ), headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.get_json()
    return base


def test_dispatch_lease_submit_retry_progress_and_explain(world, ready):
    run = world.post("manager", f"{ready}/dispatch", json={})
    assert run.status_code == 200, run.get_json()
    body = run.get_json()
    eu, india = str(world.workforce_ids["vendor_eu"]), str(world.workforce_ids["vendor_in"])
    assert body["assignments_created"] == 3 and body["by_workforce"] == {eu: 2, india: 1}
    assert body["unroutable"] == 0

    leased = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 5})
    assert leased.status_code == 200, leased.get_json()
    leases = leased.get_json()["leases"]
    assert sorted(l["task"]["external_id"] for l in leases) == ["de-1", "de-2"]
    guide = leased.get_json()["guidelines"][leases[0]["guideline"]]
    assert guide["served_locale"] == "en" and guide["fallback"] is True

    labels = [{"assignment_id": l["assignment_id"], "worker_id": f"w{i}", "label": "positive"}
              for i, l in enumerate(leases)]
    labels.append({"assignment_id": leases[0]["assignment_id"], "worker_id": "w9", "label": "meh"})
    headers = {"Idempotency-Key": "batch-1"}
    first = world.post("vendor_eu", "/api/v1/vendor/labels", json={"labels": labels}, headers=headers)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["created"] == 2 and first.get_json()["errors"] == 1
    assert first.get_json()["results"][2]["error"]["code"] == "invalid_label"
    again = world.post("vendor_eu", "/api/v1/vendor/labels", json={"labels": labels}, headers=headers)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"

    progress = world.get("auditor", f"{ready}/progress").get_json()
    by_name = {w["name"]: w for w in progress["workforces"]}
    assert by_name["Vendor EU"]["submitted"] == 2 and by_name["Vendor IN"]["offered"] == 1
    assert by_name["Vendor EU"]["cost"] == "0.1000"

    task_id = world.get("auditor", f"{ready}/tasks").get_json()[0]["id"]
    explained = world.get("auditor", f"{ready}/tasks/{task_id}/routing").get_json()
    candidates = {c["name"]: c for c in explained[0]["candidates"]}
    assert candidates["Vendor EU"]["chosen"] is True
    assert candidates["Vendor IN"]["eligible"] is False
    assert "de" in candidates["Vendor IN"]["reasons"][0]
