"""Money and percentages come back written for the reader's locale."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("language", "eu_price", "in_price"), [
    ("en", "€0.05", "₹2.00"),
    ("de", "0,05\xa0€", "2,00\xa0₹"),
    ("hi", "€0.05", "₹2.00"),
    ("fr", "0,05\xa0€", "2,00\xa0₹"),
])
def test_prices_follow_the_readers_locale(world, language, eu_price, in_price):
    response = world.client.get("/api/v1/workforces", headers={
        **world.headers("manager"), "Accept-Language": language})
    prices = {w["name"]: w["price_per_label_display"] for w in response.get_json()}
    assert prices == {"Vendor EU": eu_price, "Vendor IN": in_price}


def test_translation_percent_follows_the_readers_locale(world, project_id):
    base = f"/api/v1/projects/{project_id}/guidelines"
    world.post("manager", base, json={"title": "t", "source_markdown": "# A\n\nB\n\nC\n"})
    world.post("manager", f"{base}/1/publish")
    po = world.get("manager", f"{base}/1/translations/fr.po").data
    po = po.replace(b'msgid "A"\nmsgstr ""', b'msgid "A"\nmsgstr "A fr"')
    response = world.client.put(f"{base}/1/translations/fr", data=po, headers={
        **world.headers("manager"), "Content-Type": "text/x-gettext-translation",
        "Accept-Language": "fr"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["percent_complete"] == 33.3
    assert response.get_json()["percent_complete_display"] == "33,3\xa0%"
