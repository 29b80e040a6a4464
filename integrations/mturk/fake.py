"""An in-memory Mechanical Turk for unit tests: same interface as ``BotoMTurk``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from integrations.mturk.client import MTurkError
from integrations.mturk.fees import hit_cost

#: The comparators MTurk knows; ``Exists`` and ``DoesNotExist`` take no value to compare with.
_COMPARATORS = {"LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo", "EqualTo",
                "NotEqualTo", "Exists", "DoesNotExist", "In", "NotIn"}
_ACTIONS_GUARDED = {"Accept", "PreviewAndAccept", "DiscoverPreviewAndAccept"}


def _check_requirement(requirement: dict[str, Any]) -> None:
    """Refuse a QualificationRequirement MTurk would refuse, so tests catch a malformed one."""
    comparator = requirement.get("Comparator")
    has_values = bool(requirement.get("IntegerValues") or requirement.get("LocaleValues"))
    if not requirement.get("QualificationTypeId") or comparator not in _COMPARATORS:
        problem = "a QualificationRequirement needs a QualificationTypeId and a known Comparator"
    elif has_values == (comparator in ("Exists", "DoesNotExist")):
        problem = f"the Comparator {comparator} does not fit the values given with it"
    elif requirement.get("ActionsGuarded", "Accept") not in _ACTIONS_GUARDED:
        problem = f"ActionsGuarded cannot be {requirement['ActionsGuarded']}"
    else:
        return
    raise MTurkError("CreateHITType", "RequestError", problem)


@dataclass
class FakeMTurk:
    """Keeps HIT types, HITs, assignments, bonuses and qualifications in dictionaries.

    ``fail`` maps an operation name to the errors to raise on its next calls, in order,
    so a test can make MTurk refuse a call half-way through a batch.
    """

    balance: Decimal = Decimal("10000.00")
    hit_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: dict[str, dict[str, Any]] = field(default_factory=dict)
    assignments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the bonuses paid under each request token MTurk still remembers (it forgets after 24 h)
    bonuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every bonus ever paid, in order: what ListBonusPayments reports
    payments: list[dict[str, Any]] = field(default_factory=list)
    qualifications: dict[str, dict[str, int]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    fail: dict[str, list[MTurkError]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        pending = self.fail.get(operation)
        if pending:
            raise pending.pop(0)

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):0{30 - len(prefix)}d}"

    def account_balance(self) -> Decimal:
        self._enter("get_account_balance")
        return self.balance

    def create_hit_type(self, **params: Any) -> str:
        self._enter("create_hit_type")
        for requirement in params.get("QualificationRequirements", []):
            _check_requirement(requirement)
        for type_id, known in self.hit_types.items():
            if known == params:
                return type_id
        type_id = self._id("T")
        self.hit_types[type_id] = params
        return type_id

    def create_hit(self, *, hit_type_id: str, max_assignments: int, lifetime_seconds: int,
                   question: str, token: str, annotation: str) -> dict[str, Any]:
        self._enter("create_hit_with_hit_type")
        if token in self.tokens:  # as MTurk: a repeated token is refused, naming the first HIT
            raise MTurkError("CreateHITWithHITType", "RequestError",
                             f"The HIT with ID {self.tokens[token]} already exists.")
        if not 1 <= max_assignments <= 1_000_000:
            raise MTurkError("CreateHITWithHITType", "RequestError", "MaxAssignments is invalid")
        hit_type = self.hit_types[hit_type_id]
        rewards, fees = hit_cost(hit_type["Reward"], max_assignments)
        self.balance -= rewards + fees
        hit_id = self._id("H")
        now = datetime.now(timezone.utc)
        self.hits[hit_id] = {
            "HITId": hit_id, "HITTypeId": hit_type_id, "MaxAssignments": max_assignments,
            "Question": question, "RequesterAnnotation": annotation, "HITStatus": "Assignable",
            "CreationTime": now, "Expiration": now + timedelta(seconds=lifetime_seconds),
            "QualificationRequirements": hit_type.get("QualificationRequirements", []),
            "Reward": str(hit_type["Reward"])}
        self.tokens[token] = hit_id
        self.assignments[hit_id] = []
        return dict(self.hits[hit_id])

    def get_hit(self, hit_id: str) -> dict[str, Any]:
        self._enter("get_hit")
        if hit_id not in self.hits:
            raise MTurkError("GetHIT", "RequestError", f"Hit {hit_id} does not exist.")
        return dict(self.hits[hit_id])

    def list_hits(self) -> Iterator[dict[str, Any]]:
        self._enter("list_hits")
        return iter([dict(hit) for hit in self.hits.values()])

    def list_assignments(self, hit_id: str) -> Iterator[dict[str, Any]]:
        self._enter("list_assignments_for_hit")
        return iter([dict(a) for a in self.assignments.get(hit_id, [])])

    def add_assignment(self, hit_id: str, assignment_id: str, worker_id: str, answer: str) -> None:
        """Pretend a worker submitted ``answer`` XML for ``hit_id``."""
        self.assignments[hit_id].append({
            "AssignmentId": assignment_id, "WorkerId": worker_id, "HITId": hit_id,
            "AssignmentStatus": "Submitted", "Answer": answer,
            "SubmitTime": datetime.now(timezone.utc)})

    def _assignment(self, assignment_id: str) -> dict[str, Any]:
        for listed in self.assignments.values():
            for assignment in listed:
                if assignment["AssignmentId"] == assignment_id:
                    return assignment
        raise MTurkError("GetAssignment", "RequestError", f"Assignment {assignment_id} does not exist.")

    def approve(self, assignment_id: str, feedback: str | None) -> None:
        self._enter("approve_assignment")
        assignment = self._assignment(assignment_id)
        assignment.update(AssignmentStatus="Approved", RequesterFeedback=feedback)

    def reject(self, assignment_id: str, feedback: str) -> None:
        self._enter("reject_assignment")
        assignment = self._assignment(assignment_id)
        assignment.update(AssignmentStatus="Rejected", RequesterFeedback=feedback)

    def send_bonus(self, *, worker_id: str, assignment_id: str, amount: Decimal, reason: str,
                   token: str) -> bool:
        self._enter("send_bonus")
        if token in self.bonuses:
            return False
        payment = {"WorkerId": worker_id, "AssignmentId": assignment_id, "BonusAmount": amount,
                   "Reason": reason, "GrantTime": datetime.now(timezone.utc)}
        self.bonuses[token] = payment
        self.payments.append(payment)
        self.balance -= amount
        return True

    def bonus_payments(self, assignment_id: str) -> Iterator[dict[str, Any]]:
        self._enter("list_bonus_payments")
        return iter([dict(p) for p in self.payments if p["AssignmentId"] == assignment_id])

    def forget_tokens(self) -> None:
        """Forget every request token, as MTurk does after 24 hours; payments stay."""
        self.bonuses.clear()
        self.tokens.clear()

    def expire_hit(self, hit_id: str) -> None:
        self._enter("update_expiration_for_hit")
        self.get_hit(hit_id)
        self.hits[hit_id]["Expiration"] = datetime.now(timezone.utc) - timedelta(seconds=1)
        self.hits[hit_id]["HITStatus"] = "Reviewable"

    def delete_hit(self, hit_id: str) -> None:
        self._enter("delete_hit")
        self.get_hit(hit_id)
        if any(a["AssignmentStatus"] == "Submitted" for a in self.assignments.get(hit_id, [])):
            raise MTurkError("DeleteHIT", "RequestError",
                             "This HIT has assignments that are not approved or rejected.")
        del self.hits[hit_id]

    def grant_qualification(self, type_id: str, worker_id: str, value: int) -> None:
        self._enter("associate_qualification_with_worker")
        self.qualifications.setdefault(type_id, {})[worker_id] = value

    def revoke_qualification(self, type_id: str, worker_id: str, reason: str) -> None:
        self._enter("disassociate_qualification_from_worker")
        self.qualifications.get(type_id, {}).pop(worker_id, None)

    def can_accept(self, hit_id: str, worker_id: str) -> bool:
        """Whether ``worker_id`` meets the HIT's requirements on our own qualification types.

        System types (locale, approval rate) need data about the worker we do not keep, so
        they count as met. As on MTurk, a worker who lacks a custom type meets only
        ``DoesNotExist`` on it; one who holds it meets the comparison with its value.
        """
        from integrations.mturk.hits import (
            NUMBER_HITS_APPROVED,
            PERCENT_ASSIGNMENTS_APPROVED,
            WORKER_LOCALE,
        )

        system = {WORKER_LOCALE, NUMBER_HITS_APPROVED, PERCENT_ASSIGNMENTS_APPROVED}
        for requirement in self.hits[hit_id].get("QualificationRequirements", []):
            type_id = requirement["QualificationTypeId"]
            if type_id in system:
                continue
            value = self.qualifications.get(type_id, {}).get(worker_id)
            comparator, wanted = requirement["Comparator"], requirement.get("IntegerValues", [])
            if comparator == "DoesNotExist":
                met = value is None
            elif value is None:
                met = False
            elif comparator == "Exists":
                met = True
            elif comparator == "GreaterThanOrEqualTo":
                met = value >= wanted[0]
            elif comparator == "EqualTo":
                met = value == wanted[0]
            else:
                raise NotImplementedError(f"the fake does not compare with {comparator}")
            if not met:
                return False
        return True

    def qualified_workers(self, type_id: str) -> Iterator[str]:
        self._enter("list_workers_with_qualification_type")
        return iter(list(self.qualifications.get(type_id, {})))
