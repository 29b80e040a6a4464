"""Benchmark: labels accepted per second through the bulk submit endpoint, beside a plain insert.

Both sides run in the same process against the same scratch PostgreSQL database, which the
benchmark creates, migrates and drops. Setup (not timed) goes through the API like a real
project: a vendor workforce, a project at redundancy 3, a published guideline, the tasks
imported, dispatched and leased to the vendor; the vendor's workers are registered beforehand,
as they are once a vendor has been working for a day. "Ours" is then the whole server path for
each batch of 5,000 labels: a real socket, the werkzeug server, auth, JSON parsing and
validation, the idempotency look-up and key lock, every per-item check (class,
lease, duplicate worker across vendors), claiming the assignments (a conditional update), the
label insert, the worker claims, the stored response, the audit event and the commit. The baseline
inserts the same label rows into the same ``labels`` table with ``executemany``, in the same
batches, one commit per batch.

    python bench/submit_labels.py            # 100,000 labels in batches of 5,000, best of 3
    python bench/submit_labels.py --quick    # 10,000 labels in batches of 5,000, once
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask

from coordinator import db
from coordinator.accounts import services as accounts
from coordinator.audit.services import Actor
from coordinator.workforces import services as workforces

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Client,
    Timings,
    bench_app,
    expect,
    libpq_url,
    make_timings,
    print_summary,
    print_timings,
    scratch_database,
    server_version,
    serving,
)

BENCH = "submit_labels"
TARGET_RATIO = 0.3
REDUNDANCY = 3
WORKERS = 600
#: Share of labels that carry a cross-vendor identity hash.
IDENTITY_SHARE = 0.3
LEASE_PAGE = 500
CLASSES = ["positive", "negative", "neutral", "mixed"]
GUIDE = "# Sentiment\n\nLabel each review by the feeling it expresses.\n"
TEXTS = ["The delivery arrived two days late.", "Der Kundendienst war schnell.",
         "Très bon rapport qualité-prix.", "配達が二日遅れました。", "डिलीवरी देर से आई।",
         "El pedido llegó tarde.", "Ótimo custo-benefício."]


@dataclass(frozen=True)
class Leased:
    """One leased assignment, with what a label for it needs."""

    assignment_id: int
    task_id: int
    project_id: int
    workforce_id: int
    guideline_version_id: int
    guideline_locale: str


# --- setup -----------------------------------------------------------------------------------


def tokens(app: Flask) -> tuple[str, str, int]:
    """Create a manager and a vendor with its workforce; return both tokens and the workforce."""
    with app.app_context():
        session = db.session()
        actor = Actor.system()
        workforce = workforces.create_workforce(
            session, actor, kind="vendor", name="Bench vendor", region="eu", countries=["DE"],
            languages=["en", "de"], daily_capacity=10_000_000, price_per_label=Decimal("0.05"),
            currency="EUR", timezone="Europe/Berlin")
        manager = accounts.create_account(session, actor, name="bench-manager", role="manager")
        vendor = accounts.create_account(session, actor, name="bench-vendor", role="vendor",
                                         workforce_id=workforce.id)
        manager_secret = accounts.issue_token(session, actor, manager.id, name="bench").secret
        vendor_secret = accounts.issue_token(session, actor, vendor.id, name="bench").secret
        session.commit()
        return manager_secret, vendor_secret, workforce.id


def prepare(manager: Client, vendor: Client, labels: int) -> list[Leased]:
    """Create a project with enough tasks, dispatch them and lease every assignment."""
    project = manager.call("POST", "/api/v1/projects", {
        "name": "bench labels", "label_classes": CLASSES, "source_locale": "en",
        "redundancy": REDUNDANCY, "residency_region": "global", "lease_minutes": 10080},
        expected=201)
    base = f"/api/v1/projects/{project['id']}"
    manager.call("POST", f"{base}/guidelines", {"title": "g", "source_markdown": GUIDE}, expected=201)
    manager.call("POST", f"{base}/guidelines/1/publish")
    tasks = -(-labels // REDUNDANCY)
    body = ("\n".join(json.dumps({"external_id": f"t-{n}", "payload": {"text": f"{TEXTS[n % 7]} #{n}"},
                                  "languages": ["en"]}, ensure_ascii=False) for n in range(tasks))
            + "\n").encode()
    manager.call("POST", f"{base}/tasks/import", body, content_type="application/x-ndjson")
    run = manager.call("POST", f"{base}/dispatch", {})
    expect(run["assignments_created"] == tasks * REDUNDANCY, f"dispatch created {run}")
    leased: list[Leased] = []
    while len(leased) < labels:
        page = vendor.call("POST", "/api/v1/vendor/leases", {"limit": LEASE_PAGE})
        expect(bool(page["leases"]), "ran out of work to lease")
        for item in page["leases"]:
            guideline = page["guidelines"][item["guideline"]]
            leased.append(Leased(item["assignment_id"], 0, item["project_id"], 0, 0,
                                 guideline["served_locale"]))
    return leased[:labels]


def complete(conninfo: str, leased: list[Leased]) -> list[Leased]:
    """Fill in the task, workforce and guideline version of each leased assignment."""
    with psycopg.connect(conninfo) as connection:
        rows = {row[0]: row for row in connection.execute(
            "SELECT id, task_id, workforce_id, guideline_version_id FROM assignments "
            "WHERE id = ANY(%s)", ([item.assignment_id for item in leased],))}
    return [Leased(item.assignment_id, rows[item.assignment_id][1], item.project_id,
                   rows[item.assignment_id][2], rows[item.assignment_id][3], item.guideline_locale)
            for item in leased]


def worker_names() -> list[tuple[str, str | None]]:
    """Return each worker's external id and, for some, a cross-vendor identity hash."""
    rng = random.Random(11)
    return [(f"worker-{n:04d}", hashlib.sha256(f"person-{n}@example.org".encode()).hexdigest()
             if rng.random() < IDENTITY_SHARE else None) for n in range(WORKERS)]


