"""Accounts and tokens over HTTP: admin-only management, role/workforce rules, revocation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from coordinator.accounts.models import Account, ApiToken
from coordinator.audit.models import AuditEvent
from coordinator.auth import hash_token
from coordinator.errors import PROBLEM_JSON
from tests.helpers import assert_invalid as _assert_invalid
from tests.helpers import audit_events as _audit_events
from tests.helpers import count_rows as _count

URL = "/api/v1/accounts"


def _create(world: Any, **body: Any) -> dict[str, Any]:
    """Create an account as the admin and return it."""
    response = world.post("admin", URL, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _issue(world: Any, account_id: int, **body: Any) -> Any:
    """Ask the admin for a token for ``account_id``."""
    return world.post("admin", f"{URL}/{account_id}/tokens", json={"name": "ci", **body})


def _token_id(world: Any, who: str) -> int:
    """Return the id of the token ``who`` calls with."""
    return world.get(who, "/api/v1/me").get_json()["token_id"]


# --- only admins manage accounts ------------------------------------------------------------


ACCOUNT_CALLS = [("get", ""), ("post", ""), ("get", "/{id}"), ("patch", "/{id}"),
                 ("post", "/{id}/tokens")]


def test_account_endpoints_are_admin_only(app, world):
    accounts, tokens = _count(app, Account), _count(app, ApiToken)
    body = {"name": "sneaky", "role": "admin", "active": True}
    for who in ("manager", "auditor", "vendor_eu"):
        for method, path in ACCOUNT_CALLS:
            url = URL + path.format(id=world.account_ids[who])
            response = getattr(world, method)(who, url, json=body)
            assert response.status_code == 403, (who, method, url)
            assert response.mimetype == PROBLEM_JSON
    assert (_count(app, Account), _count(app, ApiToken)) == (accounts, tokens)
    assert world.get("manager", "/api/v1/me").get_json()["account"]["role"] == "manager"


# --- create, read, list ---------------------------------------------------------------------


def test_create_account_and_read_it_back(world):
    created = _create(world, name="Ana", role="manager", locale="pt-br")
    assert (created["role"], created["locale"]) == ("manager", "pt_BR")
    assert created["workforce_id"] is None
    assert created["active"] is True
    assert world.get("admin", f"{URL}/{created['id']}").get_json() == created


def test_create_vendor_account_for_a_workforce(world):
    created = _create(world, name="EU lead", role="vendor",
                      workforce_id=world.workforce_ids["vendor_eu"])
    assert created["workforce_id"] == world.workforce_ids["vendor_eu"]


def test_list_is_by_name_and_paginated(world):
    response = world.get("admin", f"{URL}?page=2&page_size=2")
    assert [item["name"] for item in response.get_json()] == [
        "manager-account", "vendor_eu-account"]
    assert json.loads(response.headers["X-Pagination"])["total"] == 5


def test_missing_account_is_404(world):
    assert world.get("admin", f"{URL}/99999").status_code == 404


# --- validation ------------------------------------------------------------------------------


INVALID_ACCOUNTS = [
    ({"name": "v", "role": "vendor"}, "workforce_id"),
    ({"name": "v", "role": "vendor", "workforce_id": None}, "workforce_id"),
    ({"name": "v", "role": "vendor", "workforce_id": 999999}, "workforce_id"),
    ({"name": "m", "role": "manager", "workforce_id": "EU"}, "workforce_id"),
    ({"name": "r", "role": "root"}, "role"),
    ({"name": "r"}, "role"),
    ({"name": "", "role": "auditor"}, "name"),
    ({"name": "l", "role": "auditor", "locale": "xx_YY"}, "locale"),
    ({"name": "l", "role": "auditor", "locale": "en_US;drop"}, "locale"),
    ({"name": "x", "role": "auditor", "password": "hunter2"}, "password"),
]


def test_invalid_account_is_422_naming_the_field(app, world):
    events = _count(app, AuditEvent)
    for body, field in INVALID_ACCOUNTS:
        _assert_invalid(world.post("admin", URL, json=body), field, context=body)
    # Nothing of any failed request was stored, audit trail included.
    assert (_count(app, Account), _count(app, AuditEvent)) == (5, events)


def test_non_vendor_with_a_workforce_is_422(app, world):
    for role in ("admin", "manager", "auditor"):
        body = {"name": "x", "role": role, "workforce_id": world.workforce_ids["vendor_in"]}
        _assert_invalid(world.post("admin", URL, json=body), "workforce_id", context=role)
    assert _count(app, Account) == 5


def test_duplicate_name_is_409(world):
    response = world.post("admin", URL, json={"name": "manager-account", "role": "auditor"})
    _assert_invalid(response, "name", status=409)


# --- patch ----------------------------------------------------------------------------------


def test_vendor_turned_manager_loses_its_workforce(world):
    vendor = world.account_ids["vendor_eu"]
    response = world.patch("admin", f"{URL}/{vendor}", json={"role": "manager"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["workforce_id"] is None
    assert world.get("vendor_eu", "/api/v1/projects").status_code == 200


def test_manager_turned_vendor_needs_a_workforce(world):
    manager = world.account_ids["manager"]
    _assert_invalid(world.patch("admin", f"{URL}/{manager}", json={"role": "vendor"}),
                    "workforce_id")
    response = world.patch("admin", f"{URL}/{manager}", json={
        "role": "vendor", "workforce_id": world.workforce_ids["vendor_in"]})
    assert response.status_code == 200, response.get_json()
    assert world.get("manager", "/api/v1/projects").status_code == 403


def test_vendor_cannot_drop_its_workforce(world):
    vendor = world.account_ids["vendor_in"]
    _assert_invalid(world.patch("admin", f"{URL}/{vendor}", json={"workforce_id": None}),
                    "workforce_id")


def test_non_vendor_cannot_gain_a_workforce(world):
    auditor = world.account_ids["auditor"]
    response = world.patch("admin", f"{URL}/{auditor}",
                           json={"workforce_id": world.workforce_ids["vendor_eu"]})
    _assert_invalid(response, "workforce_id")


def test_moving_a_vendor_moves_its_scope_at_once(world):
    vendor = world.account_ids["vendor_eu"]
    other = world.workforce_ids["vendor_in"]
    assert world.patch("admin", f"{URL}/{vendor}", json={"workforce_id": other}).status_code == 200
    listed = world.get("vendor_eu", "/api/v1/workforces").get_json()
    assert [item["id"] for item in listed] == [other]


def test_rename_onto_a_taken_name_is_409(world):
    response = world.patch("admin", f"{URL}/{world.account_ids['auditor']}",
                           json={"name": "admin-account"})
    _assert_invalid(response, "name", status=409)


def test_update_writes_before_and_after(app, world):
    auditor = world.account_ids["auditor"]
    world.patch("admin", f"{URL}/{auditor}", json={"active": False, "locale": "de"})
    [event] = _audit_events(app, "account.update")
    assert event.actor_id == world.account_ids["admin"]
    assert (event.before["active"], event.after["active"]) == (True, False)
    assert (event.before["locale"], event.after["locale"]) == (None, "de")


def test_create_writes_an_audit_event(app, world):
    created = _create(world, name="Ana", role="auditor")
    event = _audit_events(app, "account.create")[-1]
    assert (event.subject_id, event.actor_id) == (str(created["id"]), world.account_ids["admin"])
    assert event.after == {"name": "Ana", "role": "auditor", "workforce_id": None,
                           "locale": None, "active": True}


# --- tokens ---------------------------------------------------------------------------------


def test_token_with_expiry(world):
    before = datetime.now().astimezone()
    response = _issue(world, world.account_ids["auditor"], expires_in_days=30)
    assert response.status_code == 201, response.get_json()
    expires = datetime.fromisoformat(response.get_json()["expires_at"])
    assert before + timedelta(days=30) <= expires <= before + timedelta(days=30, minutes=1)


INVALID_TOKENS = [
    ({"expires_in_days": 0}, "expires_in_days"),
    ({"expires_in_days": 3651}, "expires_in_days"),
    ({"name": ""}, "name"),
]


def test_invalid_token_request_is_422(app, world):
    for body, field in INVALID_TOKENS:
        _assert_invalid(_issue(world, world.account_ids["auditor"], **body), field, context=body)
    assert _count(app, ApiToken) == 5


def test_token_for_missing_account_is_404(app, world):
    assert _issue(world, 123456).status_code == 404
    assert _count(app, ApiToken) == 5


def test_token_audit_event_holds_no_secret(app, world):
    body = _issue(world, world.account_ids["manager"]).get_json()
    event = _audit_events(app, "token.create")[-1]
    text = json.dumps(event.after)
    assert body["secret"] not in text and hash_token(body["secret"]) not in text
    assert event.after["display_prefix"] == body["display_prefix"]


def test_admin_lists_every_token_and_others_their_own(world):
    _issue(world, world.account_ids["manager"])
    everything = world.get("admin", "/api/v1/tokens")
    assert json.loads(everything.headers["X-Pagination"])["total"] == 6
    ids = [token["id"] for token in everything.get_json()]
    assert ids == sorted(ids, reverse=True)  # newest first
    own = world.get("manager", "/api/v1/tokens").get_json()
    assert len(own) == 2
    assert {token["account_id"] for token in own} == {world.account_ids["manager"]}


def test_admin_revokes_any_token(world):
    token_id = _token_id(world, "vendor_in")
    response = world.delete("admin", f"/api/v1/tokens/{token_id}")
    assert response.status_code == 200
    assert response.get_json()["revoked_at"] is not None
    assert world.get("vendor_in", "/api/v1/me").status_code == 401


def test_revoking_twice_is_harmless(app, world):
    token_id = _token_id(world, "vendor_in")
    first = world.delete("admin", f"/api/v1/tokens/{token_id}")
    second = world.delete("admin", f"/api/v1/tokens/{token_id}")
    assert first.status_code == second.status_code == 200
    assert first.get_json()["revoked_at"] == second.get_json()["revoked_at"]
    assert len(_audit_events(app, "token.revoke")) == 1


def test_revoke_missing_token_is_404(world):
    assert world.delete("admin", "/api/v1/tokens/987654").status_code == 404


def test_manager_revokes_own_token_but_not_others(world):
    other = _token_id(world, "auditor")
    assert world.delete("manager", f"/api/v1/tokens/{other}").status_code == 404
    own = _token_id(world, "manager")
    assert world.delete("manager", f"/api/v1/tokens/{own}").status_code == 200
    assert world.get("auditor", "/api/v1/me").status_code == 200
    assert world.get("manager", "/api/v1/me").status_code == 401


def test_revoke_writes_an_audit_event(app, world):
    token_id = _token_id(world, "auditor")
    response = world.delete("admin", f"/api/v1/tokens/{token_id}")
    [event] = _audit_events(app, "token.revoke")
    assert (event.subject_type, event.subject_id) == ("api_token", str(token_id))
    assert event.before == {"revoked_at": None}
    assert event.request_id == response.headers["X-Request-ID"]
