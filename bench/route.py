"""Benchmark: time to route a project's tasks to workforces, beside a plain insert of the result.

Both sides run in the same process against the same scratch PostgreSQL database, which the
benchmark creates, migrates and drops. Setup (not timed) goes through the API: ten vendor
workforces in seven regions with different languages, daily capacities, prices and
currencies; a project at redundancy 3 whose residency rule keeps one region out; a published
guideline; the tasks imported in a dozen languages, some needing two. "Ours" is one
``POST /projects/<id>/dispatch`` over a real socket: the project lock, the capacity used
today, the eligibility of every workforce per language set, scoring and spreading by price
and free capacity, the unroutable report, and storing the run, one routing decision per task
and every assignment, then the commit. The baseline inserts the assignment rows that dispatch
created, read back from the table, with ``executemany`` in batches of 5,000 in one
transaction.

    python bench/route.py            # 100,000 tasks, redundancy 3, 10 workforces, best of 3
    python bench/route.py --quick    # 5,000 tasks, once
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Client,
    Timings,
    bench_app,
    expect,
    libpq_url,
    make_timings,
    manager_token,
    print_summary,
    print_timings,
    scratch_database,
    server_version,
    serving,
)

BENCH = "route"
REDUNDANCY = 3
BASELINE_BATCH = 5000
GUIDE = "# Sentiment\n\nLabel each review by the feeling it expresses.\n"

#: name, region, languages, share of the day's work it can take, price, currency, timezone
WORKFORCES = [
    ("Berlin Annotations", "eu", ["de", "en"], 0.22, "0.0500", "EUR", "Europe/Berlin"),
    ("Lyon Data", "eu", ["fr", "en", "ar"], 0.14, "0.0600", "EUR", "Europe/Paris"),
    ("London Labelling", "uk", ["en"], 0.16, "0.0400", "GBP", "Europe/London"),
    ("Pune Crowd", "in", ["hi", "en"], 0.30, "2.0000", "INR", "Asia/Kolkata"),
    ("São Paulo Rotulagem", "latam", ["pt_BR", "es"], 0.14, "0.2500", "BRL", "America/Sao_Paulo"),
    ("CDMX Etiquetas", "latam", ["es", "en"], 0.14, "0.9000", "MXN", "America/Mexico_City"),
    ("Osaka Tagging", "apac", ["ja", "en"], 0.10, "6.0000", "JPY", "Asia/Tokyo"),
    ("Shenzhen Biaozhu", "cn", ["zh_Hans", "en"], 0.20, "0.3000", "CNY", "Asia/Shanghai"),
    ("Nairobi Tasks", "africa", ["sw", "en", "fr"], 0.10, "5.0000", "KES", "Africa/Nairobi"),
    ("Austin Review", "us", ["en", "es"], 0.20, "0.0800", "USD", "America/Chicago"),
]
#: The project's residency rule: every region but ``cn``, so Chinese tasks are reported.
ALLOWED_REGIONS = ["eu", "uk", "in", "latam", "apac", "africa", "us"]
#: Task languages and how often they come up.
LANGUAGES = {"en": 30, "de": 10, "fr": 8, "es": 10, "pt_BR": 7, "hi": 12, "ja": 6,
             "zh_Hans": 3, "ar": 4, "sw": 4, "tr": 1}
TEXTS = ["The delivery arrived two days late.", "Customer support answered quickly.",
         "Great value for the price.", "I am not sure the update fixed it."]


# --- setup -----------------------------------------------------------------------------------


def make_tasks(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Return ``count`` tasks; one in ten also needs English beside its own language."""
    rng = random.Random(seed)
    codes, weights = list(LANGUAGES), list(LANGUAGES.values())
    tasks = []
    for number in range(count):
        language = rng.choices(codes, weights)[0]
        languages = [language, "en"] if language != "en" and rng.random() < 0.1 else [language]
        tasks.append({"external_id": f"t-{number}", "languages": languages,
                      "payload": {"text": f"{rng.choice(TEXTS)} #{number}"}})
    return tasks


def prepare(client: Client, tasks: list[dict[str, Any]]) -> str:
    """Create the workforces and the project, publish a guideline, import the tasks."""
    wanted = len(tasks) * REDUNDANCY
    for name, region, languages, share, price, currency, zone in WORKFORCES:
        client.call("POST", "/api/v1/workforces", {
            "kind": "vendor", "name": name, "region": region, "countries": ["US"],
            "languages": languages, "daily_capacity": max(int(wanted * share), 1),
            "price_per_label": price, "currency": currency, "timezone": zone}, expected=201)
    project = client.call("POST", "/api/v1/projects", {
        "name": "bench route", "label_classes": ["positive", "negative", "neutral"],
        "source_locale": "en", "redundancy": REDUNDANCY, "residency_region": "global",
        "allowed_regions": ALLOWED_REGIONS}, expected=201)
    base = f"/api/v1/projects/{project['id']}"
    client.call("POST", f"{base}/guidelines", {"title": "g", "source_markdown": GUIDE}, expected=201)
    client.call("POST", f"{base}/guidelines/1/publish")
    body = ("\n".join(json.dumps(t, ensure_ascii=False) for t in tasks) + "\n").encode()
    imported = client.call("POST", f"{base}/tasks/import", body, content_type="application/x-ndjson")
    expect(imported["created"] == len(tasks), f"the import created {imported['created']}")
    return base


# --- the measurements ------------------------------------------------------------------------

COLUMNS = ("project_id", "task_id", "workforce_id", "run_id", "guideline_version_id", "status",
           "price", "currency", "created_at")
