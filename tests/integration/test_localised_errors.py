"""Errors speak the caller's language: Accept-Language first, then the account's preference."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import World

BEARER = "'Authorization: Bearer <token>'"


@pytest.mark.parametrize(("accept", "title", "detail"), [
    ("fr", "Authentification requise",
     f"Envoyez un jeton d’API sous la forme {BEARER}."),
    ("ar", "المصادقة مطلوبة", f"أرسل رمز API المميز بالصيغة {BEARER}."),
    ("ja", "認証が必要です", f"API トークンを {BEARER} の形式で送信してください。"),
    ("zh-CN,zh;q=0.9", "需要身份验证", f"请以 {BEARER} 的形式发送 API 令牌。"),
    ("pt-BR", "Autenticação obrigatória", f"Envie um token de API como {BEARER}."),
    ("hi-IN", "प्रमाणीकरण आवश्यक है", f"API टोकन को {BEARER} के रूप में भेजें।"),
    ("sw", "Uthibitishaji unahitajika", f"Tuma tokeni ya API kama {BEARER}."),
    ("ko, en;q=0.5", "Authentication required", f"Send an API token as {BEARER}."),
])
def test_title_and_detail_follow_accept_language(client: FlaskClient, accept: str, title: str,
                                                 detail: str) -> None:
    response = client.get("/api/v1/projects", headers={"Accept-Language": accept})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["title"], body["detail"]) == (title, detail)


def test_not_found_in_arabic(world: World) -> None:
    response = world.client.get("/api/v1/projects/424242",
                                headers=world.headers("manager", **{"Accept-Language": "ar"}))
    assert response.status_code == 404
    body = response.get_json()
    assert body["title"] == "غير موجود"
    assert body["detail"] == "المشروع 424242 غير موجود."
    assert response.headers["Content-Language"] == "ar"


def _account_with_locale(world: World, locale: str) -> str:
    created = world.post("admin", "/api/v1/accounts",
                         json={"name": f"speaks-{locale}", "role": "manager", "locale": locale})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["locale"] == locale
    issued = world.post("admin", f"/api/v1/accounts/{created.get_json()['id']}/tokens",
                        json={"name": "localised errors"})
    assert issued.status_code == 201, issued.get_json()
    return issued.get_json()["secret"]


def test_the_account_preference_applies_without_accept_language(world: World) -> None:
    secret = _account_with_locale(world, "de")
    response = world.client.get("/api/v1/accounts", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403
    body = response.get_json()
    assert body["title"] == "Nicht erlaubt"
    assert body["detail"] == "Die Rolle manager darf das nicht."
    assert response.headers["Content-Language"] == "de"

    missing = world.client.get("/api/v1/projects/424242",
                               headers={"Authorization": f"Bearer {secret}"})
    assert missing.status_code == 404
    assert missing.get_json()["title"] == "Nicht gefunden"
    assert missing.get_json()["detail"] == "Es gibt kein Projekt 424242."


def test_accept_language_wins_over_the_account_preference(world: World) -> None:
    secret = _account_with_locale(world, "de")
    response = world.client.get("/api/v1/accounts", headers={
        "Authorization": f"Bearer {secret}", "Accept-Language": "fr-CA, fr;q=0.9"})
    assert response.status_code == 403
    assert response.get_json()["title"] == "Non autorisé"
    assert response.get_json()["detail"] == "Le rôle manager n’est pas autorisé à faire cela."
    assert response.headers["Content-Language"] == "fr"


def test_a_regional_account_preference_uses_its_language(world: World) -> None:
    secret = _account_with_locale(world, "de_AT")
    response = world.client.get("/api/v1/accounts", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403
    assert response.get_json()["title"] == "Nicht erlaubt"
    assert response.headers["Content-Language"] == "de"


def test_a_successful_response_names_the_account_language(world: World) -> None:
    secret = _account_with_locale(world, "de")
    response = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert response.headers["Content-Language"] == "de"


def test_missing_required_fields_in_spanish(world: World) -> None:
    response = world.post("admin", "/api/v1/accounts", json={},
                          headers={"Accept-Language": "es-MX, es;q=0.9"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["title"] == "La solicitud tiene campos no válidos"
    assert body["detail"] == "Faltan campos o hay campos no válidos; consulte errors."
    assert body["errors"] == {
        "name": ["Faltan datos en un campo obligatorio."],
        "role": ["Faltan datos en un campo obligatorio."],
    }
    assert response.headers["Content-Language"] == "es"


def test_marshmallow_validators_in_french(world: World) -> None:
    response = world.post("admin", "/api/v1/accounts",
                          json={"name": "", "role": "boss", "workforce_id": "x", "colour": "red"},
                          headers={"Accept-Language": "fr"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "name": ["La longueur doit être comprise entre 1 et 200."],
        "role": ["Doit être l’une des valeurs suivantes : admin, manager, vendor, auditor."],
        "workforce_id": ["Nombre entier non valide."],
        "colour": ["Champ inconnu."],
    }


def test_a_range_in_japanese_and_our_own_field_messages_untouched(world: World) -> None:
    account_id = world.account_ids["manager"]
    response = world.post("admin", f"/api/v1/accounts/{account_id}/tokens",
                          json={"name": "x", "expires_in_days": 0},
                          headers={"Accept-Language": "ja"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "expires_in_days": ["1 以上 3650 以下である必要があります。"]}

    response = world.client.patch(f"/api/v1/accounts/{account_id}", json={"locale": "xx-!!"},
                                  headers=world.headers("admin", **{"Accept-Language": "ja"}))
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"locale": [
        "'xx-!!' はロケールではありません。en、pt_BR、sr_Latn のようなコードを使用してください。"]}


def test_query_argument_errors_in_swahili(world: World) -> None:
    response = world.client.get("/api/v1/projects?page_size=0",
                                headers=world.headers("manager", **{"Accept-Language": "sw"}))
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "page_size": ["Lazima iwe kubwa kuliko au sawa na 1 na ndogo kuliko au sawa na 500."]}


@pytest.mark.parametrize(("accept", "language"), [
    (None, "en"), ("zh-CN", "zh-Hans"), ("pt-BR", "pt-BR"), ("hi", "hi"), ("ko", "en"),
    # The caller's order wins over an exact match further down the list.
    ("zh-CN, en;q=0.8", "zh-Hans"), ("pt-PT, en;q=0.5", "pt-BR"), ("ko, ar-EG;q=0.3", "ar"),
    # Simplified Chinese is no answer to a Traditional Chinese reader.
    ("zh-TW", "en"), ("zh-Hant, ja;q=0.5", "ja"), ("*", "en"),
])
def test_content_language_names_the_chosen_locale(client: FlaskClient, accept: str | None,
                                                  language: str) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    response = client.get("/api/v1/projects", headers=headers)
    assert response.headers["Content-Language"] == language
    assert "Accept-Language" in response.headers.get("Vary", "")
