"""Vendor webhooks: registration, scoping, signed delivery with retries, and a real receiver."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import random
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from coordinator import db
from coordinator.audit.models import AuditEvent
from coordinator.config import load_settings
from coordinator.dispatch.services import expire_leases
from coordinator.errors import PROBLEM_JSON
from coordinator.webhooks.models import WebhookDelivery
from coordinator.webhooks.services import (
    BACKOFF_BASE_SECONDS,
    MIN_RETRY_SECONDS,
    NO_WEBHOOK,
    deliver_due,
    sender_from_settings,
)
from integrations.vendors.webhooks import FakeSender, HttpSender, SendResult, verify

API = "/api/v1"
HOOK = "https://vendor-eu.example/coordinator/hook"
GUIDE = "# Guide\n\nLabel the sentiment.\n"


def _url(world: Any, who: str, suffix: str = "") -> str:
    return f"{API}/workforces/{world.workforce_ids[who]}/webhook{suffix}"


def _put(world: Any, who: str, workforce: str, body: Any) -> Any:
    return world.client.put(_url(world, workforce), headers=world.headers(who), json=body)


def _register(world: Any, workforce: str = "vendor_eu", url: str = HOOK) -> str:
    """Register ``url`` as the vendor itself; return the secret."""
    response = _put(world, workforce, workforce, {"url": url})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["secret"]


def _ping(world: Any, who: str = "vendor_eu") -> int:
    response = world.post(who, _url(world, who, "/test"))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def _deliver(app: Any, sender: Any, **kwargs: Any) -> int:
    """Run one delivery sweep the way a job does: a fresh session, one commit."""
    with app.app_context():
        session = db.session()
        count = deliver_due(session, sender, **kwargs)
        session.commit()
    return count


def _delivery(app: Any, delivery_id: int) -> WebhookDelivery:
    with app.app_context():
        return db.session().get(WebhookDelivery, delivery_id)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    return response.get_json()


# --- registration ----------------------------------------------------------------------------


MALFORMED = [
    "http://vendor.example/hook",
    "https:///hook",
    "https://",
    "https://user:password@vendor.example/hook",
    "https://token@vendor.example/hook",
    "not a url",
    "vendor.example/hook",
    "ftp://vendor.example/hook",
    "javascript:alert(1)",
    "",
    "https://vendor..example/hook",
    "https://vendor.example:99999/hook",
    "https://vendor.example:0/hook",
    "https://vendor.example/ho ok",
    "https://vendor.example/" + "a" * 2000,
    ["https://vendor.example/hook"],
    None,
]


def test_a_malformed_url_is_refused_naming_the_field(world):
    for url in MALFORMED:
        body = _problem(_put(world, "vendor_eu", "vendor_eu", {"url": url}), 422)
        assert list(body["errors"]) == ["url"] and body["errors"]["url"][0], url
    assert world.get("vendor_eu", _url(world, "vendor_eu")).get_json()["url"] is None


def test_the_refusal_says_what_is_wrong(world):
    def message(url: str) -> str:
        return _put(world, "vendor_eu", "vendor_eu", {"url": url}).get_json()["errors"]["url"][0]

    assert "https://" in message("http://vendor.example/hook")
    assert "password" in message("https://u:p@vendor.example/hook")
    assert "host" in message("https:///hook")
    assert "2000" in message("https://vendor.example/" + "a" * 2000)


def test_a_missing_url_is_refused_naming_the_field(world):
    body = _problem(_put(world, "vendor_eu", "vendor_eu", {}), 422)
    assert "url" in body["errors"]


def test_the_secret_is_shown_once_and_replaced_on_each_registration(app, world):
    response = _put(world, "vendor_eu", "vendor_eu", {"url": HOOK})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["url"] == HOOK and body["workforce_id"] == world.workforce_ids["vendor_eu"]
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40

    shown = world.get("vendor_eu", _url(world, "vendor_eu")).get_json()
    assert shown == {"workforce_id": world.workforce_ids["vendor_eu"], "url": HOOK}
    workforce = world.get("vendor_eu", f"{API}/workforces/{world.workforce_ids['vendor_eu']}")
    assert body["secret"] not in workforce.get_data(as_text=True)
    assert _register(world) != body["secret"]

    with app.app_context():
        events = db.session().scalars(
            select(AuditEvent).where(AuditEvent.action == "webhook.register")).all()
    assert len(events) == 2 and events[0].after["webhook_url"] == HOOK
    assert all(body["secret"] not in json.dumps([e.before, e.after]) for e in events)


def test_a_vendor_manages_only_its_own_webhook(world):
    eu_on_in = _put(world, "vendor_eu", "vendor_in", {"url": HOOK})
    missing = world.client.put(f"{API}/workforces/999999/webhook",
                               headers=world.headers("vendor_eu"), json={"url": HOOK})
    assert _problem(eu_on_in, 404)["title"] == _problem(missing, 404)["title"]
    for method in ("delete", "get"):
        _problem(getattr(world, method)("vendor_eu", _url(world, "vendor_in")), 404)
    _problem(world.post("vendor_eu", _url(world, "vendor_in", "/test")), 404)
    _problem(world.get("vendor_eu", _url(world, "vendor_in", "/deliveries")), 404)


def test_managers_register_for_a_vendor_and_auditors_only_read(world):
    assert _put(world, "manager", "vendor_in", {"url": HOOK}).status_code == 200
    assert _put(world, "admin", "vendor_in", {"url": HOOK}).status_code == 200
    _problem(_put(world, "auditor", "vendor_in", {"url": HOOK}), 403)
    _problem(world.delete("auditor", _url(world, "vendor_in")), 403)
    _problem(world.post("auditor", _url(world, "vendor_in", "/test")), 403)
    assert world.get("auditor", _url(world, "vendor_in")).get_json()["url"] == HOOK
    assert world.get("auditor", _url(world, "vendor_in", "/deliveries")).status_code == 200


def test_an_mturk_workforce_has_no_webhook(world):
    created = world.post("manager", f"{API}/workforces", json={
        "kind": "mturk", "name": "MTurk", "region": "us", "countries": ["US"],
        "languages": ["en"], "daily_capacity": 10, "price_per_label": "0.05",
        "currency": "USD", "timezone": "America/New_York"})
    assert created.status_code == 201, created.get_json()
    response = world.client.put(f"{API}/workforces/{created.get_json()['id']}/webhook",
                                headers=world.headers("manager"), json={"url": HOOK})
    _problem(response, 409)


def test_a_ping_needs_a_registered_webhook(world):
    _problem(world.post("vendor_eu", _url(world, "vendor_eu", "/test")), 409)


def test_unregistering_stops_the_calls(app, world):
    _register(world)
    delivery_id = _ping(world)
    response = world.delete("vendor_eu", _url(world, "vendor_eu"))
    assert response.status_code == 204
    assert world.delete("vendor_eu", _url(world, "vendor_eu")).status_code == 204  # idempotent
    assert world.get("vendor_eu", _url(world, "vendor_eu")).get_json()["url"] is None
    fake = FakeSender()
    assert _deliver(app, fake) == 0 and fake.calls == []
    delivery = _delivery(app, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 0, NO_WEBHOOK)


# --- delivery --------------------------------------------------------------------------------


def test_a_delivery_is_signed_and_marked_delivered(app, world):
    secret = _register(world)
    delivery_id = _ping(world)
    fake = FakeSender([SendResult(204)])
    now = db.utcnow()
    assert _deliver(app, fake, now=now) == 1
    [call] = fake.calls
    assert call.url == HOOK
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-Coordinator-Event"] == "ping"
    assert call.headers["X-Coordinator-Delivery"] == str(delivery_id)
    signature = call.headers["X-Coordinator-Signature"]
    assert signature.startswith(f"t={int(now.timestamp())},v1=")
    assert verify(secret, signature, call.body, now=now.timestamp())
    assert not verify("whsec_wrong", signature, call.body, now=now.timestamp())
    body = json.loads(call.body)
    assert body["event"] == "ping" and body["delivery_id"] == delivery_id
    assert body["workforce_id"] == world.workforce_ids["vendor_eu"]

    [logged] = world.get("vendor_eu", _url(world, "vendor_eu", "/deliveries")).get_json()
    assert logged["id"] == delivery_id and logged["status"] == "delivered"
    assert logged["attempts"] == 1 and logged["last_status_code"] == 204
    assert logged["delivered_at"] and logged["last_error"] is None
    assert _deliver(app, fake, now=now + timedelta(days=1)) == 0  # never sent twice


def test_failures_back_off_within_bounds_until_the_last_attempt(app, world):
    _register(world)
    delivery_id = _ping(world)
    fake = FakeSender([SendResult(503)])
    rng = random.Random(1)
    now = db.utcnow()
    delays = []
    for attempt in range(1, 5):
        assert _deliver(app, fake, now=now, max_attempts=5, rng=rng) == 1
        delivery = _delivery(app, delivery_id)
        assert (delivery.status, delivery.attempts) == ("pending", attempt)
        assert delivery.last_status_code == 503
        delay = (delivery.next_attempt_at - now).total_seconds()
        assert MIN_RETRY_SECONDS <= delay <= BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
        delays.append(delay)
        almost = delivery.next_attempt_at - timedelta(milliseconds=1)
        assert _deliver(app, fake, now=almost, max_attempts=5) == 0  # not due yet
        now = delivery.next_attempt_at
    assert _deliver(app, fake, now=now, max_attempts=5) == 1
    delivery = _delivery(app, delivery_id)
    assert (delivery.status, delivery.attempts) == ("failed", 5)
    assert _deliver(app, fake, now=now + timedelta(days=30)) == 0
    assert len(fake.calls) == 5
    failed = world.get("vendor_eu", _url(world, "vendor_eu", "/deliveries?status=failed"))
    assert [d["id"] for d in failed.get_json()] == [delivery_id]
    assert failed.get_json()[0]["last_status_code"] == 503


def test_a_network_error_is_logged_and_holds_back_that_vendor_only(app, world):
    _register(world, "vendor_eu")
    _register(world, "vendor_in", "https://vendor-in.example/hook")
    first, second = _ping(world, "vendor_eu"), _ping(world, "vendor_eu")
    other = _ping(world, "vendor_in")
    fake = FakeSender(lambda url: SendResult(200) if "vendor-in" in url
                      else SendResult(error="ConnectionRefusedError: refused"))
    now = db.utcnow()
    assert _deliver(app, fake, now=now) == 2
    assert [c.url for c in fake.calls] == [HOOK, "https://vendor-in.example/hook"]
    failed, waiting = _delivery(app, first), _delivery(app, second)
    assert failed.last_error == "ConnectionRefusedError: refused" and failed.attempts == 1
    assert failed.last_status_code is None and failed.next_attempt_at > now
    assert waiting.attempts == 0 and waiting.next_attempt_at <= now  # due at the next sweep
    assert _delivery(app, other).status == "delivered"


def test_concurrent_sweeps_never_send_the_same_delivery(app, world):
    _register(world)
    ids = [_ping(world) for _ in range(3)]
    inner_counts = []

    def send_while_another_sweep_runs(url: str) -> SendResult:
        inner = FakeSender()
        inner_counts.append(_deliver(app, inner))
        return SendResult(200)

    outer = FakeSender(send_while_another_sweep_runs)
    assert _deliver(app, outer) == 3
    assert inner_counts == [0, 0, 0]
    sent = [int(c.headers["X-Coordinator-Delivery"]) for c in outer.calls]
    assert sent == ids
    assert {_delivery(app, i).status for i in ids} == {"delivered"}


def test_a_sweep_takes_at_most_its_limit_oldest_first(app, world):
    _register(world)
    ids = [_ping(world) for _ in range(3)]
    fake = FakeSender()
    assert _deliver(app, fake, limit=2) == 2
    assert _deliver(app, fake, limit=2) == 1
    assert [int(c.headers["X-Coordinator-Delivery"]) for c in fake.calls] == ids


def test_a_new_registration_redirects_pending_deliveries_and_signs_with_the_new_secret(app, world):
    _register(world)
    delivery_id = _ping(world)
    moved = "https://vendor-eu.example/v2/hook?token=abc"
    secret = _register(world, url=moved)
    fake = FakeSender()
    now = db.utcnow()
    _deliver(app, fake, now=now)
    [call] = fake.calls
    assert call.url == moved
    assert verify(secret, call.headers["X-Coordinator-Signature"], call.body, now=now.timestamp())
    assert _delivery(app, delivery_id).url == moved


def test_the_delivery_log_is_paginated_newest_first(world):
    _register(world)
    ids = [_ping(world) for _ in range(3)]
    page = world.get("vendor_eu", _url(world, "vendor_eu", "/deliveries?page=1&page_size=2"))
    assert [d["id"] for d in page.get_json()] == ids[::-1][:2]
    assert json.loads(page.headers["X-Pagination"])["total"] == 3
    assert world.get("vendor_in", _url(world, "vendor_in", "/deliveries")).get_json() == []
    _problem(world.get("vendor_eu", _url(world, "vendor_eu", "/deliveries?status=lost")), 422)


# --- events from dispatch and lease expiry ---------------------------------------------------


def _jsonl(*items: Any) -> bytes:
    return ("\n".join(json.dumps(i) for i in items) + "\n").encode()


def test_dispatch_and_lease_expiry_are_announced_and_delivered(app, world, project_id):
    secrets_by_vendor = {"vendor_eu": _register(world, "vendor_eu")}
    base = f"{API}/projects/{project_id}"
    world.patch("manager", base, json={"allowed_regions": ["eu", "in"], "redundancy": 1})
    world.post("manager", f"{base}/guidelines", json={"title": "g", "source_markdown": GUIDE})
    assert world.post("manager", f"{base}/guidelines/1/publish").status_code == 200
    imported = world.post("manager", f"{base}/tasks/import", data=_jsonl(
        {"external_id": "de-1", "payload": {"text": "gut"}, "languages": ["de"]},
        {"external_id": "de-2", "payload": {"text": "schlecht"}, "languages": ["de"]},
        {"external_id": "hi-1", "payload": {"text": "अच्छा"}, "languages": ["hi"]},
    ), headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 200, imported.get_json()
    run = world.post("manager", f"{base}/dispatch", json={})
    assert run.status_code == 200, run.get_json()

    [announced] = world.get("vendor_eu", _url(world, "vendor_eu", "/deliveries")).get_json()
    assert announced["event"] == "work.available" and announced["status"] == "pending"
    assert announced["payload"] == {"event": "work.available", "project_id": project_id,
                                    "run_id": run.get_json()["run_id"], "assignments": 2}
    # Vendor IN got work too, but registered no webhook: nothing is queued for it.
    assert world.get("vendor_in", _url(world, "vendor_in", "/deliveries")).get_json() == []

    leased = world.post("vendor_eu", "/api/v1/vendor/leases", json={"limit": 5})
    ids = sorted(lease["assignment_id"] for lease in leased.get_json()["leases"])
    with app.app_context():
        session = db.session()
        assert expire_leases(session, now=db.utcnow() + timedelta(days=2)) == 2
        session.commit()

    fake = FakeSender()
    now = db.utcnow()
    assert _deliver(app, fake, now=now) == 2
    events = [(c.headers["X-Coordinator-Event"], json.loads(c.body)) for c in fake.calls]
    assert [name for name, _ in events] == ["work.available", "lease.expired"]
    assert events[1][1]["assignment_ids"] == ids
    for call in fake.calls:
        assert verify(secrets_by_vendor["vendor_eu"], call.headers["X-Coordinator-Signature"],
                      call.body, now=now.timestamp())
    logged = world.get("auditor", _url(world, "vendor_eu", "/deliveries")).get_json()
    assert [d["status"] for d in logged] == ["delivered", "delivered"]


# --- a real HTTPS receiver -------------------------------------------------------------------


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """Write a private CA and a server certificate for 127.0.0.1 and localhost it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test webhook CA"))
          .issuer_name(name("Test webhook CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(name("localhost"))
              .issuer_name(ca.subject).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - timedelta(minutes=5))
              .not_valid_after(now + timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([
                  x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                  critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                  ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Receiver:
    """A vendor's endpoint: records each POST and answers with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.port = 0


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    """A real HTTPS server on 127.0.0.1 with a certificate from a private CA; and that CA."""
    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append((self.path, dict(self.headers), body))
            self.send_response(state.status)
            for header, value in state.headers.items():
                self.send_header(header, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, ca
    server.shutdown()
    server.server_close()


def test_a_real_https_receiver_gets_a_verifiable_body_and_a_500_is_retried(app, world, receiver, private_hosts_allowed):
    state, ca = receiver
    state.received.clear()
    settings = load_settings({"WEBHOOK_CA_BUNDLE": str(ca), "WEBHOOK_TIMEOUT_SECONDS": "5",
                              "WEBHOOK_ALLOW_PRIVATE_HOSTS": "true"}, environ={})
    sender = sender_from_settings(settings)
    for host in ("127.0.0.1", "localhost"):
        state.status, state.headers = 200, {}
        secret = _register(world, url=f"https://{host}:{state.port}/hook?v=1")
        delivery_id = _ping(world)
        assert _deliver(app, sender) == 1
        path, headers, body = state.received[-1]
        assert path == "/hook?v=1" and headers["Content-Type"] == "application/json"
        assert verify(secret, headers["X-Coordinator-Signature"], body)
        assert json.loads(body)["delivery_id"] == delivery_id
        assert _delivery(app, delivery_id).status == "delivered"

    state.status = 500
    delivery_id = _ping(world)
    now = db.utcnow()
    assert _deliver(app, sender, now=now) == 1
    delivery = _delivery(app, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > now

    # A redirect is an unsuccessful answer, and it is not followed.
    state.status, state.headers = 302, {"Location": f"https://127.0.0.1:{state.port}/elsewhere"}
    calls_before = len(state.received)
    assert _deliver(app, sender, now=delivery.next_attempt_at) == 1
    assert len(state.received) == calls_before + 1
    assert _delivery(app, delivery_id).last_status_code == 302


def test_a_receiver_whose_certificate_is_not_trusted_is_not_sent_the_body(app, world, receiver, private_hosts_allowed):
    state, _ca = receiver
    state.received.clear()
    _register(world, url=f"https://127.0.0.1:{state.port}/hook")
    delivery_id = _ping(world)
    assert _deliver(app, HttpSender(5, allow_private=True)) == 1  # the system's CAs only
    delivery = _delivery(app, delivery_id)
    assert state.received == []
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert "certificate" in delivery.last_error.lower()


def test_a_closed_port_is_a_logged_network_error(app, world, private_hosts_allowed):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _register(world, url=f"https://127.0.0.1:{port}/hook")
    delivery_id = _ping(world)
    assert _deliver(app, HttpSender(2, allow_private=True)) == 1
    delivery = _delivery(app, delivery_id)
    assert delivery.status == "pending" and delivery.last_error
    assert delivery.last_status_code is None


@pytest.fixture
def private_hosts_allowed(app):
    """Let webhooks reach 127.0.0.1, where the test receivers listen."""
    app.config["WEBHOOK_ALLOW_PRIVATE_HOSTS"] = True


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "https://10.1.2.3/hook",
                                 "https://[::1]/hook", "https://169.254.169.254/latest",
                                 "https://localhost:8443/hook"])
def test_private_addresses_are_refused_by_default(world, url):
    response = _put(world, "vendor_eu", "vendor_eu", {"url": url})
    assert response.status_code == 422
    assert response.get_json()["errors"]["url"] == ["Webhooks cannot call private or local addresses."]


def test_a_name_resolving_to_a_private_address_is_not_called(app, world, receiver, private_hosts_allowed):
    state, ca = receiver
    state.received.clear()
    _register(world, url=f"https://localhost:{state.port}/hook")
    delivery_id = _ping(world)
    assert _deliver(app, HttpSender(5, ca_bundle=str(ca))) == 1  # private hosts not allowed
    delivery = _delivery(app, delivery_id)
    assert state.received == [], "nothing may reach a private address"
    assert "non-public address" in delivery.last_error
