"""Settings: one DEFAULTS table, ``COORDINATOR_*`` environment overrides, validation."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "COORDINATOR_"


class ConfigError(ValueError):
    """Raised at start-up when a setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Setting:
    """One configurable value: its default, how to parse it and what it is for."""

    default: Any
    parse: Callable[[str, Any], Any]
    help: str


def _text(raw: str, _default: Any) -> str:
    return str(raw).strip()  # overrides may be Path objects, e.g. INSTANCE_PATH


def _integer(minimum: int, maximum: int) -> Callable[[str, Any], int]:
    def parse(raw: str, _default: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def _boolean(raw: str, _default: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(raw: str, _default: Any) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _database_url(raw: str, _default: Any) -> str:
    value = str(raw).strip()
    if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise ValueError(
            "must be a sqlite:/// or postgresql+psycopg:// URL, got " f"{value.split(':', 1)[0]!r}"
        )
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


#: Brokers Celery can use here: Redis (plain, TLS, Sentinel) and RabbitMQ.
BROKER_SCHEMES = ("redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp")
#: Result backends: Redis, RabbitMQ's rpc, or a database through SQLAlchemy (db+...).
RESULT_BACKEND_SCHEMES = ("redis", "rediss", "sentinel", "rpc")


def _url_with_scheme(schemes: tuple[str, ...], *, database: bool = False
                     ) -> Callable[[str, Any], str]:
    def parse(raw: str, _default: Any) -> str:
        value = str(raw).strip()
        if not value:
            return value
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in schemes and not (database and scheme.startswith("db+")):
            allowed = ", ".join(f"{s}://" for s in schemes) + (", db+..." if database else "")
            raise ValueError(f"must be a URL starting with one of {allowed}; "
                             f"got {scheme + '://' if scheme else repr(value.split(':', 1)[0])}")
        return value

    return parse


def _rates(raw: str, _default: Any) -> str:
    from coordinator.dispatch.money import parse_rates

    parse_rates(str(raw))  # raises ValueError with the bad pair
    return str(raw).strip()


def _readable_file(raw: str, _default: Any) -> str:
    value = str(raw).strip()
    if value and not os.path.isfile(value):
        raise ValueError(f"must be the path of a readable file or empty, got {value!r}")
    if value and not os.access(value, os.R_OK):
        raise ValueError(f"must be a file this process can read, got {value!r}")
    return value


def _locale(raw: str, _default: Any) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(str(raw).strip(), sep="_" if "_" in str(raw) else "-"))
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"must be a locale such as en or pt_BR, got {raw!r}") from None


def _export_location(raw: str, _default: Any) -> str:
    value = str(raw).strip()
    if value.startswith("s3://"):
        if not value[len("s3://"):].split("/", 1)[0]:
            raise ValueError(f"must name a bucket, as in s3://bucket/prefix; got {value!r}")
    elif "://" in value:
        raise ValueError(f"must be a folder or an s3://bucket/prefix URI; got {value!r}")
    return value


