"""Routing reasons, stored as codes, told to the reader in their language."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext


def describe(reason: dict[str, Any]) -> str:
    """Return one refusal reason as a sentence in the current locale."""
    code = reason.get("code")
    if code == "inactive":
        return gettext("The workforce is inactive.")
    if code == "language":
        return gettext("It does not work in %(languages)s.", languages=", ".join(reason["missing"]))
    if code == "region":
        return gettext(
            "Its region %(region)s is outside the project's residency rule (%(allowed)s).",
            region=reason["region"], allowed=", ".join(reason["allowed"]))
    return str(code)


def describe_candidate(candidate: dict[str, Any], winning_score: float | None) -> list[str]:
    """Return why a workforce did or did not get a task in one decision."""
    if candidate["reasons"]:
        return [describe(reason) for reason in candidate["reasons"]]
    if candidate["chosen"]:
        return [gettext("Chosen: the lowest score among the eligible workforces.")]
    if candidate["score"] is None:
        return [gettext("Eligible, but it had no capacity left that day.")]
    return [gettext(
        "Eligible, but its score %(score).3f was higher than the chosen %(best).3f (relative "
        "price divided by free capacity).", score=candidate["score"], best=winning_score or 0.0)]
