"""A local stand-in for the MTurk requester API, spoken to by the real boto3 client.

A threaded HTTP server answering the JSON 1.1 protocol (``X-Amz-Target:
MTurkRequesterServiceV20170117.<Operation>``) for the operations we use, with its state
kept in a :class:`~integrations.mturk.fake.FakeMTurk`. ``inject(operation, code, status)``
makes the next call(s) of an operation fail (throttling, faults), and list operations page
like MTurk does, including a NextToken on the last page.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from integrations.mturk.client import MTurkError
from integrations.mturk.fake import FakeMTurk

TARGET_PREFIX = "MTurkRequesterServiceV20170117."


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


class StandIn:
    """The server's state, its injected failures and the requests it saw."""

    def __init__(self, page_size: int = 2) -> None:
        self.state = FakeMTurk()
        self.page_size = page_size
        self.failures: dict[str, list[tuple[str, int, str] | None]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def inject(self, operation: str, code: str = "ServiceFault", status: int = 500,
               message: str = "injected", times: int = 1, after: int = 0) -> None:
        """Fail the next ``times`` calls of ``operation`` once ``after`` calls went through."""
        pending = self.failures.setdefault(operation, [])
        pending.extend([None] * after)
        pending.extend([(code, status, message)] * times)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [body for name, body in self.requests if name == operation]

    def _page(self, items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
        start = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults") or self.page_size), self.page_size)
        page = items[start:start + size]
        answer: dict[str, Any] = {key: page, "NumResults": len(page)}
        # MTurk sends a NextToken with the last full page too; the next call gets none.
        if start + size <= len(items) and page:
            answer["NextToken"] = str(start + size)
        return answer

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        if operation == "GetAccountBalance":
            return {"AvailableBalance": str(s.account_balance())}
        if operation == "CreateHITType":
            params = dict(body)
            params["Reward"] = Decimal(params["Reward"])  # a non-number fails here, as on MTurk
            return {"HITTypeId": s.create_hit_type(**params)}
        if operation == "CreateHITWithHITType":
            token = body.get("UniqueRequestToken")
            return {"HIT": s.create_hit(
                hit_type_id=body["HITTypeId"], max_assignments=body["MaxAssignments"],
                lifetime_seconds=body["LifetimeInSeconds"], question=body["Question"],
                token=token or "", annotation=body.get("RequesterAnnotation", ""))}
        if operation == "GetHIT":
            return {"HIT": s.get_hit(body["HITId"])}
        if operation == "ListHITs":
            return self._page(list(s.list_hits()), body, "HITs")
        if operation == "ListAssignmentsForHIT":
            wanted = set(body.get("AssignmentStatuses") or ["Submitted", "Approved", "Rejected"])
            items = [a for a in s.list_assignments(body["HITId"]) if a["AssignmentStatus"] in wanted]
            return self._page(items, body, "Assignments")
        if operation == "ApproveAssignment":
            s.approve(body["AssignmentId"], body.get("RequesterFeedback"))
            return {}
        if operation == "RejectAssignment":
            s.reject(body["AssignmentId"], body["RequesterFeedback"])
            return {}
        if operation == "SendBonus":
            token = body.get("UniqueRequestToken")
            if token and token in s.bonuses:
                raise MTurkError(operation, "RequestError",
                                 f'The idempotency token "{token}" has already been processed.')
            s.send_bonus(worker_id=body["WorkerId"], assignment_id=body["AssignmentId"],
                         amount=Decimal(body["BonusAmount"]), reason=body["Reason"], token=token or "")
            return {}
        if operation == "ListBonusPayments":
            if not body.get("AssignmentId") and not body.get("HITId"):
                raise MTurkError(operation, "ValidationException", "give HITId or AssignmentId")
            if body.get("AssignmentId"):
                items = list(s.bonus_payments(body["AssignmentId"]))
            else:
                assignments = {a["AssignmentId"] for a in s.assignments.get(body["HITId"], [])}
                items = [dict(p) for p in s.payments if p["AssignmentId"] in assignments]
            return self._page(items, body, "BonusPayments")
        if operation == "UpdateExpirationForHIT":
            s.expire_hit(body["HITId"])
            return {}
        if operation == "DeleteHIT":
            s.delete_hit(body["HITId"])
            return {}
        if operation == "AssociateQualificationWithWorker":
            s.grant_qualification(body["QualificationTypeId"], body["WorkerId"], body.get("IntegerValue", 1))
            return {}
        if operation == "DisassociateQualificationFromWorker":
            s.revoke_qualification(body["QualificationTypeId"], body["WorkerId"], body.get("Reason", ""))
            return {}
        if operation == "ListWorkersWithQualificationType":
            items = [{"WorkerId": w, "QualificationTypeId": body["QualificationTypeId"],
                      "IntegerValue": v, "Status": "Granted"}
                     for w, v in s.qualifications.get(body["QualificationTypeId"], {}).items()]
            return self._page(items, body, "Qualifications")
        raise MTurkError(operation, "RequestError", f"the stand-in does not know {operation}")


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(_wire(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", "standin")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            target = self.headers.get("X-Amz-Target", "")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not target.startswith(TARGET_PREFIX) or "Authorization" not in self.headers:
                self._send(400, {"__type": "RequestError", "Message": "not a signed MTurk call"})
                return
            operation = target[len(TARGET_PREFIX):]
            with standin.lock:
                standin.requests.append((operation, body))
                pending = standin.failures.get(operation)
                failure = pending.pop(0) if pending else None
                if failure is not None:
                    code, status, message = failure
                    self._send(status, {"__type": code, "Message": message})
                    return
                try:
                    answer = standin.handle(operation, body)
                except MTurkError as exc:
                    self._send(400, {"__type": exc.code, "Message": exc.message})
                    return
            self._send(200, answer)

    return Handler


@contextmanager
def running(page_size: int = 2) -> Iterator[tuple[StandIn, str]]:
    """Start a stand-in on a free loopback port; yield it and its URL."""
    standin = StandIn(page_size)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
