"""Benchmark: the auditor's report of 1,000,000 labels on PostgreSQL, beside a consensus run.

The project of ``bench/consensus.py`` (1,000,000 counted labels, 200,000 tasks, 1,000
workers in 4 workforces, 5% gold, 1% more kept aside) is loaded into a scratch database,
its labels spread over 30 days. In the same process:

(a) a plain SQL aggregate of the same labels (count per workforce, locale and value): the
    floor of reading them at all;
(b) ``run_consensus``: the Dawid-Skene run the report is computed against (the baseline);
(c) ``build_report``: every section, JSON-ready;
(d) the HTML page: (c) plus the charts and the template;
(e) the page again through ``cached_report``, as a CSV download or a reload after the page
    meets it: the labels fingerprint and audit head are read, the report is not rebuilt;
(g) the agreement breakdowns (``aggregation.breakdown``) alone on a gold-heavy table: 20
    gold tasks answered 3,000 times each (300 with --quick) beside tasks with 5 labels,
    the shape gold re-serving builds; a task with m labels must not cost m**2;
(f) appending one audit event per transaction (hash chain, advisory lock) against a plain
    insert of the same row, the cost the chain adds to every state change.

The ratio is (d) / (b); the targets: the report (c) within 3 times the consensus run it
reports on, the page (d) within 4 times.

    python bench/report.py            # 1,000,000 labels, best of 2
    python bench/report.py --quick    # 20,000 labels, best of 2
    python bench/report.py --labels 200000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from common import (  # noqa: E402
    bench_app,
    expect,
    libpq_url,
    print_summary,
    scratch_database,
    timed,
)
from consensus import FULL_LABELS, QUICK_LABELS, load_project, make_crowd  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from aggregation.breakdown import breakdowns, grouping  # noqa: E402
from coordinator import db  # noqa: E402
from coordinator.audit import guard  # noqa: E402
from coordinator.audit.models import AuditEvent  # noqa: E402
from coordinator.audit.services import Actor, record  # noqa: E402
from coordinator.consensus import services as consensus  # noqa: E402
from coordinator.reports import services  # noqa: E402
from coordinator.reports.rendering import to_html  # noqa: E402

BENCH = "report"
REPORT_TARGET = 3.0
TARGET_RATIO = 4.0
AUDIT_EVENTS = 200
#: Answers per gold task in (g), full and --quick.
GOLD_ANSWERS, GOLD_ANSWERS_QUICK = 3000, 300


def _spread_over_days(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("UPDATE labels SET submitted_at = submitted_at - (id % 30) * "
                           "interval '1 day'")
        connection.execute("VACUUM ANALYZE labels")


def _audit(app: Any) -> tuple[float, float]:
    """Seconds per event: chained record() + commit, and a plain insert + commit."""
    with app.app_context():
        session = db.session()

        def chained() -> None:
            for i in range(AUDIT_EVENTS):
                record(session, Actor.system(), "bench.event", "bench", i, after={"i": i})
                session.commit()

        def plain() -> None:
            for i in range(AUDIT_EVENTS):
                session.execute(insert(AuditEvent.__table__).values(
                    occurred_at=db.utcnow(), action="bench.event", subject_type="bench",
                    subject_id=str(i), before=None, after={"i": i}, seq=-1 - i,
                    prev_hash="0" * 64, hash="0" * 64))
                session.commit()

        chained_s = timed(chained)[0] / AUDIT_EVENTS
        plain_s = timed(plain)[0] / AUDIT_EVENTS
        # The plain rows are no chain: drop them, the append-only guard lifted (a scratch
        # database; see coordinator.audit.guard).
        lift, restore = guard.suspend_statements("postgresql")
        for statement in [*lift, "DELETE FROM audit_events WHERE seq < 0", *restore]:
            session.execute(text(statement))
        session.commit()
    return chained_s, plain_s


def _gold_heavy(answers: int, repeat: int) -> tuple[int, float]:
    """Labels in, and best seconds of, the breakdowns of a gold-heavy table."""
    rng = np.random.default_rng(7)
    workers, gold_tasks, normal = 3000, 20, 20000
    task = np.concatenate([np.repeat(np.arange(gold_tasks), answers),
                           np.repeat(np.arange(gold_tasks, gold_tasks + normal), 5)])
    worker = np.concatenate([*(rng.permutation(workers)[:answers] for _ in range(gold_tasks)),
                             rng.integers(0, workers, normal * 5)])
    truth = rng.integers(0, 4, gold_tasks + normal)
    klass = np.where(rng.random(len(task)) < 0.7, truth[task], rng.integers(0, 4, len(task)))
    workforce = worker % 4
    region = np.array(["eu", "in"], dtype=object)[workforce % 2]
    locale = np.array(["de", "en", "hi"], dtype=object)[worker % 3]
    gold = np.where(task < gold_tasks, truth[task], -1)

    def run() -> Any:
        return breakdowns(task, worker, klass, 4, {
            "workforce": grouping(workforce), "region": grouping(region),
            "locale": grouping(locale), "worker": grouping(worker)}, gold=gold)

    return len(task), min(timed(run)[0] for _ in range(repeat))


def measure(labels: int, repeat: int) -> dict[str, Any]:
    crowd = make_crowd(labels)
    with scratch_database("bench_report") as url:
        conninfo = libpq_url(url)
        project_id = load_project(conninfo, crowd)
        _spread_over_days(conninfo)
        best: dict[str, float] = {}

        def keep(name: str, seconds: float) -> None:
            best[name] = min(seconds, best.get(name, float("inf")))

        with bench_app(url) as app:
            with app.app_context(), app.test_request_context(headers={"Accept-Language": "de"}):
                session = db.session()
                for _ in range(repeat):
                    keep("sql", timed(lambda: session.execute(text(
                        "SELECT workforce_id, guideline_locale, value, count(*) FROM labels "
                        "WHERE project_id = :p AND counted GROUP BY 1, 2, 3"),
                        {"p": project_id}).all())[0])
                    session.rollback()
                    session.execute(text("DELETE FROM worker_skills; DELETE FROM task_consensus;"
                                         " DELETE FROM consensus_runs"))
                    session.commit()

                    def run() -> Any:
                        outcome = consensus.run_consensus(session, Actor.system(), project_id)
                        session.commit()
                        return outcome

                    keep("run", timed(run)[0])
                    seconds, report = timed(lambda: services.build_report(session, project_id))
                    keep("report", seconds)
                    session.rollback()

                    def page() -> str:
                        data = services.build_report(session, project_id)
                        return to_html(data, csv_urls={})

                    seconds, html = timed(page)
                    keep("html", seconds)
                    session.rollback()
                    services.cached_report(session, project_id)  # fill the cache
                    session.rollback()

                    def again() -> str:
                        return to_html(services.cached_report(session, project_id),
                                       csv_urls={})

                    keep("cached", timed(again)[0])
                    session.rollback()
                expect(report["source"]["labels"] == len(crowd.task),
                       f"the report read {report['source']['labels']} labels")
                expect(html.count("<svg") == 3, "the page lacks a chart")
                expect(len(report["gold_over_time"]["rows"]) == 30, "not 30 days of gold")
            chained, plain = _audit(app)
    gold_labels, gold_s = _gold_heavy(GOLD_ANSWERS_QUICK if labels < FULL_LABELS
                                      else GOLD_ANSWERS, repeat)
    return {"labels": len(crowd.task), **best, "audit_chained": chained, "audit_plain": plain,
            "gold_labels": gold_labels, "gold": gold_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 labels")
    parser.add_argument("--labels", type=int, help="counted labels (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    m = measure(args.labels or (QUICK_LABELS if args.quick else FULL_LABELS), args.repeat)
    print(f"{BENCH}: {m['labels']:,} counted labels on PostgreSQL, best of {args.repeat}")
    print(f"{'measurement':<56}{'best s':>9}{'x run':>8}")
    for name, key in [("(a) plain SQL aggregate of the same labels", "sql"),
                      ("(b) consensus run (baseline)", "run"),
                      ("(c) report, every section", "report"),
                      ("(d) report page: (c) + charts + template", "html"),
                      ("(e) page again, report from the cache", "cached"),
                      (f"(g) breakdowns, gold-heavy, {m['gold_labels']:,} labels", "gold")]:
        print(f"{name:<56}{m[key]:>9.3f}{m[key] / m['run']:>8.2f}")
    print(f"audit event + commit: chained {m['audit_chained'] * 1000:.2f} ms, plain insert "
          f"{m['audit_plain'] * 1000:.2f} ms ({AUDIT_EVENTS} each)")
    ratio = m["html"] / m["run"]
    report_ratio = m["report"] / m["run"]
    scope = "" if m["labels"] >= FULL_LABELS else (
        f"; the targets are set for {FULL_LABELS:,} labels, small runs are mostly fixed costs")
    print(f"ratio report / consensus run: {report_ratio:.2f} (target at most "
          f"{REPORT_TARGET:g}); page / consensus run: {ratio:.2f} (target at most "
          f"{TARGET_RATIO:g}{scope})")
    print_summary({"bench": BENCH, "ratio": round(ratio, 3), "labels": m["labels"],
                   "sql_s": round(m["sql"], 4), "run_s": round(m["run"], 4),
                   "report_s": round(m["report"], 4), "html_s": round(m["html"], 4),
                   "cached_html_s": round(m["cached"], 4),
                   "gold_heavy_labels": m["gold_labels"],
                   "gold_heavy_breakdowns_s": round(m["gold"], 4),
                   "report_ratio": round(report_ratio, 3), "target": TARGET_RATIO,
                   "report_target": REPORT_TARGET,
                   "audit_chained_ms": round(m["audit_chained"] * 1000, 3),
                   "audit_plain_ms": round(m["audit_plain"] * 1000, 3)})


if __name__ == "__main__":
    main()