INSERT_SQL = f"INSERT INTO assignments ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"


def empty(conninfo: str, *, runs: bool) -> None:
    """Remove the assignments (and the runs and decisions) so the next measurement starts clean."""
    # Everything else that refers to assignments (labels, claims, deliveries, HIT slots, review
    # items) is empty in the benchmark's database; CASCADE keeps this true as tables are added.
    tables = ["assignments", "labels", "task_workers", "webhook_deliveries"]
    tables += ["routing_decisions", "dispatch_runs"] if runs else []
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        for table in tables:
            connection.execute(f"VACUUM ANALYZE {table}")


def created_rows(conninfo: str) -> list[tuple[Any, ...]]:
    """Return the assignment rows dispatch stored, as insert parameters."""
    with psycopg.connect(conninfo) as connection:
        return connection.execute(f"SELECT {', '.join(COLUMNS)} FROM assignments ORDER BY id").fetchall()


def insert_baseline(conninfo: str, rows: list[tuple[Any, ...]]) -> float:
    """Insert ``rows`` in batches in one transaction and return the seconds it took."""
    with psycopg.connect(conninfo) as connection:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for start in range(0, len(rows), BASELINE_BATCH):
                cursor.executemany(INSERT_SQL, rows[start:start + BASELINE_BATCH])
        connection.commit()
        return time.perf_counter() - started


def count_assignments(conninfo: str) -> int:
    with psycopg.connect(conninfo) as connection:
        return connection.execute("SELECT count(*) FROM assignments").fetchone()[0]


@dataclass
class Outcome:
    """What the last dispatch did, for the report."""

    created: int = 0
    unroutable: int = 0
    by_workforce: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def measure(tasks: list[dict[str, Any]], repeat: int) -> tuple[dict[str, Timings], Outcome, str]:
    """Set up once, then run every repetition: dispatch, then the baseline of its rows."""
    timings = make_timings(("baseline", "psycopg executemany (baseline)"),
                           ("ours", "HTTP dispatch (ours)"))
    outcome = Outcome()
    with scratch_database("bench_route") as url, bench_app(url) as app:
        conninfo = libpq_url(url)
        token = manager_token(app)
        with serving(app) as server:
            client = Client(server.server_port, token)
            base = prepare(client, tasks)
            outcome.names = {str(w["id"]): w["name"] for w in
                             client.call("GET", "/api/v1/workforces?page_size=100")}
            for _ in range(repeat):
                empty(conninfo, runs=True)
                started = time.perf_counter()
                result = client.call("POST", f"{base}/dispatch", {})
                timings["ours"].seconds.append(time.perf_counter() - started)
                created = result["assignments_created"]
                expect(count_assignments(conninfo) == created, "dispatch lost assignments")
                expect(result["tasks_considered"] == len(tasks), "dispatch skipped tasks")
                outcome.created, outcome.unroutable = created, result["unroutable"]
                outcome.by_workforce = result["by_workforce"]
                rows = created_rows(conninfo)
                empty(conninfo, runs=False)
                timings["baseline"].seconds.append(insert_baseline(conninfo, rows))
                expect(count_assignments(conninfo) == created, "the baseline lost rows")
        version = server_version(conninfo)
    return timings, outcome, version


# --- the report ------------------------------------------------------------------------------


def print_report(tasks: list[dict[str, Any]], repeat: int, timings: dict[str, Timings],
                 outcome: Outcome, version: str) -> dict[str, Any]:
    """Print the tables and return the summary the JSON line is made of."""
    rows = outcome.created
    languages = Counter(code for t in tasks for code in t["languages"])
    print(f"{BENCH}: {len(tasks):,} tasks x redundancy {REDUNDANCY} over {len(WORKFORCES)} "
          f"workforces ({len(languages)} languages; residency keeps 1 region out), "
          f"PostgreSQL {version}, best of {repeat}")
    print(f"assignments created: {rows:,}; unroutable tasks: {outcome.unroutable:,}")
    print(f"{'workforce':<24}{'region':>8}{'price':>14}{'assignments':>13}")
    for name, region, _, _, price, currency, _ in WORKFORCES:
        wid = next((k for k, v in outcome.names.items() if v == name), "")
        print(f"{name:<24}{region:>8}{price + ' ' + currency:>14}"
              f"{outcome.by_workforce.get(wid, 0):>13,}")
    print_timings(timings, rows, "rows/s (best)")
    ratio = timings["baseline"].best() / timings["ours"].best()
    print(f"ratio ours/baseline: {ratio:.3f} (routing and storing decisions, against "
          f"inserting the same assignment rows)")
    return {"bench": BENCH, "ratio": round(ratio, 4), "tasks": len(tasks),
            "redundancy": REDUNDANCY, "workforces": len(WORKFORCES), "assignments": rows,
            "unroutable": outcome.unroutable, "ours_s": round(timings["ours"].best(), 3),
            "baseline_s": round(timings["baseline"].best(), 3),
            "ours_rows_per_s": round(rows / timings["ours"].best(), 1),
            "baseline_rows_per_s": round(rows / timings["baseline"].best(), 1), "repeat": repeat}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 tasks, one repetition")
    parser.add_argument("--tasks", type=int, help="tasks to route (default 100,000)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (5_000 if args.quick else 100_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table, then the JSON line."""
    args = parse_args(argv)
    tasks = make_tasks(args.tasks)
    timings, outcome, version = measure(tasks, args.repeat)
    summary = print_report(tasks, args.repeat, timings, outcome, version)
    print_summary(summary, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
