"""The routing policy on its own: eligibility, refusal reasons, spreading, redundancy, shortage."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from coordinator.dispatch.routing import (
    DIVERSITY_PENALTY,
    Candidate,
    Router,
    allowed_regions,
    covers,
    refusal_reasons,
)


def candidate(id: int, *, region: str = "eu", languages: tuple[str, ...] = ("en",),
              active: bool = True, capacity: int = 100, left: int | None = None,
              price: str = "1", currency: str = "USD", price_usd: float | None = None) -> Candidate:
    return Candidate(
        id=id, name=f"wf-{id}", region=region, languages=languages, active=active,
        daily_capacity=capacity, capacity_left=capacity if left is None else left,
        price=Decimal(price), currency=currency,
        price_usd=float(price) if price_usd is None else price_usd)


# --- covers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("offered", "wanted"), [
    (["pt"], "pt_BR"),
    (["pt"], "pt_PT"),
    (["pt_BR"], "pt"),          # the same language and script, whatever the country
    (["en"], "en_GB"),
    (["zh"], "zh_Hans"),        # zh is written in Simplified Han unless told otherwise
    (["zh_TW"], "zh_Hant"),     # Taiwan's likely script is Traditional Han
    (["de", "hi"], "hi"),
])
def test_covers(offered, wanted):
    assert covers(offered, wanted)


@pytest.mark.parametrize(("offered", "wanted"), [
    (["zh_Hant"], "zh_Hans"),   # a reader of Traditional Han is not offered Simplified work
    (["zh_Hans"], "zh_Hant"),
    (["zh"], "zh_Hant"),
    (["sr"], "sr_Latn"),        # Serbian in Cyrillic does not cover Serbian in Latin
    (["de", "en"], "hi"),
    ([], "en"),
])
def test_does_not_cover(offered, wanted):
    assert not covers(offered, wanted)


# --- allowed regions -------------------------------------------------------------------------


def test_allowed_regions_default_to_the_residency_region():
    assert allowed_regions("eu", []) == ["eu"]


def test_a_global_project_may_go_anywhere():
    assert allowed_regions("global", []) == []


def test_explicit_regions_replace_the_default():
    assert allowed_regions("eu", ["eu", "in"]) == ["eu", "in"]
    assert allowed_regions("global", ["us"]) == ["us"]


# --- refusal reasons -------------------------------------------------------------------------


def test_an_eligible_workforce_has_no_reasons():
    assert refusal_reasons(candidate(1, languages=("de", "en")), ["de"], ["eu"]) == []


def test_no_region_rule_admits_every_region():
    assert refusal_reasons(candidate(1, region="in"), ["en"], []) == []


def test_each_reason_is_given_with_its_details():
    refused = candidate(1, region="in", languages=("hi", "en"), active=False)
    assert refusal_reasons(refused, ["de", "en", "fr"], ["eu", "uk"]) == [
        {"code": "inactive"},
        {"code": "language", "missing": ["de", "fr"]},
        {"code": "region", "region": "in", "allowed": ["eu", "uk"]},
    ]


def test_a_task_needs_every_one_of_its_languages():
    reasons = refusal_reasons(candidate(1, languages=("en",)), ["en", "pt_BR"], [])
    assert reasons == [{"code": "language", "missing": ["pt_BR"]}]


# --- the router ------------------------------------------------------------------------------


def test_ineligible_workforces_are_never_chosen_and_their_reasons_are_kept():
    router = Router([candidate(1, region="in", price_usd=0.001), candidate(2, price_usd=5.0)],
                    ["eu"])
    decisions = [router.route(["en"], 3) for _ in range(10)]
    assert all(d.chosen == [2, 2, 2] and d.short == 0 for d in decisions)
    assert set(decisions[0].scores) == {"2"}
    policy = router.policy()
    assert policy["allowed_regions"] == ["eu"]
    assert policy["groups"]["en"] == {
        "1": [{"code": "region", "region": "in", "allowed": ["eu"]}], "2": []}
    assert policy["workforces"]["1"]["capacity_left_at_start"] == 100
    assert policy["diversity_penalty"] == DIVERSITY_PENALTY


def test_language_sets_are_grouped_whatever_their_order():
    router = Router([candidate(1, languages=("en", "de"))], [])
    assert router.route(["en", "de"], 1).group == router.route(["de", "en"], 1).group == "de|en"
    assert list(router.policy()["groups"]) == ["de|en"]


def test_equal_workforces_share_the_work_evenly():
    router = Router([candidate(1), candidate(2), candidate(3)], [])
    counts = Counter(wid for _ in range(90) for wid in router.route(["en"], 1).chosen)
    assert counts == {1: 30, 2: 30, 3: 30}


def test_the_cheaper_workforce_gets_more_until_it_fills_up():
    router = Router([candidate(1, price_usd=1.0), candidate(2, price_usd=2.0)], [])
    counts = Counter(wid for _ in range(100) for wid in router.route(["en"], 1).chosen)
    # The cheap one alone until half its capacity is spent, then both in turn.
    assert counts[1] > counts[2] > 0
    assert counts[1] + counts[2] == 100


def test_the_freer_workforce_gets_more_at_the_same_price():
    router = Router([candidate(1, capacity=100), candidate(2, capacity=100, left=20)], [])
    counts = Counter(wid for _ in range(60) for wid in router.route(["en"], 1).chosen)
    assert counts[1] > 3 * counts[2]


def test_prices_in_different_currencies_compare_in_dollars():
    # 2 INR is cheaper than 0.05 EUR once converted, whatever the face values say.
    router = Router([candidate(1, price="0.05", currency="EUR", price_usd=0.058),
                     candidate(2, price="2.00", currency="INR", price_usd=0.0226)], [])
    assert router.route(["en"], 1).chosen == [2]


def test_redundant_labels_go_to_different_workforces():
    router = Router([candidate(1), candidate(2, price_usd=1.5), candidate(3, price_usd=2.0)], [])
    decision = router.route(["en"], 3)
    assert sorted(decision.chosen) == [1, 2, 3]
    assert decision.chosen[0] == 1  # the cheapest first


def test_workforces_already_holding_the_task_are_avoided():
    router = Router([candidate(1), candidate(2, price_usd=1.5)], [])
    assert router.route(["en"], 1, already=[1]).chosen == [2]


def test_a_single_eligible_workforce_takes_every_label():
    router = Router([candidate(1), candidate(2, languages=("hi",))], [])
    assert router.route(["en"], 3).chosen == [1, 1, 1]


def test_scores_are_those_of_the_first_slot_lower_wins():
    router = Router([candidate(1), candidate(2, price_usd=2.0)], [])
    decision = router.route(["en"], 1)
    assert decision.scores == {"1": 1.0, "2": 2.0}


def test_running_out_of_capacity_reports_the_shortfall():
    router = Router([candidate(1, capacity=10, left=2), candidate(2, capacity=10, left=0)], [])
    decision = router.route(["en"], 3)
    assert decision.chosen == [1, 1] and decision.short == 1
    assert "2" not in decision.scores  # no capacity: not scored
    empty = router.route(["en"], 2)
    assert empty.chosen == [] and empty.short == 2


def test_a_task_no_workforce_may_take_is_short_by_all_it_needs():
    router = Router([candidate(1, languages=("de",)), candidate(2, active=False)], [])
    decision = router.route(["ja"], 3)
    assert (decision.chosen, decision.short, decision.scores) == ([], 3, {})
    assert router.policy()["groups"]["ja"] == {
        "1": [{"code": "language", "missing": ["ja"]}],
        "2": [{"code": "inactive"}, {"code": "language", "missing": ["ja"]}],
    }


def test_capacity_is_spent_across_tasks():
    router = Router([candidate(1, capacity=5)], [])
    chosen = [len(router.route(["en"], 2).chosen) for _ in range(4)]
    assert chosen == [2, 2, 1, 0]
    assert router.candidates[0].capacity_left == 0


def _workload() -> list[list[int]]:
    candidates = [candidate(1, languages=("en", "de"), price_usd=0.05, capacity=40),
                  candidate(2, languages=("en",), price_usd=0.03, capacity=25),
                  candidate(3, languages=("de", "fr"), price_usd=0.08, capacity=60, region="ch"),
                  candidate(4, languages=("en", "fr"), price_usd=0.02, capacity=10)]
    router = Router(candidates, [])
    languages = [["en"], ["de"], ["fr"], ["en", "de"], ["en", "fr"]]
    return [router.route(languages[n % len(languages)], 3).chosen for n in range(60)]


def test_routing_is_deterministic():
    first = _workload()
    assert first == _workload()
    assert len({wid for chosen in first for wid in chosen}) == 4
