"""The boto3 ``mturk`` client built from settings, behind the small ``MTurk`` interface.

Sandbox unless production is asked for explicitly; ``endpoint_url`` points it anywhere
else (a stand-in in tests). Credentials come from boto3's own chain. botocore's retries
are switched off (one attempt) so that exactly one layer retries: ours, which retries
throttling and MTurk's service faults with exponential backoff and full jitter, and
turns every other error into :class:`MTurkError` carrying MTurk's own code.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol

from integrations.mturk.fees import wire_amount

log = logging.getLogger(__name__)

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
#: MTurk's requester API lives in us-east-1 only.
REGION = "us-east-1"
#: Error codes worth another try: throttling and the service's own faults.
RETRYABLE_CODES = frozenset({
    "ServiceFault", "ServiceUnavailable", "InternalFailure", "InternalError", "Throttling",
    "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "RequestThrottled"})
#: HIT statuses MTurk reports.
LIVE_HIT_STATUSES = ("Assignable", "Unassignable", "Reviewable", "Reviewing")


class MTurkError(Exception):
    """Raised when MTurk refuses a call, or keeps failing after our retries."""

    def __init__(self, operation: str, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.retryable = retryable

    @property
    def missing(self) -> bool:
        """Whether the error says the HIT or assignment named does not exist (any more)."""
        return "does not exist" in self.message.lower()

    @property
    def already_done(self) -> bool:
        """Whether the error says a call with this request token was already carried out."""
        text = self.message.lower()
        return "hitalreadyexists" in self.code.lower() or (
            self.code == "RequestError" and (
                "already been processed" in text or "already exists" in text))


class MTurk(Protocol):
    """What we ask of Mechanical Turk; ``BotoMTurk`` talks to it, ``FakeMTurk`` pretends."""

    def account_balance(self) -> Decimal: ...
    def create_hit_type(self, **params: Any) -> str: ...
    def create_hit(self, *, hit_type_id: str, max_assignments: int, lifetime_seconds: int,
                   question: str, token: str, annotation: str) -> dict[str, Any]: ...
    def get_hit(self, hit_id: str) -> dict[str, Any]: ...
    def list_hits(self) -> Iterator[dict[str, Any]]: ...
    def list_assignments(self, hit_id: str) -> Iterator[dict[str, Any]]: ...
    def approve(self, assignment_id: str, feedback: str | None) -> None: ...
    def reject(self, assignment_id: str, feedback: str) -> None: ...
    def send_bonus(self, *, worker_id: str, assignment_id: str, amount: Decimal, reason: str,
                   token: str) -> bool: ...
    def bonus_payments(self, assignment_id: str) -> Iterator[dict[str, Any]]: ...
    def expire_hit(self, hit_id: str) -> None: ...
    def delete_hit(self, hit_id: str) -> None: ...
    def grant_qualification(self, type_id: str, worker_id: str, value: int) -> None: ...
    def revoke_qualification(self, type_id: str, worker_id: str, reason: str) -> None: ...
    def qualified_workers(self, type_id: str) -> Iterator[str]: ...


@dataclass(frozen=True)
class ClientSettings:
    """Where and how to reach MTurk."""

    sandbox: bool = True
    production: bool = False
    endpoint_url: str = ""
    attempts: int = 5
    #: first backoff in seconds; each retry waits a random time up to base * 2**try
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    timeout_seconds: float = 30.0

    @classmethod
    def from_config(cls, config: Any) -> ClientSettings:
        """Return the settings in a Flask-style config mapping."""
        return cls(sandbox=bool(config.get("MTURK_SANDBOX", True)),
                   production=bool(config.get("MTURK_PRODUCTION", False)),
                   endpoint_url=str(config.get("MTURK_ENDPOINT_URL") or ""),
                   attempts=int(config.get("MTURK_RETRY_ATTEMPTS", 5)),
                   backoff_base=int(config.get("MTURK_BACKOFF_MS", 500)) / 1000)

    def endpoint(self) -> str | None:
        """Return the endpoint to call; None lets boto3 pick production (or AWS_ENDPOINT_URL_MTURK)."""
        if self.endpoint_url:
            return self.endpoint_url
        if self.live:
            return None
        return SANDBOX_ENDPOINT

    @property
    def live(self) -> bool:
        """Whether real HITs are made: only with the sandbox off and production switched on."""
        return self.production and not self.sandbox


def build_boto_client(settings: ClientSettings, session: Any = None) -> Any:
    """Return a boto3 ``mturk`` client for ``settings``; credentials from boto3's chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=REGION, connect_timeout=settings.timeout_seconds,
        read_timeout=settings.timeout_seconds,
        # One attempt: our wrapper retries, so a throttled call is not retried twice over.
        retries={"mode": "standard", "total_max_attempts": 1})
    session = session or boto3.session.Session()
    return session.client("mturk", endpoint_url=settings.endpoint(), config=config)


