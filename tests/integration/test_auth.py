"""Bearer tokens: who gets in, who is refused, and what the database keeps of a secret."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from coordinator import db
from coordinator.accounts.models import ApiToken
from coordinator.auth import hash_token
from coordinator.errors import PROBLEM_JSON

ME = "/api/v1/me"


def _token_row(app: Any, secret: str) -> ApiToken:
    """Return the stored row of the token with ``secret``."""
    with app.app_context():
        return db.session().scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).one()


def _set_token(app: Any, secret: str, **values: Any) -> None:
    """Change columns of the token with ``secret`` directly in the database."""
    with db.database(app).engine.begin() as connection:
        connection.execute(
            update(ApiToken).where(ApiToken.token_hash == hash_token(secret)).values(**values))


def _assert_unauthenticated(response: Any, detail_part: str | None = None) -> None:
    """Check a 401 problem response that tells the client how to authenticate."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["status"] == 401
    assert body["type"] == "urn:coordinator:problem:unauthenticated"
    if detail_part:
        assert detail_part in body["detail"]


def _assert_forbidden(response: Any) -> None:
    """Check a 403 problem response."""
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json()["type"] == "urn:coordinator:problem:forbidden"
    # A 403 says the token is fine, so it must not ask the client to authenticate again.
    assert "WWW-Authenticate" not in response.headers


# --- refusals -------------------------------------------------------------------------------


def test_missing_token_is_401(client, world):
    _assert_unauthenticated(client.get(ME), "Authorization: Bearer")


MALFORMED_HEADERS = ["cdt_abc", "Token cdt_abc", "Basic dXNlcjpwYXNz", "Bearer", "Bearer    "]


def test_malformed_authorization_header_is_401(client, world):
    for header in MALFORMED_HEADERS:
        _assert_unauthenticated(client.get(ME, headers={"Authorization": header}), "Bearer")


def test_bearer_scheme_is_case_insensitive(client, world):
    response = client.get(ME, headers={"Authorization": f"bearer {world.tokens['admin']}"})
    assert response.status_code == 200


def test_unknown_token_is_401(client, world):
    response = client.get(ME, headers={"Authorization": "Bearer cdt_not-a-real-token"})
    _assert_unauthenticated(response, "not known")


def test_revoked_token_is_401(app, client, world):
    assert world.get("manager", ME).status_code == 200
    _set_token(app, world.tokens["manager"], revoked_at=db.utcnow())
    _assert_unauthenticated(world.get("manager", ME), "revoked")


def test_expired_token_is_401(app, world):
    _set_token(app, world.tokens["auditor"], expires_at=db.utcnow() - timedelta(seconds=1))
    _assert_unauthenticated(world.get("auditor", ME), "expired")


def test_token_expiring_later_still_works(app, world):
    _set_token(app, world.tokens["auditor"], expires_at=db.utcnow() + timedelta(hours=1))
    assert world.get("auditor", ME).status_code == 200


def test_disabled_account_is_401_and_enabling_it_again_restores_access(world):
    vendor = world.account_ids["vendor_eu"]
    response = world.patch("admin", f"/api/v1/accounts/{vendor}", json={"active": False})
    assert response.status_code == 200, response.get_json()
    _assert_unauthenticated(world.get("vendor_eu", ME), "disabled")
    world.patch("admin", f"/api/v1/accounts/{vendor}", json={"active": True})
    assert world.get("vendor_eu", ME).status_code == 200


def test_refusal_on_a_write_endpoint_is_401_before_the_body_is_read(client, world):
    response = client.post("/api/v1/projects", json={"name": "x"})
    _assert_unauthenticated(response)


REFUSALS = [
    ("auditor", "post", "/api/v1/projects"),
    ("vendor_eu", "get", "/api/v1/projects"),
    ("manager", "get", "/api/v1/accounts"),
    ("auditor", "post", "/api/v1/workforces"),
    ("manager", "post", "/api/v1/accounts"),
]


