"""The real boto3 client against the local MTurk stand-in: retries, errors, paging, tokens."""

from __future__ import annotations

from datetime import timezone
from decimal import Decimal

import pytest

from coordinator.mturk.services import create_or_find_hit
from integrations.mturk.client import BotoMTurk, ClientSettings, MTurkError, build_boto_client
from integrations.mturk.hits import external_question
from tests.mturk_standin import running


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def standin():
    with running() as (server, url):
        yield server, url


def client(url, sleeps=None, attempts=4):
    settings = ClientSettings(endpoint_url=url, attempts=attempts, backoff_base=0.01)
    return BotoMTurk(build_boto_client(settings), settings,
                     sleep=(sleeps.append if sleeps is not None else lambda s: None))


HIT_TYPE = dict(AutoApprovalDelayInSeconds=3600, AssignmentDurationInSeconds=600,
                Reward=Decimal("0.05"), Title="t", Keywords="k", Description="d",
                QualificationRequirements=[])


def test_throttling_and_faults_are_retried_with_growing_jittered_waits(standin):
    server, url = standin
    server.inject("GetAccountBalance", "ThrottlingException", 400, "Rate exceeded", times=2)
    server.inject("GetAccountBalance", "ServiceFault", 500)
    sleeps = []
    assert client(url, sleeps).account_balance() == Decimal("10000.00")
    assert len(server.calls("GetAccountBalance")) == 4  # botocore itself did not retry
    assert len(sleeps) == 3 and all(0 <= s <= 0.01 * 2 ** i for i, s in enumerate(sleeps))


def test_retries_give_up_with_mturks_code(standin):
    server, url = standin
    server.inject("GetAccountBalance", "ServiceFault", 500, times=10)
    with pytest.raises(MTurkError) as caught:
        client(url, attempts=3).account_balance()
    assert caught.value.code == "ServiceFault" and len(server.calls("GetAccountBalance")) == 3


def test_other_errors_surface_at_once_with_mturks_code(standin):
    server, url = standin
    with pytest.raises(MTurkError) as caught:
        client(url).get_hit("NOPE")
    assert caught.value.code == "RequestError" and "does not exist" in caught.value.message
    assert len(server.calls("GetHIT")) == 1


def test_a_repeated_create_finds_the_first_hit_instead_of_paying_twice(standin):
    server, url = standin
    mturk = client(url)
    type_id = mturk.create_hit_type(**HIT_TYPE)
    question = external_question("https://example.org/mturk/task")
    first = mturk.create_hit(hit_type_id=type_id, max_assignments=3, lifetime_seconds=600,
                             question=question, token="tok-1", annotation="tok-1")
    again = create_or_find_hit(mturk, hit_type_id=type_id, max_assignments=3,
                               lifetime_seconds=600, question=question, token="tok-1",
                               annotation="tok-1")
    assert again["HITId"] == first["HITId"] and len(server.state.hits) == 1
    assert first["Expiration"].tzinfo == timezone.utc  # botocore gave local time; we keep UTC
    sent = server.calls("CreateHITType")[0]
    assert sent["Reward"] == "0.05"


def test_pages_end_even_when_the_last_page_carries_a_next_token(standin):
    server, url = standin
    mturk = client(url)
    type_id = mturk.create_hit_type(**HIT_TYPE)
    hit = mturk.create_hit(hit_type_id=type_id, max_assignments=4, lifetime_seconds=600,
                           question=external_question("https://e.org/t"), token="t", annotation="t")
    for n in range(4):  # two full pages of two: the second still carries a NextToken
        server.state.add_assignment(hit["HITId"], f"A{n}", f"W{n}", "<QuestionFormAnswers/>")
    listed = list(mturk.list_assignments(hit["HITId"]))
    assert [a["AssignmentId"] for a in listed] == ["A0", "A1", "A2", "A3"]
    assert len(server.calls("ListAssignmentsForHIT")) == 3


def test_a_retried_bonus_is_paid_once(standin):
    server, url = standin
    mturk = client(url)
    args = dict(worker_id="W1", assignment_id="A1", amount=Decimal("0.50"), reason="thanks", token="b1")
    assert mturk.send_bonus(**args) is True
    assert mturk.send_bonus(**args) is False
    assert len(server.state.bonuses) == 1


def test_boto3_honours_the_aws_endpoint_variable(standin, monkeypatch):
    server, url = standin
    monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", url)
    mturk = BotoMTurk(build_boto_client(ClientSettings(sandbox=False, production=True)))
    assert mturk.account_balance() == Decimal("10000.00")


def test_a_listing_throttled_on_a_later_page_is_retried_whole_without_repeats(standin):
    server, url = standin
    sleeps = []
    mturk = client(url, sleeps)
    type_id = mturk.create_hit_type(**HIT_TYPE)
    hit = mturk.create_hit(hit_type_id=type_id, max_assignments=4, lifetime_seconds=600,
                           question=external_question("https://e.org/t"), token="t", annotation="t")
    for n in range(4):
        server.state.add_assignment(hit["HITId"], f"A{n}", f"W{n}", "<QuestionFormAnswers/>")
    server.inject("ListAssignmentsForHIT", "ThrottlingException", 400, "Rate exceeded", after=1)
    listed = [a["AssignmentId"] for a in mturk.list_assignments(hit["HITId"])]
    assert listed == ["A0", "A1", "A2", "A3"] and len(sleeps) == 1
    # first page, the throttled second one, then the whole listing again (three pages)
    assert len(server.calls("ListAssignmentsForHIT")) == 5
    server.inject("ListHITs", "ThrottlingException", 400, "Rate exceeded", times=4)
    with pytest.raises(MTurkError) as caught:  # still throttled after every attempt
        list(mturk.list_hits())
    assert caught.value.retryable and caught.value.code == "ThrottlingException"