def _utc(value: Any) -> Any:
    """Return a datetime botocore parsed (in local time) as UTC; anything else unchanged."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    return value


def _utc_all(record: dict[str, Any]) -> dict[str, Any]:
    return {key: _utc(value) for key, value in record.items()}


class BotoMTurk:
    """The ``MTurk`` interface over a boto3 client, with retries and MTurk's error codes."""

    def __init__(self, client: Any, settings: ClientSettings | None = None, *,
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.client = client
        self.settings = settings or ClientSettings()
        self._sleep = sleep
        self._rand = rand

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> BotoMTurk:
        return cls(build_boto_client(settings), settings)

    def _call(self, operation: str, **params: Any) -> Any:
        method = getattr(self.client, operation)
        return self._retrying(operation, lambda: method(**params))

    def _retrying(self, operation: str, attempt_once: Callable[[], Any]) -> Any:
        """Return ``attempt_once()``, retrying throttling and faults with backoff and jitter."""
        from botocore.exceptions import (
            ClientError,
            ReadTimeoutError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        attempts = max(self.settings.attempts, 1)
        for attempt in range(1, attempts + 1):
            try:
                return attempt_once()
            except ClientError as exc:
                error = exc.response.get("Error", {})
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                code = error.get("Code") or "Unknown"
                retryable = code in RETRYABLE_CODES or status >= 500
                failure = MTurkError(exc.operation_name, code, error.get("Message", ""),
                                     retryable=retryable)
            except (BotoConnectionError, ReadTimeoutError) as exc:
                failure = MTurkError(operation, "ConnectionError", str(exc), retryable=True)
            if not failure.retryable or attempt == attempts:
                raise failure
            delay = self._rand() * min(self.settings.backoff_cap,
                                       self.settings.backoff_base * 2 ** (attempt - 1))
            log.warning("MTurk %s failed with %s; retry %d of %d in %.2fs", failure.operation,
                        failure.code, attempt, attempts - 1, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")

    def account_balance(self) -> Decimal:
        answer = self._call("get_account_balance")
        return Decimal(answer.get("AvailableBalance") or "0")

    def create_hit_type(self, **params: Any) -> str:
        params = {**params, "Reward": wire_amount(params["Reward"])}
        return str(self._call("create_hit_type", **params)["HITTypeId"])

    def create_hit(self, *, hit_type_id: str, max_assignments: int, lifetime_seconds: int,
                   question: str, token: str, annotation: str) -> dict[str, Any]:
        # A repeated token is refused (MTurkError.already_done), as MTurk does; the publish
        # service then finds the first HIT (coordinator.mturk.services.create_or_find_hit).
        answer = self._call(
            "create_hit_with_hit_type", HITTypeId=hit_type_id, MaxAssignments=max_assignments,
            LifetimeInSeconds=lifetime_seconds, Question=question, UniqueRequestToken=token,
            RequesterAnnotation=annotation)
        return _utc_all(answer["HIT"])

    def get_hit(self, hit_id: str) -> dict[str, Any]:
        return _utc_all(self._call("get_hit", HITId=hit_id)["HIT"])

    def _pages(self, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        # MTurk may send a NextToken with its last page; boto3's paginator asks once more and
        # stops on the answer without one, which hand-written loops tend to get wrong. A
        # paginator cannot resume after an error, so the whole listing is the unit retried:
        # a throttled second page starts over from the first, and nothing is yielded twice.
        paginator = self.client.get_paginator(operation)

        def listing() -> list[dict[str, Any]]:
            pages = paginator.paginate(**params, PaginationConfig={"PageSize": 100})
            return [_utc_all(item) for page in pages for item in page.get(key, [])]

        return iter(self._retrying(operation, listing))

    def list_hits(self) -> Iterator[dict[str, Any]]:
        return self._pages("list_hits", "HITs")

    def list_assignments(self, hit_id: str) -> Iterator[dict[str, Any]]:
        return self._pages("list_assignments_for_hit", "Assignments", HITId=hit_id,
                           AssignmentStatuses=["Submitted", "Approved", "Rejected"])

    def approve(self, assignment_id: str, feedback: str | None) -> None:
        params: dict[str, Any] = {"AssignmentId": assignment_id}
        if feedback:
            params["RequesterFeedback"] = feedback[:1024]
        self._call("approve_assignment", **params)

    def reject(self, assignment_id: str, feedback: str) -> None:
        self._call("reject_assignment", AssignmentId=assignment_id, RequesterFeedback=feedback[:1024])

    def send_bonus(self, *, worker_id: str, assignment_id: str, amount: Decimal, reason: str,
                   token: str) -> bool:
        """Pay a bonus once; return False when MTurk says this token was already paid."""
        try:
            self._call("send_bonus", WorkerId=worker_id, AssignmentId=assignment_id,
                       BonusAmount=wire_amount(amount), Reason=reason, UniqueRequestToken=token)
            return True
        except MTurkError as exc:
            if exc.already_done:
                return False
            raise

    def bonus_payments(self, assignment_id: str) -> Iterator[dict[str, Any]]:
        """Return every bonus MTurk paid for an assignment: WorkerId, BonusAmount, Reason, GrantTime."""
        for payment in self._pages("list_bonus_payments", "BonusPayments", AssignmentId=assignment_id):
            yield {**payment, "BonusAmount": Decimal(str(payment.get("BonusAmount") or "0"))}

    def expire_hit(self, hit_id: str) -> None:
        # A time in the past expires the HIT at once; workers holding an assignment may finish.
        self._call("update_expiration_for_hit", HITId=hit_id,
                   ExpireAt=datetime(2015, 1, 1, tzinfo=timezone.utc))

    def delete_hit(self, hit_id: str) -> None:
        self._call("delete_hit", HITId=hit_id)

    def grant_qualification(self, type_id: str, worker_id: str, value: int) -> None:
        self._call("associate_qualification_with_worker", QualificationTypeId=type_id,
                   WorkerId=worker_id, IntegerValue=value, SendNotification=False)

    def revoke_qualification(self, type_id: str, worker_id: str, reason: str) -> None:
        self._call("disassociate_qualification_from_worker", QualificationTypeId=type_id,
                   WorkerId=worker_id, Reason=reason)

    def qualified_workers(self, type_id: str) -> Iterator[str]:
        for item in self._pages("list_workers_with_qualification_type", "Qualifications",
                                QualificationTypeId=type_id, Status="Granted"):
            yield str(item["WorkerId"])
