"""MTurk arithmetic, HIT parameters and answer parsing, without a network or database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.mturk.client import ClientSettings, MTurkError
from integrations.mturk.fake import FakeMTurk
from integrations.mturk.fees import (
    InvalidAmount,
    bonus_cost,
    hit_cost,
    parse_amount,
    split_assignments,
    wire_amount,
)
from integrations.mturk.hits import (
    NUMBER_HITS_APPROVED,
    PERCENT_ASSIGNMENTS_APPROVED,
    WORKER_LOCALE,
    InvalidHitParameter,
    MalformedAnswer,
    Requirements,
    external_question,
    hit_id_in,
    parse_answers,
    qualification_requirements,
    request_token,
)

ANSWER = ('<?xml version="1.0" encoding="UTF-8"?>'
          '<QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
          'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd">'
          '<Answer><QuestionIdentifier>label</QuestionIdentifier><FreeText>positive</FreeText></Answer>'
          '<Answer><QuestionIdentifier>locale</QuestionIdentifier><FreeText>ar</FreeText></Answer>'
          '</QuestionFormAnswers>')


def test_fees_double_from_ten_assignments_and_hits_are_split_below_ten():
    assert hit_cost(Decimal("0.10"), 9) == (Decimal("0.90"), Decimal("0.18"))
    assert hit_cost(Decimal("0.10"), 10) == (Decimal("1.00"), Decimal("0.40"))
    # at least a cent of commission per assignment
    assert hit_cost(Decimal("0.01"), 3) == (Decimal("0.03"), Decimal("0.03"))
    assert split_assignments(20) == [9, 9, 2]
    assert max(split_assignments(1000)) == 9
    assert bonus_cost(Decimal("1.00")) == Decimal("1.20")


@pytest.mark.parametrize("bad", ["abc", "0.001", "-1", "0", "NaN", "5000", ""])
def test_amounts_are_validated_before_anything_is_sent(bad):
    with pytest.raises(InvalidAmount):
        parse_amount(bad)


def test_amounts_go_out_with_cents():
    assert wire_amount(parse_amount("0.5")) == "0.50"


def test_requirements_reach_mturk_exactly_as_configured():
    found = qualification_requirements(Requirements(
        places=["US", "us-ca", "GB", "US"], min_approval_rate=97, min_approved_hits=500,
        block_qualification_type_id="3BLOCK"))
    assert found == [
        {"QualificationTypeId": WORKER_LOCALE, "Comparator": "In",
         "LocaleValues": [{"Country": "US"}, {"Country": "US", "Subdivision": "CA"},
                          {"Country": "GB"}], "ActionsGuarded": "DiscoverPreviewAndAccept"},
        {"QualificationTypeId": PERCENT_ASSIGNMENTS_APPROVED, "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [97], "ActionsGuarded": "DiscoverPreviewAndAccept"},
        {"QualificationTypeId": NUMBER_HITS_APPROVED, "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [500], "ActionsGuarded": "DiscoverPreviewAndAccept"},
        {"QualificationTypeId": "3BLOCK", "Comparator": "DoesNotExist",
         "ActionsGuarded": "DiscoverPreviewAndAccept"},
    ]
    assert qualification_requirements(Requirements()) == []


def test_the_fake_lets_in_every_worker_but_the_holders_of_the_block_qualification():
    fake = FakeMTurk()
    type_id = fake.create_hit_type(Reward=Decimal("0.10"), QualificationRequirements=qualification_requirements(
        Requirements(places=["US"], block_qualification_type_id="3BLOCK")))
    hit_id = fake.create_hit(hit_type_id=type_id, max_assignments=1, lifetime_seconds=60,
                             question="q", token="t", annotation="")["HITId"]
    fake.grant_qualification("3BLOCK", "WBAD", 1)
    assert fake.can_accept(hit_id, "WNEW") and not fake.can_accept(hit_id, "WBAD")
    fake.revoke_qualification("3BLOCK", "WBAD", "lifted")
    assert fake.can_accept(hit_id, "WBAD")


@pytest.mark.parametrize("requirement", [
    {"QualificationTypeId": "3BLOCK", "Comparator": "DoesNotExist", "IntegerValues": [1]},
    {"QualificationTypeId": "3BLOCK", "Comparator": "GreaterThanOrEqualTo"},
    {"QualificationTypeId": "3BLOCK", "Comparator": "Lacks"},
    {"QualificationTypeId": "3BLOCK", "Comparator": "Exists", "ActionsGuarded": "Discover"},
])
def test_the_fake_refuses_requirements_mturk_would_refuse(requirement):
    with pytest.raises(MTurkError, match="CreateHITType"):
        FakeMTurk().create_hit_type(Reward="0.10", QualificationRequirements=[requirement])


@pytest.mark.parametrize("place", ["USA", "U", "US_CA", "12"])
def test_a_bad_locale_is_refused_rather_than_silently_ignored(place):
    with pytest.raises(InvalidHitParameter, match="ISO 3166"):
        qualification_requirements(Requirements(places=[place]))


def test_external_question_escapes_the_url():
    xml = external_question("https://example.org/mturk/task?a=1&b=2")
    assert "<ExternalURL>https://example.org/mturk/task?a=1&amp;b=2</ExternalURL>" in xml
    assert "2006-07-14/ExternalQuestion.xsd" in xml
    with pytest.raises(InvalidHitParameter):
        external_question("/relative")


def test_request_tokens_are_stable_short_and_distinct():
    first = request_token("hit", 1, 42, 1)
    assert first == request_token("hit", 1, 42, 1) and len(first) <= 64
    assert first != request_token("hit", 1, 42, 2)


def test_answers_are_parsed_and_malformed_ones_named():
    assert parse_answers(ANSWER) == {"label": "positive", "locale": "ar"}
    for bad in ["<QuestionFormAnswers><Answer>", "<Other/>", "",
                "<QuestionFormAnswers><Answer><FreeText>x</FreeText></Answer></QuestionFormAnswers>"]:
        with pytest.raises(MalformedAnswer):
            parse_answers(bad)


def test_already_done_errors_are_recognised():
    assert MTurkError("SendBonus", "RequestError",
                      'The idempotency token "x" has already been processed.').already_done
    assert not MTurkError("SendBonus", "RequestError", "Assignment does not exist.").already_done
    assert hit_id_in("The HIT with ID 3AQN9REUTFGXCRWFLWJ5PLOKT7DYDD already exists.") == \
        "3AQN9REUTFGXCRWFLWJ5PLOKT7DYDD"


def test_sandbox_unless_production_is_explicit():
    assert "sandbox" in ClientSettings().endpoint()
    assert "sandbox" in ClientSettings(production=True).endpoint()  # sandbox still on
    assert "sandbox" in ClientSettings(sandbox=False).endpoint()    # production not enabled
    assert ClientSettings(sandbox=False, production=True).endpoint() is None
    assert ClientSettings(endpoint_url="http://127.0.0.1:9").endpoint() == "http://127.0.0.1:9"
