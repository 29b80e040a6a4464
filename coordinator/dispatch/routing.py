"""The routing policy: which workforces may take a task, and which of them should."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from i18n.fallback import script_of
from i18n.locales import parse_locale

#: A workforce already holding one of a task's labels scores this much worse for the next,
#: so redundant labels come from different workforces whenever more than one may take them.
DIVERSITY_PENALTY = 4.0


@dataclass
class Candidate:
    """A workforce as the router sees it during one run."""

    id: int
    name: str
    region: str
    languages: tuple[str, ...]
    active: bool
    daily_capacity: int
    capacity_left: int
    price: Decimal
    currency: str
    #: price converted with the run's reference rate, so vendors paid in different currencies compare
    price_usd: float

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name, "region": self.region, "languages": list(self.languages),
            "active": self.active, "daily_capacity": self.daily_capacity,
            "capacity_left_at_start": self.capacity_left, "price": str(self.price),
            "currency": self.currency, "price_usd": round(self.price_usd, 6),
        }


def _language_key(code: str) -> tuple[str, str | None]:
    locale = parse_locale(code)
    return locale.language, script_of(locale)


def covers(offered: Iterable[str], wanted: str) -> bool:
    """Return whether a workforce listing ``offered`` languages can label text in ``wanted``."""
    # pt covers pt_BR and pt_PT; zh_Hant does not cover zh_Hans: language and script must agree.
    return _language_key(wanted) in {_language_key(code) for code in offered}


def allowed_regions(residency_region: str, explicit: Sequence[str]) -> list[str]:
    """Return the regions a project's data may go to; an empty list means any."""
    if explicit:
        return list(explicit)
    return [] if residency_region == "global" else [residency_region]


def refusal_reasons(candidate: Candidate, languages: Sequence[str],
                    regions: Sequence[str]) -> list[dict[str, Any]]:
    """Return why ``candidate`` may not take a task in ``languages`` (empty when it may)."""
    reasons: list[dict[str, Any]] = []
    if not candidate.active:
        reasons.append({"code": "inactive"})
    missing = [code for code in languages if not covers(candidate.languages, code)]
    if missing:
        reasons.append({"code": "language", "missing": missing})
    if regions and candidate.region not in regions:
        reasons.append({"code": "region", "region": candidate.region, "allowed": list(regions)})
    return reasons


@dataclass
class Decision:
    """The router's answer for one task."""

    group: str
    chosen: list[int]
    scores: dict[str, float]
    short: int = 0


@dataclass
class Router:
    """Assign tasks to workforces run by run, spending each workforce's capacity as it goes."""

    candidates: list[Candidate]
    regions: list[str]
    groups: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    _eligible: dict[str, list[Candidate]] = field(default_factory=dict)

    def eligible(self, languages: Sequence[str]) -> tuple[str, list[Candidate]]:
        """Return the key of a language set and the workforces that may take its tasks."""
        return self._eligible_for(languages)

    def _eligible_for(self, languages: Sequence[str]) -> tuple[str, list[Candidate]]:
        key = "|".join(sorted(languages))
        if key not in self._eligible:
            reasons = {c.id: refusal_reasons(c, languages, self.regions) for c in self.candidates}
            self.groups[key] = {str(cid): found for cid, found in reasons.items()}
            self._eligible[key] = [c for c in self.candidates if not reasons[c.id]]
        return key, self._eligible[key]

    def route(self, languages: Sequence[str], needed: int, already: Iterable[int] = (),
              avoid: Iterable[int] = ()) -> Decision:
        """Choose ``needed`` workforces for a task, preferring cheap, free and different ones.

        A workforce in ``avoid`` is chosen only when no other eligible one has capacity left.
        """
        key, eligible = self._eligible_for(languages)
        decision = Decision(group=key, chosen=[], scores={})
        holding = set(already)
        avoided = set(avoid)
        cheapest = min((c.price_usd for c in eligible), default=0.0)
        for slot in range(needed):
            best, best_key = None, (True, float("inf"))
            for candidate in eligible:
                if candidate.capacity_left <= 0:
                    continue
                score = _score(candidate, cheapest, candidate.id in holding)
                if slot == 0:
                    decision.scores[str(candidate.id)] = round(score, 6)
                # Avoidance outranks score: (False, any) sorts before (True, any).
                rank = (candidate.id in avoided, score)
                if rank < best_key:
                    best, best_key = candidate, rank
            if best is None:
                decision.short = needed - len(decision.chosen)
                break
            best.capacity_left -= 1
            holding.add(best.id)
            decision.chosen.append(best.id)
        return decision

    def policy(self) -> dict[str, Any]:
        """Return the run's policy as applied, for explaining every decision later."""
        return {
            "allowed_regions": self.regions,
            "diversity_penalty": DIVERSITY_PENALTY,
            "workforces": {str(c.id): c.snapshot() for c in self.candidates},
            "groups": self.groups,
        }


def _score(candidate: Candidate, cheapest: float, holds_one: bool) -> float:
    # Relative price times inverse free capacity: cheap and idle workforces win, and as one
    # fills up its score rises, which spreads the work.
    relative_price = (candidate.price_usd + 1e-9) / (cheapest + 1e-9)
    free = max(candidate.capacity_left / max(candidate.daily_capacity, 1), 0.01)
    return relative_price / free * (DIVERSITY_PENALTY if holds_one else 1.0)
