"""Workforces over HTTP: create, list, read, change, validation, roles and audit trail."""

from __future__ import annotations

import json
from typing import Any

from coordinator.audit.models import AuditEvent
from coordinator.errors import PROBLEM_JSON
from coordinator.workforces.models import Workforce
from tests.helpers import assert_invalid as _assert_invalid
from tests.helpers import audit_events as _audit_events
from tests.helpers import count_rows as _count

URL = "/api/v1/workforces"

WORKFORCE = {
    "kind": "vendor",
    "name": "Vendor BR",
    "region": "sa",
    "countries": ["BR", "PT"],
    "languages": ["pt_BR", "pt"],
    "daily_capacity": 500,
    "price_per_label": "0.0450",
    "currency": "BRL",
    "timezone": "America/Sao_Paulo",
}


def _workforce(**changes: Any) -> dict[str, Any]:
    """Return a valid workforce body with ``changes`` applied (None removes a key)."""
    body = {**WORKFORCE, **changes}
    return {key: value for key, value in body.items() if value is not None}


def _create(world: Any, **changes: Any) -> dict[str, Any]:
    """Create a workforce as the manager and return it."""
    response = world.post("manager", URL, json=_workforce(**changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- create and read ------------------------------------------------------------------------


def test_create_normalises_codes(world):
    created = _create(world, countries=["br", "pt"], languages=["pt-br", "PT"],
                      currency="brl", region="SA")
    assert created["countries"] == ["BR", "PT"]
    assert created["languages"] == ["pt_BR", "pt"]
    assert (created["currency"], created["region"]) == ("BRL", "sa")
    assert created["price_per_label"] == "0.0450"  # money stays a decimal string
    assert created["active"] is True


def test_created_workforce_reads_back_the_same(world):
    created = _create(world)
    assert world.get("auditor", f"{URL}/{created['id']}").get_json() == created


def test_list_is_by_name_and_paginated(world):
    _create(world, name="Aardvark Labels")
    response = world.get("auditor", f"{URL}?page=1&page_size=2")
    assert [item["name"] for item in response.get_json()] == ["Aardvark Labels", "Vendor EU"]
    pagination = json.loads(response.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"]) == (3, 2)


def test_missing_workforce_is_404(world):
    response = world.get("manager", f"{URL}/31337")
    assert response.status_code == 404 and response.mimetype == PROBLEM_JSON


def test_mturk_workforce_is_accepted(world):
    created = _create(world, kind="mturk", name="MTurk", region="global", currency="USD",
                      countries=["US"], languages=["en"], timezone="UTC")
    assert created["kind"] == "mturk"


# --- validation ------------------------------------------------------------------------------


INVALID_WORKFORCES = [
    ({"countries": ["XX"]}, "countries"),
    ({"countries": ["DEU"]}, "countries"),
    ({"countries": []}, "countries"),
    ({"countries": ["DE", "de"]}, "countries"),  # the same country once normalised
    ({"languages": ["xx_YY"]}, "languages"),
    ({"languages": ["en_US;drop"]}, "languages"),
    ({"currency": "FRF"}, "currency"),  # withdrawn in 2002
    ({"currency": "XYZ"}, "currency"),
    ({"currency": "EURO"}, "currency"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "CEST+2"}, "timezone"),
    ({"price_per_label": "-0.01"}, "price_per_label"),
    ({"price_per_label": "cheap"}, "price_per_label"),
    ({"daily_capacity": -1}, "daily_capacity"),
    ({"kind": "agency"}, "kind"),
    ({"region": "Europe West"}, "region"),
    ({"tier": "gold"}, "tier"),
    ({"timezone": None}, "timezone"),
]


def test_invalid_workforce_is_422_naming_the_field(app, world):
    events = _count(app, AuditEvent)
    for changes, field in INVALID_WORKFORCES:
        response = world.post("manager", URL, json=_workforce(**changes))
        _assert_invalid(response, field, context=changes)
    # Nothing of any failed request was stored, audit trail included.
    assert (_count(app, Workforce), _count(app, AuditEvent)) == (2, events)


def test_cldr_regions_that_are_not_countries_are_refused(world):
    for code in ("ZZ", "EU", "UN"):
        response = world.post("manager", URL, json=_workforce(name=code, countries=[code]))
        _assert_invalid(response, "countries", context=code)


def test_bad_currency_message_names_the_value(world):
    [message] = _assert_invalid(world.post("manager", URL, json=_workforce(currency="FRF")),
                                "currency")
    assert "FRF" in message


def test_duplicate_name_is_409(app, world):
    response = world.post("manager", URL, json=_workforce(name="Vendor EU"))
    _assert_invalid(response, "name", status=409)
    assert _count(app, Workforce) == 2


# --- patch ----------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(world):
    workforce_id = _create(world)["id"]
    world.patch("manager", f"{URL}/{workforce_id}", json={"active": False})
    response = world.patch("manager", f"{URL}/{workforce_id}", json={"price_per_label": "0.05"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    # The create schema's load_default of active must not switch it back on.
    assert (body["price_per_label"], body["active"], body["currency"]) == ("0.0500", False, "BRL")


INVALID_PATCHES = [
    ({"price_per_label": "-1"}, "price_per_label"),
    ({"currency": "XYZ"}, "currency"),
    ({"timezone": "Europe/Atlantis"}, "timezone"),
    ({"countries": ["XX"]}, "countries"),
]


def test_invalid_patch_is_422_and_changes_nothing(app, world):
    workforce_id = world.workforce_ids["vendor_eu"]
    before = world.get("manager", f"{URL}/{workforce_id}").get_json()
    for changes, field in INVALID_PATCHES:
        response = world.patch("manager", f"{URL}/{workforce_id}", json=changes)
        _assert_invalid(response, field, context=changes)
    assert world.get("manager", f"{URL}/{workforce_id}").get_json() == before
    assert _audit_events(app, "workforce.update") == []


def test_rename_onto_a_taken_name_is_409(world):
    response = world.patch("manager", f"{URL}/{world.workforce_ids['vendor_in']}",
                           json={"name": "Vendor EU"})
    _assert_invalid(response, "name", status=409)


def test_patch_of_missing_workforce_is_404(world):
    assert world.patch("manager", f"{URL}/999999", json={"active": False}).status_code == 404


# --- roles -----------------------------------------------------------------------------------


def test_only_managers_create_and_patch(app, world):
    url = f"{URL}/{world.workforce_ids['vendor_eu']}"
    for who in ("auditor", "vendor_eu"):
        assert world.post(who, URL, json=_workforce()).status_code == 403, who
        assert world.patch(who, url, json={"daily_capacity": 1}).status_code == 403, who
    assert _count(app, Workforce) == 2
    assert world.get("manager", url).get_json()["daily_capacity"] == 1000


def test_admin_may_create(world):
    assert world.post("admin", URL, json=_workforce()).status_code == 201


# --- audit trail ----------------------------------------------------------------------------


def test_create_writes_an_audit_event(app, world):
    created = _create(world)
    events = _audit_events(app, "workforce.create")
    assert len(events) == 3  # the two of the world fixture, then ours
    event = events[-1]
    assert event.subject_id == str(created["id"])
    assert event.actor_id == world.account_ids["manager"]
    assert event.after["price_per_label"] == "0.0450"
    assert event.after["countries"] == ["BR", "PT"]


def test_update_writes_before_and_after(app, world):
    workforce_id = world.workforce_ids["vendor_in"]
    response = world.patch("admin", f"{URL}/{workforce_id}", json={"daily_capacity": 2500})
    [event] = _audit_events(app, "workforce.update")
    assert (event.before["daily_capacity"], event.after["daily_capacity"]) == (2000, 2500)
    assert event.actor_id == world.account_ids["admin"]
    assert event.request_id == response.headers["X-Request-ID"]


def test_patch_that_changes_nothing_writes_no_event(app, world):
    workforce_id = world.workforce_ids["vendor_eu"]
    world.patch("manager", f"{URL}/{workforce_id}", json={"timezone": "Europe/Berlin"})
    assert _audit_events(app, "workforce.update") == []


def test_a_price_with_more_than_four_decimals_is_refused_not_rounded(world):
    response = world.post("manager", "/api/v1/workforces", json=_payload_for_price_test("0.12345"))
    assert response.status_code == 422
    assert "price_per_label" in response.get_json()["errors"]
    assert world.post("manager", "/api/v1/workforces", json=_payload_for_price_test("0.1234")).status_code == 201


def _payload_for_price_test(price):
    return {"kind": "vendor", "name": f"Precise {price}", "region": "eu", "countries": ["FR"],
            "languages": ["fr"], "daily_capacity": 10, "price_per_label": price,
            "currency": "EUR", "timezone": "Europe/Paris"}
