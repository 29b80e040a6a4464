"""A vendor token sees and touches its own workforce and tokens, and nothing else."""

from __future__ import annotations

import json
from typing import Any

from coordinator.errors import PROBLEM_JSON

TASK_LINE = b'{"external_id": "t1", "payload": {"text": "hello"}}\n'


def _token_id(world: Any, who: str) -> int:
    """Return the id of the token ``who`` calls with."""
    return world.get(who, "/api/v1/me").get_json()["token_id"]


def _assert_problem(response: Any, status: int) -> None:
    """Check a problem+json response with ``status``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON


def test_workforce_list_holds_only_the_vendors_own(world):
    for vendor in ("vendor_eu", "vendor_in"):
        response = world.get(vendor, "/api/v1/workforces")
        assert response.status_code == 200
        assert [item["id"] for item in response.get_json()] == [world.workforce_ids[vendor]]
        # The count must be scoped too, or the header leaks how many workforces exist.
        assert json.loads(response.headers["X-Pagination"])["total"] == 1


def test_managers_see_every_workforce(world):
    listed = world.get("manager", "/api/v1/workforces").get_json()
    assert {item["id"] for item in listed} == set(world.workforce_ids.values())


def test_vendor_reads_its_own_workforce(world):
    own = world.workforce_ids["vendor_eu"]
    response = world.get("vendor_eu", f"/api/v1/workforces/{own}")
    assert response.status_code == 200
    assert response.get_json()["name"] == "Vendor EU"


def test_other_vendors_workforce_is_404_like_a_missing_one(world):
    other = world.workforce_ids["vendor_in"]
    hidden = world.get("vendor_eu", f"/api/v1/workforces/{other}")
    missing = world.get("vendor_eu", "/api/v1/workforces/999999")
    _assert_problem(hidden, 404)
    _assert_problem(missing, 404)
    # Same shape for both, so a vendor cannot probe which ids exist.
    assert hidden.get_json()["title"] == missing.get_json()["title"]
    assert "Vendor IN" not in hidden.get_data(as_text=True)


def test_vendor_may_not_patch_any_workforce(world):
    for workforce_id in world.workforce_ids.values():
        response = world.patch("vendor_eu", f"/api/v1/workforces/{workforce_id}",
                               json={"daily_capacity": 1})
        _assert_problem(response, 403)
        stored = world.get("manager", f"/api/v1/workforces/{workforce_id}").get_json()
        assert stored["daily_capacity"] != 1


def test_vendor_may_not_create_a_workforce(world):
    _assert_problem(world.post("vendor_eu", "/api/v1/workforces", json={}), 403)


PROJECT_CALLS = [
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/{id}"),
    ("patch", "/api/v1/projects/{id}"),
    ("get", "/api/v1/projects/{id}/tasks"),
]


def test_vendor_may_not_use_project_endpoints(world, project_id):
    for method, path in PROJECT_CALLS:
        response = getattr(world, method)("vendor_eu", path.format(id=project_id), json={})
        _assert_problem(response, 403)


def test_vendor_may_not_import_tasks(world, project_id):
    response = world.post("vendor_in", f"/api/v1/projects/{project_id}/tasks/import",
                          data=TASK_LINE, headers={"Content-Type": "application/x-ndjson"})
    _assert_problem(response, 403)
    tasks = world.get("manager", f"/api/v1/projects/{project_id}/tasks").get_json()
    assert tasks == []


ACCOUNT_CALLS = [
    ("get", "/api/v1/accounts"),
    ("post", "/api/v1/accounts"),
    ("get", "/api/v1/accounts/{own}"),
    ("patch", "/api/v1/accounts/{own}"),
    ("post", "/api/v1/accounts/{own}/tokens"),
]


def test_vendor_may_not_use_account_endpoints(world):
    for method, path in ACCOUNT_CALLS:
        url = path.format(own=world.account_ids["vendor_eu"])
        _assert_problem(getattr(world, method)("vendor_eu", url, json={"name": "mine"}), 403)


def test_vendor_lists_only_its_own_tokens(world):
    listed = world.get("vendor_eu", "/api/v1/tokens").get_json()
    assert {token["account_id"] for token in listed} == {world.account_ids["vendor_eu"]}


def test_vendor_cannot_revoke_another_accounts_token(world):
    for owner in ("vendor_in", "admin", "manager"):
        other = _token_id(world, owner)
        _assert_problem(world.delete("vendor_eu", f"/api/v1/tokens/{other}"), 404)
        assert world.get(owner, "/api/v1/me").status_code == 200


def test_vendor_revokes_its_own_token(world):
    own = _token_id(world, "vendor_eu")
    response = world.delete("vendor_eu", f"/api/v1/tokens/{own}")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["revoked_at"] is not None
    assert world.get("vendor_eu", "/api/v1/me").status_code == 401
    assert world.get("vendor_in", "/api/v1/me").status_code == 200