#: Every setting the service reads, with its default. Empty DATABASE_URL and SECRET_KEY
#: are filled from the instance folder when the app starts.
DEFAULTS: dict[str, Setting] = {
    "DATABASE_URL": Setting("", _database_url, "SQLAlchemy URL; default: SQLite file in instance/"),
    "INSTANCE_PATH": Setting("", _text, "folder for the SQLite file and the generated secret"),
    "SECRET_KEY": Setting("", _text, "signing key; default: generated once into instance/"),
    "DEFAULT_LOCALE": Setting("en", _locale, "locale of messages when the caller states none"),
    "LOG_FORMAT": Setting("auto", _choice("auto", "json", "text"), "json when not on a terminal"),
    "LOG_LEVEL": Setting("INFO", _choice("debug", "info", "warning", "error"), "log threshold"),
    "MAX_BODY_BYTES": Setting(16 * 2**20, _integer(1024, 2**31), "largest ordinary request body"),
    "IMPORT_MAX_BYTES": Setting(
        128 * 2**20, _integer(1024, 2**34), "largest bulk task import body"
    ),
    "IMPORT_MAX_TASKS": Setting(100_000, _integer(1, 10_000_000), "most tasks in one import"),
    "EXCHANGE_RATES": Setting(
        "", _rates, "extra reference rates to USD for ranking prices, e.g. EUR=1.16,INR=0.0113"),
    "TRUST_PROXY_HEADERS": Setting(False, _boolean, "honour X-Forwarded-* from one proxy"),
    "WEBHOOK_TIMEOUT_SECONDS": Setting(
        10, _integer(1, 60), "seconds to connect to, and then to hear from, a vendor's webhook"),
    "WEBHOOK_MAX_ATTEMPTS": Setting(
        10, _integer(1, 50), "attempts per webhook delivery before it is marked failed"),
    "WEBHOOK_ALLOW_PRIVATE_HOSTS": Setting(
        False, _boolean, "let webhooks call private, loopback and link-local addresses"),
    "WEBHOOK_CA_BUNDLE": Setting(
        "", _readable_file, "PEM file of extra CAs trusted for webhook HTTPS; empty: none"),
    "BROKER_URL": Setting(
        "", _url_with_scheme(BROKER_SCHEMES),
        "Celery broker (redis://, amqp://); empty: jobs run inside the serving process"),
    "RESULT_BACKEND_URL": Setting(
        "", _url_with_scheme(RESULT_BACKEND_SCHEMES, database=True),
        "where Celery keeps job results; empty: results are not kept"),
    "JOBS_IN_PROCESS": Setting(
        "thread", _choice("thread", "inline", "off"),
        "without a broker: run jobs on background threads, inline in the caller, or not at all"),
    "LEASE_SWEEP_SECONDS": Setting(
        60, _integer(0, 86400), "period of the lease-expiry sweep; 0 turns it off"),
    "WEBHOOK_SWEEP_SECONDS": Setting(
        30, _integer(0, 86400), "period of the webhook delivery sweep; 0 turns it off"),
    "EXPORT_LOCATION": Setting(
        "", _export_location,
        "folder or s3://bucket/prefix for training datasets and outputs; default instance/exports"),
    "MTURK_SANDBOX": Setting(
        True, _boolean, "use the MTurk requester sandbox; production needs this off and MTURK_PRODUCTION on"),
    "MTURK_PRODUCTION": Setting(
        False, _boolean, "explicitly allow real MTurk HITs and payments (with MTURK_SANDBOX off)"),
    "MTURK_ENDPOINT_URL": Setting(
        "", _url_with_scheme(("http", "https")), "MTurk endpoint override, e.g. a local stand-in"),
    "MTURK_RETRY_ATTEMPTS": Setting(
        5, _integer(1, 20), "attempts per MTurk call on throttling and service faults"),
    "MTURK_BACKOFF_MS": Setting(
        500, _integer(1, 60000), "first MTurk retry waits up to this many ms, doubling each time"),
    "MTURK_WORKER_PAGE_URL": Setting(
        "", _url_with_scheme(("http", "https")), "public base URL MTurk's frame loads /mturk/task from"),
    "MTURK_TOKEN_SECONDS": Setting(
        7200, _integer(60, 604800), "lifetime of the worker page's signed item token"),
    "REPORT_LINK_SECONDS": Setting(
        3600, _integer(60, 604800), "lifetime of a signed link to a report page or CSV download"),
    "MTURK_POLL_SECONDS": Setting(
        0, _integer(0, 86400), "period of the MTurk results poll, e.g. 300; 0 (default) turns it off"),
}


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the validated settings: DEFAULTS, then the environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    settings: dict[str, Any] = {}
    problems: list[str] = []
    for name, setting in DEFAULTS.items():
        raw: Any = setting.default
        source = "default"
        if ENV_PREFIX + name in environ:
            raw, source = environ[ENV_PREFIX + name], "environment"
        if name in overrides:
            raw, source = overrides.pop(name), "configuration"
        try:
            settings[name] = raw if source == "default" else setting.parse(raw, setting.default)
        except ValueError as exc:
            problems.append(f"{ENV_PREFIX}{name} {exc} (from the {source})")
    settings.update(overrides)  # extra keys such as TESTING pass through to Flask untouched
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return settings
