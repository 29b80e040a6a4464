"""Signed webhook calls to vendors, behind a small ``WebhookSender`` interface.

A body is signed as Stripe-style ``t=<unix seconds>,v1=<hex>``, where ``v1`` is the
HMAC-SHA256, keyed with the shared secret, of ``f"{t}.".encode() + body``. Binding the
timestamp into the MAC lets a receiver refuse replays older than a few minutes.

Standard library only: no Flask, no requests. ``HttpSender`` is the real client,
``FakeSender`` the in-memory stand-in for unit tests.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "SIGNATURE_HEADER", "FakeSender", "HttpSender", "SendResult", "SentRequest",
    "WebhookSender", "sign", "verify",
]

#: The header carrying ``t=<unix>,v1=<hex>``.
SIGNATURE_HEADER = "X-Coordinator-Signature"
#: How much of a receiver's answer is read; we keep only the status code.
MAX_RESPONSE_BYTES = 4096
#: Longest error text kept for the delivery log.
MAX_ERROR_CHARS = 500
USER_AGENT = "annotation-coordinator-webhooks/1"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},v1={_mac(secret, int(timestamp), body)}"


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return None, []
        elif key == "v1":
            signatures.append(value.strip())
    return timestamp, signatures


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300,
           now: float | None = None) -> bool:
    """Return whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now.

    Compares in constant time. Several ``v1=`` values are accepted, any one matching.
    """
    if not secret or not header:
        return False
    timestamp, signatures = _parse(header)
    if timestamp is None or not signatures:
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


@dataclass(frozen=True)
class SendResult:
    """How one attempt went: the receiver's status code, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender(Protocol):
    """Posts one webhook body; never raises for network trouble, reports it instead."""

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult: ...


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text[:MAX_ERROR_CHARS]


def is_public_address(address: str) -> bool:
    """Return whether an IP address is on the public internet (not private, loopback, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to an address resolved and vetted beforehand, verified by host name.

    Connecting to the vetted address, not the name, means a DNS answer that changes between
    the check and the call (DNS rebinding) cannot steer a webhook into our own network.
    """

    def __init__(self, host: str, port: int | None, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class HttpSender:
    """POSTs over HTTPS with certificate verification; never follows redirects.

    ``ca_bundle`` adds a PEM file of extra trusted CAs (a private CA) to the system's.
    A redirect counts as a failed attempt like any other non-2xx answer. Hosts that
    resolve to private, loopback or link-local addresses are refused unless
    ``allow_private`` is set, so a vendor cannot use its webhook to probe our network.
    """

    def __init__(self, timeout_s: float, ca_bundle: str | None = None, *,
                 allow_private: bool = False) -> None:
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        if ca_bundle:
            self.context.load_verify_locations(cafile=ca_bundle)

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return SendResult(error="refused: only https:// URLs with a host are called")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            port = parts.port
        except ValueError as error:
            return SendResult(error=_short(error))
        try:
            address = self._vetted_address(parts.hostname, port or 443)
        except (OSError, ValueError) as error:
            return SendResult(error=_short(error))
        connection = _PinnedHTTPSConnection(
            parts.hostname, port or 443, address, timeout=self.timeout_s, context=self.context)
        try:
            connection.request("POST", target, body=body, headers={
                "User-Agent": USER_AGENT, **headers, "Content-Length": str(len(body))})
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return SendResult(status_code=response.status)
        except ssl.SSLCertVerificationError as error:
            return SendResult(error=_short(error))
        except (socket.timeout, TimeoutError):
            return SendResult(error=f"timed out after {self.timeout_s:g} s")
        except (OSError, http.client.HTTPException) as error:
            return SendResult(error=_short(error))
        finally:
            connection.close()


    def _vetted_address(self, host: str, port: int) -> str:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [info[4][0] for info in infos]
        if not self.allow_private:
            private = [a for a in addresses if not is_public_address(a)]
            if private:
                raise ValueError(f"refused: {host} resolves to a non-public address "
                                 f"({private[0]}); set WEBHOOK_ALLOW_PRIVATE_HOSTS to allow it")
        return addresses[0]


@dataclass(frozen=True)
class SentRequest:
    """One call a FakeSender received."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeSender:
    """Records every call and answers from a script, for unit tests.

    ``results`` are returned in order, the last one repeating; a callable is asked with
    the URL. With neither, every call gets a 200.
    """

    results: Iterable[SendResult] | Callable[[str], SendResult] = ()
    calls: list[SentRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script = None if callable(self.results) else list(self.results)

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        self.calls.append(SentRequest(url, bytes(body), dict(headers)))
        if self._script is None:
            return self.results(url)  # type: ignore[operator]
        if not self._script:
            return SendResult(status_code=200)
        return self._script.pop(0) if len(self._script) > 1 else self._script[0]