def test_role_refusals_are_403_naming_the_role(world):
    for who, method, url in REFUSALS:
        response = getattr(world, method)(who, url, json={})
        _assert_forbidden(response)
        assert who.split("_")[0] in response.get_json()["detail"], (who, method, url)


def test_auditor_may_not_revoke_even_its_own_token(world):
    token_id = world.get("auditor", ME).get_json()["token_id"]
    _assert_forbidden(world.delete("auditor", f"/api/v1/tokens/{token_id}"))
    assert world.get("auditor", ME).status_code == 200


# --- what a successful call leaves behind ---------------------------------------------------


def test_last_used_at_is_set_on_first_use(app, world):
    assert _token_row(app, world.tokens["manager"]).last_used_at is None
    before = db.utcnow()
    assert world.get("manager", ME).status_code == 200
    used = _token_row(app, world.tokens["manager"]).last_used_at
    assert used is not None and before - timedelta(seconds=5) <= used <= db.utcnow()


def test_last_used_at_is_set_even_when_the_role_is_refused(app, world):
    _assert_forbidden(world.get("vendor_in", "/api/v1/projects"))
    assert _token_row(app, world.tokens["vendor_in"]).last_used_at is not None


def test_last_used_at_is_not_rewritten_on_every_call(app, world):
    world.get("manager", ME)
    first = _token_row(app, world.tokens["manager"]).last_used_at
    world.get("manager", ME)
    assert _token_row(app, world.tokens["manager"]).last_used_at == first


def test_me_shows_the_caller_and_its_token(world):
    response = world.get("vendor_eu", ME)
    assert response.status_code == 200
    body = response.get_json()
    assert body["account"]["id"] == world.account_ids["vendor_eu"]
    assert body["account"]["role"] == "vendor"
    assert body["account"]["workforce_id"] == world.workforce_ids["vendor_eu"]
    listed = world.get("vendor_eu", "/api/v1/tokens").get_json()
    assert [token["id"] for token in listed] == [body["token_id"]]


def test_every_role_may_call_me(world):
    for who in ("admin", "manager", "auditor", "vendor_in"):
        assert world.get(who, ME).get_json()["account"]["name"] == f"{who}-account"


# --- secrets are shown once and stored only hashed ------------------------------------------


def _issue(world: Any, account: str, name: str = "ci") -> dict[str, Any]:
    """Create a token for ``account`` as the admin and return the response body."""
    response = world.post("admin", f"/api/v1/accounts/{world.account_ids[account]}/tokens",
                          json={"name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _every_stored_value(app: Any) -> list[str]:
    """Return every value of every row of api_tokens, as text."""
    with db.database(app).engine.connect() as connection:
        rows = connection.execute(select(ApiToken.__table__)).all()
    return [str(value) for row in rows for value in row]


def test_created_token_secret_is_shown_once_and_works(client, world):
    body = _issue(world, "manager")
    secret = body["secret"]
    assert secret.startswith("cdt_") and len(secret) > 40
    assert body["display_prefix"] == secret[:10]
    me = client.get(ME, headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert me["account"]["id"] == world.account_ids["manager"]
    assert me["token_id"] == body["id"]


def test_secrets_are_stored_only_as_hashes(app, world):
    secrets = [_issue(world, "manager")["secret"], *world.tokens.values()]
    stored = _every_stored_value(app)
    for secret in secrets:
        assert not any(secret in value for value in stored)
        assert hash_token(secret) in stored


def test_token_list_never_returns_a_secret(world):
    secret = _issue(world, "manager")["secret"]
    for who in ("admin", "manager"):
        response = world.get(who, "/api/v1/tokens")
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert secret not in text and world.tokens["manager"] not in text
        for token in response.get_json():
            assert "secret" not in token and "token_hash" not in token


def test_token_list_never_shows_the_stored_hashes(world):
    text = world.get("admin", "/api/v1/tokens").get_data(as_text=True)
    for secret in world.tokens.values():
        assert hash_token(secret) not in text