def register_workers(conninfo: str, workforce_id: int, names: list[tuple[str, str | None]]
                     ) -> dict[str, int]:
    """Store the vendor's workers, as a vendor that has worked before has them; return ids."""
    now = datetime.now(timezone.utc)
    with psycopg.connect(conninfo) as connection:
        connection.cursor().executemany(
            "INSERT INTO workers (workforce_id, external_id, identity_hash, created_at) "
            "VALUES (%s, %s, %s, %s)", [(workforce_id, name, identity, now) for name, identity in names])
        return dict(connection.execute(
            "SELECT external_id, id FROM workers WHERE workforce_id = %s", (workforce_id,)).fetchall())


@dataclass(frozen=True)
class Item:
    """One label as the vendor sends it, with the assignment it is for."""

    leased: Leased
    worker: str
    identity: str | None
    value: str

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"assignment_id": self.leased.assignment_id, "worker_id": self.worker,
                                "label": self.value}
        if self.identity:
            body["worker_identity"] = self.identity
        return body


def make_items(leased: list[Leased], names: list[tuple[str, str | None]]) -> list[Item]:
    """Give each assignment a label by a worker who has not labelled its task yet."""
    rng = random.Random(5)
    seen: dict[int, int] = {}
    items = []
    for entry in leased:
        slot = seen.get(entry.task_id, 0)
        seen[entry.task_id] = slot + 1
        # The task's slots go to workers far apart in the pool, so they are distinct people.
        name, identity = names[(entry.task_id * 7 + slot * (WORKERS // REDUNDANCY)) % WORKERS]
        items.append(Item(entry, name, identity, rng.choice(CLASSES)))
    rng.shuffle(items)
    return items


def batches(items: list[Item], size: int) -> list[list[Item]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


# --- the measurements ------------------------------------------------------------------------

INSERT_SQL = (
    "INSERT INTO labels (project_id, task_id, assignment_id, workforce_id, worker_id, value, "
    "guideline_version_id, guideline_locale, counted, set_aside, supersedes_id, submitted_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def reset(conninfo: str) -> None:
    """Take every label back, so each measurement starts from the same leased work."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        # CASCADE: tables that refer to labels (MTurk assignments, review verdicts) are empty here.
        connection.execute(
            "TRUNCATE labels, task_workers, idempotent_requests RESTART IDENTITY CASCADE")
        connection.execute(
            "UPDATE assignments SET status = 'leased', worker_id = NULL, submitted_at = NULL, "
            "lease_expires_at = now() + interval '7 days' WHERE status <> 'offered'")
        connection.execute("VACUUM ANALYZE labels")
        connection.execute("VACUUM ANALYZE task_workers")
        connection.execute("VACUUM ANALYZE assignments")


def baseline_rows(chunks: list[list[Item]], worker_ids: dict[str, int]) -> list[list[tuple[Any, ...]]]:
    """Return the label rows ours would write, batch by batch."""
    now = datetime.now(timezone.utc)
    return [[(i.leased.project_id, i.leased.task_id, i.leased.assignment_id, i.leased.workforce_id,
              worker_ids[i.worker], i.value, i.leased.guideline_version_id,
              i.leased.guideline_locale, True, None, None, now) for i in chunk] for chunk in chunks]


def insert_baseline(conninfo: str, rows: list[list[tuple[Any, ...]]]) -> float:
    """Insert each batch with executemany and commit it; return the seconds it took."""
    with psycopg.connect(conninfo) as connection:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for chunk in rows:
                cursor.executemany(INSERT_SQL, chunk)
                connection.commit()
        return time.perf_counter() - started


def submit_all(vendor: Client, bodies: list[bytes], keys: list[str], *, replay: bool) -> float:
    """Post every batch in turn; return the seconds it took. Check each answer."""
    started = time.perf_counter()
    for body, key in zip(bodies, keys, strict=True):
        status, document, headers = vendor.request(
            "POST", "/api/v1/vendor/labels", body, headers={"Idempotency-Key": key})
        expect(status == 200, f"submitting answered {status}: {str(document)[:500]}")
        expect(document["errors"] == 0, f"items were refused: {str(document['results'][:3])[:500]}")
        expect(headers.get("Idempotent-Replayed") == ("true" if replay else "false"),
               "the replay header is wrong")
    return time.perf_counter() - started


def count_labels(conninfo: str) -> int:
    with psycopg.connect(conninfo) as connection:
        return connection.execute("SELECT count(*) FROM labels WHERE counted").fetchone()[0]


def measure(labels: int, batch: int, repeat: int) -> tuple[dict[str, Timings], str]:
    """Set up once, then run every repetition: the baseline, ours and the retry."""
    timings = make_timings(("baseline", "psycopg executemany (baseline)"),
                           ("ours", "HTTP bulk submit (ours)"),
                           ("retry", "HTTP retry, all replayed"))
    with scratch_database("bench_labels") as url, bench_app(url) as app:
        conninfo = libpq_url(url)
        manager_secret, vendor_secret, workforce_id = tokens(app)
        with serving(app) as server:
            manager = Client(server.server_port, manager_secret)
            vendor = Client(server.server_port, vendor_secret)
            leased = complete(conninfo, prepare(manager, vendor, labels))
            names = worker_names()
            worker_ids = register_workers(conninfo, workforce_id, names)
            chunks = batches(make_items(leased, names), batch)
            bodies = [json.dumps({"labels": [i.as_json() for i in chunk]}).encode()
                      for chunk in chunks]
            rows = baseline_rows(chunks, worker_ids)
            for number in range(1, repeat + 1):
                reset(conninfo)
                timings["baseline"].seconds.append(insert_baseline(conninfo, rows))
                expect(count_labels(conninfo) == labels, "the baseline lost rows")
                reset(conninfo)
                keys = [f"run-{number}-batch-{n}" for n in range(len(bodies))]
                timings["ours"].seconds.append(submit_all(vendor, bodies, keys, replay=False))
                expect(count_labels(conninfo) == labels, "the submission lost labels")
                timings["retry"].seconds.append(submit_all(vendor, bodies, keys, replay=True))
                expect(count_labels(conninfo) == labels, "the retry added labels")
        version = server_version(conninfo)
    return timings, version


# --- the report ------------------------------------------------------------------------------


def print_report(labels: int, batch: int, repeat: int, timings: dict[str, Timings],
                 version: str) -> dict[str, Any]:
    """Print the table and return the summary the JSON line is made of."""
    print(f"{BENCH}: {labels:,} labels in batches of {batch:,} (redundancy {REDUNDANCY}, "
          f"{WORKERS} workers, {IDENTITY_SHARE:.0%} with an identity hash), "
          f"PostgreSQL {version}, best of {repeat}")
    print_timings(timings, labels, "labels/s (best)")
    ours = labels / timings["ours"].best()
    baseline = labels / timings["baseline"].best()
    ratio = ours / baseline
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"ratio ours/baseline: {ratio:.3f} ({verdict} the target of {TARGET_RATIO})")
    return {"bench": BENCH, "ratio": round(ratio, 4), "labels": labels, "batch": batch,
            "ours_per_s": round(ours, 1), "baseline_per_s": round(baseline, 1),
            "retry_per_s": round(labels / timings["retry"].best(), 1), "repeat": repeat,
            "target": TARGET_RATIO}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 labels, one repetition")
    parser.add_argument("--labels", type=int, help="labels in all (default 100,000)")
    parser.add_argument("--batch", type=int, help="labels per request (default 5,000)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    args.labels = args.labels or (10_000 if args.quick else 100_000)
    args.batch = args.batch or 5_000
    args.repeat = args.repeat or (1 if args.quick else 3)
    if not 1 <= args.batch <= 5_000:
        parser.error("--batch must be between 1 and 5,000, the endpoint's limit")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table, then the JSON line."""
    args = parse_args(argv)
    timings, version = measure(args.labels, args.batch, args.repeat)
    summary = print_report(args.labels, args.batch, args.repeat, timings, version)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
