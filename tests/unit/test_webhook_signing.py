"""Webhook signatures, the fake sender, and the retry schedule: no database, no network."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from coordinator.webhooks.services import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    MIN_RETRY_SECONDS,
    retry_delay,
)
from integrations.vendors.webhooks import FakeSender, HttpSender, SendResult, sign, verify

SECRET = "whsec_test"
BODY = b'{"event":"work.available","assignments":3}'
T = 1_800_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == f"t={T},v1={expected}"


def test_a_signature_verifies_with_its_secret_and_body():
    assert verify(SECRET, sign(SECRET, T, BODY), BODY, now=T + 10)


def test_a_tampered_body_does_not_verify():
    header = sign(SECRET, T, BODY)
    assert not verify(SECRET, header, BODY.replace(b"3", b"4"), now=T)
    assert not verify(SECRET, header, BODY + b" ", now=T)


def test_a_wrong_secret_does_not_verify():
    assert not verify("whsec_other", sign(SECRET, T, BODY), BODY, now=T)


def test_a_stale_or_future_timestamp_does_not_verify():
    header = sign(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T + 300)
    assert not verify(SECRET, header, BODY, now=T + 301)
    assert not verify(SECRET, header, BODY, now=T - 301)
    assert verify(SECRET, header, BODY, tolerance_s=3600, now=T + 3000)


def test_a_moved_timestamp_does_not_verify():
    mac = sign(SECRET, T, BODY).split("v1=")[1]
    assert not verify(SECRET, f"t={T + 1},v1={mac}", BODY, now=T)


@pytest.mark.parametrize("header", ["", "garbage", "t=abc,v1=00", f"t={T}", "v1=00",
                                    f"t={T},v1=", f"t={T},v2=00"])
def test_malformed_headers_do_not_verify(header):
    assert not verify(SECRET, header, BODY, now=T)


def test_any_of_several_signatures_may_match():
    good = sign(SECRET, T, BODY).split("v1=")[1]
    assert verify(SECRET, f"t={T},v1={'0' * 64},v1={good}", BODY, now=T)


def test_an_empty_secret_never_verifies():
    assert not verify("", sign("", T, BODY), BODY, now=T)


def test_fake_sender_records_calls_and_plays_its_script():
    fake = FakeSender([SendResult(500), SendResult(error="timed out"), SendResult(204)])
    answers = [fake.send("https://v.example/h", BODY, {"X": str(i)}) for i in range(4)]
    assert [a.status_code for a in answers] == [500, None, 204, 204]  # the last one repeats
    assert [a.ok for a in answers] == [False, False, True, True]
    assert fake.calls[1].headers == {"X": "1"} and fake.calls[0].body == BODY


def test_fake_sender_answers_200_by_default_or_asks_a_function():
    assert FakeSender().send("https://a", b"", {}).status_code == 200
    by_url = FakeSender(lambda url: SendResult(410 if "gone" in url else 200))
    assert by_url.send("https://gone.example", b"", {}).status_code == 410


def test_http_sender_refuses_plain_http_without_a_call():
    result = HttpSender(1).send("http://127.0.0.1:9/hook", BODY, {})
    assert result.status_code is None and "https" in result.error


@pytest.mark.parametrize("attempts", range(1, 15))
def test_retry_delays_stay_within_the_growing_ceiling(attempts):
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    rng = random.Random(attempts)
    delays = [retry_delay(attempts, rng) for _ in range(200)]
    assert all(MIN_RETRY_SECONDS <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range


def test_retry_delays_grow_on_average_until_the_cap():
    rng = random.Random(7)
    means = [sum(retry_delay(n, rng) for _ in range(400)) / 400 for n in (1, 3, 5, 7, 12)]
    assert means == sorted(means)
    assert means[-1] <= BACKOFF_CAP_SECONDS
