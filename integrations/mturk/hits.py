"""HIT parameters: ExternalQuestion XML, qualification requirements, request tokens, answers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

#: System qualification types; the same ids serve the sandbox and production.
WORKER_LOCALE = "00000000000000000071"
PERCENT_ASSIGNMENTS_APPROVED = "000000000000000000L0"
NUMBER_HITS_APPROVED = "00000000000000000040"

EXTERNAL_QUESTION_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/"
    "ExternalQuestion.xsd")
#: The assignment id MTurk puts in the worker page's URL while a worker only previews.
PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
#: MTurk's cap on the number of values of one ``In`` requirement.
MAX_LOCALE_VALUES = 30
#: MTurk keeps request tokens of at most this many characters.
MAX_TOKEN_CHARS = 64
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SUBDIVISION = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,3})$")


class InvalidHitParameter(ValueError):
    """Raised for a HIT parameter MTurk would refuse, before anything is sent."""


def external_question(url: str, frame_height: int = 0) -> str:
    """Return the ExternalQuestion XML pointing MTurk's frame at ``url`` (HTTPS in production)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidHitParameter(f"the worker page URL must be absolute, got {url!r}")
    if not 0 <= frame_height <= 5000:
        raise InvalidHitParameter("the frame height must be between 0 (full window) and 5000")
    return (f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NS}">'
            f"<ExternalURL>{escape(url)}</ExternalURL>"
            f"<FrameHeight>{frame_height}</FrameHeight></ExternalQuestion>")


def locale_values(places: Iterable[str]) -> list[dict[str, str]]:
    """Return MTurk ``LocaleValues`` for ISO codes: ``US`` or, for a subdivision, ``US-CA``."""
    values: list[dict[str, str]] = []
    for place in places:
        code = place.strip().upper()
        if _COUNTRY.match(code):
            value = {"Country": code}
        elif match := _SUBDIVISION.match(code):
            value = {"Country": match.group(1), "Subdivision": match.group(2)}
        else:
            raise InvalidHitParameter(
                f"{place!r} is not an ISO 3166 country (US) or subdivision (US-CA) code")
        if value not in values:
            values.append(value)
    if len(values) > MAX_LOCALE_VALUES:
        raise InvalidHitParameter(f"MTurk accepts at most {MAX_LOCALE_VALUES} locales, got {len(values)}")
    return values


@dataclass(frozen=True)
class Requirements:
    """Who may work on a project's HITs."""

    #: ISO countries and subdivisions (``US``, ``US-CA``); empty: anywhere
    places: Sequence[str] = ()
    #: least share of a worker's past assignments that were approved, in percent
    min_approval_rate: int | None = None
    #: least number of HITs a worker has had approved
    min_approved_hits: int | None = None
    #: our custom qualification marking workers blocked on gold-question performance;
    #: a worker who holds it cannot find, preview or accept the HITs
    block_qualification_type_id: str | None = None


def qualification_requirements(req: Requirements) -> list[dict[str, Any]]:
    """Return MTurk ``QualificationRequirements`` for ``req``; each also hides the HIT from others."""
    found: list[dict[str, Any]] = []
    if req.places:
        found.append({"QualificationTypeId": WORKER_LOCALE, "Comparator": "In",
                      "LocaleValues": locale_values(req.places), "ActionsGuarded": "DiscoverPreviewAndAccept"})
    if req.min_approval_rate is not None:
        if not 0 <= req.min_approval_rate <= 100:
            raise InvalidHitParameter("the approval rate is a percentage between 0 and 100")
        found.append({"QualificationTypeId": PERCENT_ASSIGNMENTS_APPROVED,
                      "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [req.min_approval_rate],
                      "ActionsGuarded": "DiscoverPreviewAndAccept"})
    if req.min_approved_hits is not None:
        if req.min_approved_hits < 0:
            raise InvalidHitParameter("the number of approved HITs cannot be negative")
        found.append({"QualificationTypeId": NUMBER_HITS_APPROVED,
                      "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [req.min_approved_hits],
                      "ActionsGuarded": "DiscoverPreviewAndAccept"})
    if req.block_qualification_type_id:
        # A block list rather than an allow list: a worker we have never seen lacks the
        # qualification, so meets the requirement and can take the HIT.
        found.append({"QualificationTypeId": req.block_qualification_type_id,
                      "Comparator": "DoesNotExist", "ActionsGuarded": "DiscoverPreviewAndAccept"})
    return found


def request_token(*parts: object) -> str:
    """Return a UniqueRequestToken made from ``parts``: the same parts give the same token."""
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()
    return f"coord-{digest}"[:MAX_TOKEN_CHARS]


_HIT_ID = re.compile(r"\b([A-Z0-9]{30})\b")


def hit_id_in(message: str) -> str | None:
    """Return the HIT id an "already exists" error names, if it names one."""
    match = _HIT_ID.search(message or "")
    return match.group(1) if match else None


class MalformedAnswer(ValueError):
    """Raised for answer XML that is not a QuestionFormAnswers document."""


def parse_answers(xml: str) -> dict[str, str]:
    """Return the ``QuestionIdentifier -> text`` pairs of a QuestionFormAnswers document."""
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, TypeError) as exc:
        raise MalformedAnswer(f"the answer is not XML: {exc}") from None
    if _local(root.tag) != "QuestionFormAnswers":
        raise MalformedAnswer(f"the answer's root is {_local(root.tag)!r}, not QuestionFormAnswers")
    answers: dict[str, str] = {}
    for answer in root:
        if _local(answer.tag) != "Answer":
            continue
        identifier, text = None, None
        for child in answer:
            name = _local(child.tag)
            if name == "QuestionIdentifier":
                identifier = (child.text or "").strip()
            elif name in ("FreeText", "SelectionIdentifier"):
                text = child.text or ""
        if not identifier:
            raise MalformedAnswer("an Answer has no QuestionIdentifier")
        answers[identifier] = text or ""
    return answers


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
