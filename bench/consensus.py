"""Benchmark: a whole consensus run on PostgreSQL beside the aggregation it wraps.

A scratch PostgreSQL database gets one project with 1,000,000 counted labels (200,000 tasks,
5 labels each, 3 classes, 1,000 workers of varied accuracy in 4 regional workforces, 5% gold
tasks, plus 1% labels kept aside that must not count), written straight into the tables
with COPY. Then, in the same process:

(a) ``aggregation.aggregate`` (Dawid-Skene, our NumPy engine) on the label frame the service
    reads, already in memory: the baseline;
(b) ``coordinator.consensus.services.run_consensus``: read the counted labels and the gold,
    fingerprint them, aggregate, store one row per task and per worker, audit, commit.

The overhead is (b) minus (a): reading and storing. The target is an overhead of at most 3
times the aggregation. The run's stored labels must equal (a)'s. A repeated request with the
same inputs returns the stored run; its time is shown too.

    python bench/consensus.py            # 1,000,000 labels, best of 3
    python bench/consensus.py --quick    # 20,000 labels, best of 3
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from common import (  # noqa: E402
    bench_app,
    expect,
    insert_model_row,
    libpq_url,
    print_summary,
    scratch_database,
    timed,
)

from aggregation import aggregate  # noqa: E402
from coordinator import db  # noqa: E402
from coordinator.audit.services import Actor  # noqa: E402
from coordinator.consensus import services  # noqa: E402
from coordinator.guidelines.models import GuidelineVersion  # noqa: E402
from coordinator.projects.models import Project  # noqa: E402
from coordinator.workforces.models import Workforce  # noqa: E402

BENCH = "consensus"
TARGET_RATIO = 3.0
FULL_LABELS = 1_000_000
QUICK_LABELS = 20_000
CLASSES = ("positive", "negative", "neutral")
PRIOR = (0.5, 0.3, 0.2)
OVERLAP = 5
GOLD_SHARE = 0.05
SET_ASIDE_SHARE = 0.01
REGIONS = ("eu", "in", "us", "br")
LOCALES = {"eu": ("de", "fr", "en"), "in": ("hi", "en"), "us": ("en", "es"), "br": ("pt_BR",)}


# --- the data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crowd:
    """Synthetic labels as codes: row i is worker ``worker[i]`` labelling task ``task[i]``."""

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    truth: np.ndarray
    gold: np.ndarray  # task codes with a gold answer
    n_workers: int

    @property
    def n_tasks(self) -> int:
        return len(self.truth)


def make_crowd(labels: int, seed: int = 7) -> Crowd:
    """Return ``labels`` labels by workers of accuracy 0.55-0.95, OVERLAP distinct per task."""
    rng = np.random.default_rng(seed)
    tasks = max(labels // OVERLAP, 1)
    workers = int(min(5_000, max(20, labels // 1_000)))
    truth = rng.choice(len(CLASSES), size=tasks, p=PRIOR)
    accuracy = rng.uniform(0.55, 0.95, size=workers)
    start = rng.integers(0, workers, size=tasks)
    stride = rng.integers(1, max(2, workers // OVERLAP), size=tasks)
    worker = ((start[:, None] + stride[:, None] * np.arange(OVERLAP)) % workers).ravel()
    task = np.repeat(np.arange(tasks), OVERLAP)
    right = rng.random(task.size) < accuracy[worker]
    wrong = (truth[task] + rng.integers(1, len(CLASSES), size=task.size)) % len(CLASSES)
    label = np.where(right, truth[task], wrong)
    order = rng.permutation(task.size)[:labels]  # rows in random order, as submitted
    gold = np.flatnonzero(rng.random(tasks) < GOLD_SHARE)
    return Crowd(task[order], worker[order], label[order], truth, gold, workers)


# --- the scratch database --------------------------------------------------------------------


def _copy_frame(connection: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame into ``table`` as CSV, its columns named like the table's."""
    buffer = io.StringIO()
    frame.to_csv(buffer, header=False, index=False)
    columns = ", ".join(frame.columns)
    with connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())


def _one(connection: psycopg.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return connection.execute(sql, params).fetchone()[0]


def _skip_key_checks(connection: psycopg.Connection) -> None:
    """Let the loading skip foreign-key checks when the role may (they are most of its time).

    Every id written refers to a row written just before; this is a scratch database.
    """
    try:
        with connection.transaction():
            connection.execute("SET session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        pass


def load_project(conninfo: str, crowd: Crowd) -> int:
    """Write the project, its tasks, workforces, workers, assignments and labels; its id."""
    now = "2026-11-23 19:00:00+00"
    rng = np.random.default_rng(11)
    with psycopg.connect(conninfo) as connection:
        _skip_key_checks(connection)
        stamps = {"created_at": now, "updated_at": now}
        project_id = insert_model_row(connection, Project, {
            "name": "bench consensus", "label_classes": list(CLASSES), "source_locale": "en",
            "redundancy": OVERLAP, "residency_region": "global", **stamps})
        version_id = insert_model_row(connection, GuidelineVersion, {
            "project_id": project_id, "number": 1, "status": "published", "title": "Guide",
            "source_markdown": "# Guide", "source_locale": "en", "published_at": now, **stamps})
        workforce_ids = [insert_model_row(connection, Workforce, {
            "kind": "vendor", "name": f"Vendor {region}", "region": region, "countries": [],
            "languages": list(LOCALES[region]), "daily_capacity": 1_000_000,
            "price_per_label": "0.05", "currency": "EUR", "timezone": "UTC", "active": True,
            **stamps}) for region in REGIONS]

        worker_workforce = np.arange(crowd.n_workers) % len(REGIONS)
        _copy_frame(connection, "workers", pd.DataFrame({
            "workforce_id": np.asarray(workforce_ids)[worker_workforce],
            "external_id": [f"w{i:05d}" for i in range(crowd.n_workers)],
            "created_at": now}))
        first_worker = _one(connection, "SELECT min(id) FROM workers")

        gold = np.full(crowd.n_tasks, "", dtype=object)
        gold[crowd.gold] = np.asarray(CLASSES, dtype=object)[crowd.truth[crowd.gold]]
        _copy_frame(connection, "tasks", pd.DataFrame({
            "project_id": project_id,
            "external_id": [f"t{i:07d}" for i in range(crowd.n_tasks)],
            "payload": '{"text": "benchmark"}', "content_hash": "0" * 64,
            "languages": '["en"]', "gold": pd.Series(gold).replace("", None),
            "created_at": now}))
        first_task = _one(connection, "SELECT min(id) FROM tasks WHERE project_id = %s",
                          (project_id,))

        # Every counted label, then SET_ASIDE_SHARE more that must not count: labels kept
        # aside as late, each on its own assignment, with another value.
        n = len(crowd.task)
        extra = rng.choice(n, size=int(n * SET_ASIDE_SHARE), replace=False)
        rows = np.concatenate([np.arange(n), extra])
        counted = np.arange(len(rows)) < n
        workforce = worker_workforce[crowd.worker[rows]]
        locale = np.array([rng.choice(LOCALES[r]) for r in REGIONS], dtype=object)[workforce]
        task_ids = first_task + crowd.task[rows]
        value = np.asarray(CLASSES, dtype=object)[np.where(
            counted, crowd.label[rows], (crowd.label[rows] + 1) % len(CLASSES))]
        assignment_ids = np.arange(1, len(rows) + 1)
        _copy_frame(connection, "assignments", pd.DataFrame({
            "id": assignment_ids, "project_id": project_id, "task_id": task_ids,
            "workforce_id": np.asarray(workforce_ids)[workforce],
            "guideline_version_id": version_id, "status": "submitted", "price": "0.05",
            "currency": "EUR", "guideline_locale": locale,
            "worker_id": first_worker + crowd.worker[rows], "created_at": now}))
        connection.execute("SELECT setval(pg_get_serial_sequence('assignments', 'id'), %s)",
                           (len(rows),))
        _copy_frame(connection, "labels", pd.DataFrame({
            "project_id": project_id, "task_id": task_ids, "assignment_id": assignment_ids,
            "workforce_id": np.asarray(workforce_ids)[workforce],
            "worker_id": first_worker + crowd.worker[rows], "value": value,
            "guideline_version_id": version_id, "guideline_locale": locale,
            "counted": counted, "set_aside": np.where(counted, "", "late"),
            "submitted_at": now}).replace({"set_aside": {"": None}}))
        connection.commit()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return project_id


# --- the measurements ------------------------------------------------------------------------


@dataclass
class Measurement:
    """Best seconds of each part, with what the run reported."""

    aggregate: float
    run: float
    read: float
    reused: float
    labels: int
    tasks: int
    workers: int
    iterations: int
    gold_accuracy: float | None

    @property
    def overhead(self) -> float:
        """Reading and storing: the whole run less the aggregation."""
        return max(self.run - self.aggregate, 0.0)

    @property
    def ratio(self) -> float:
        return self.overhead / self.aggregate


def _forget_runs(conninfo: str) -> None:
    """Remove stored runs so the next request computes and stores a run again."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("DELETE FROM worker_skills")
        connection.execute("DELETE FROM task_consensus")
        connection.execute("DELETE FROM consensus_runs")
        connection.execute("VACUUM ANALYZE task_consensus, worker_skills, consensus_runs")


def measure(labels: int, repeat: int) -> tuple[Measurement, str]:
    """Build the project in a scratch database and time (a), (b), the read and a reuse."""
    crowd = make_crowd(labels)
    with scratch_database("bench_consensus") as url:
        conninfo = libpq_url(url)
        project_id = load_project(conninfo, crowd)
        with bench_app(url, quiet_werkzeug=False) as app:
            actor = Actor.system()
            best: dict[str, float] = {}

            def keep(name: str, seconds: float) -> None:
                best[name] = min(seconds, best.get(name, float("inf")))

            with app.app_context():
                session = db.session()
                project = session.get(Project, project_id)
                inputs = services.read_inputs(session, project)
                session.rollback()
                options = services.effective_options("dawid_skene", None)
                for _ in range(repeat):
                    keep("read", timed(lambda: services.read_inputs(session, project))[0])
                    session.rollback()
                    seconds, result = timed(lambda: aggregate(
                        inputs.frame, "dawid_skene", classes=list(CLASSES), gold=inputs.gold,
                        **options))
                    keep("aggregate", seconds)
                    _forget_runs(conninfo)

                    def whole() -> Any:
                        outcome = services.run_consensus(session, actor, project_id)
                        session.commit()
                        return outcome

                    seconds, outcome = timed(whole)
                    expect(not outcome.reused, "the run was not computed")
                    keep("run", seconds)
                    seconds, again = timed(whole)
                    expect(again.reused and again.run.id == outcome.run.id,
                           "the same inputs did not return the stored run")
                    keep("reused", seconds)
                run = outcome.run
                expect(run.labels == len(crowd.task), f"the run read {run.labels} labels")
                expect(run.iterations == result.iterations, "the run iterated differently")
                stored = dict(session.execute(text(
                    "SELECT task_id, label FROM task_consensus WHERE run_id = :id"),
                    {"id": run.id}).all())
                expect(len(stored) == run.tasks == result.n_tasks,
                       f"{len(stored)} task rows stored")
                expect(stored == result.labels.to_dict(),
                       "the stored labels differ from the aggregation's")
                version = session.scalar(text("SHOW server_version"))
                measurement = Measurement(
                    aggregate=best["aggregate"], run=best["run"], read=best["read"],
                    reused=best["reused"], labels=run.labels, tasks=run.tasks,
                    workers=run.workers, iterations=run.iterations,
                    gold_accuracy=run.gold_accuracy)
    return measurement, version


# --- the report ------------------------------------------------------------------------------


def print_report(m: Measurement, repeat: int, version: str) -> dict[str, Any]:
    """Print the table and return the summary the JSON line is made of."""
    print(f"{BENCH}: {m.labels:,} counted labels ({m.tasks:,} tasks, {m.workers:,} workers, "
          f"{len(CLASSES)} classes, {GOLD_SHARE:.0%} gold, {SET_ASIDE_SHARE:.0%} more kept "
          f"aside), PostgreSQL {version}, best of {repeat}; Dawid-Skene ran "
          f"{m.iterations} iterations")
    print(f"{'measurement':<52}{'best s':>9}{'x aggregate':>13}")
    rows = [
        ("(a) aggregate() on the frame in memory (baseline)", m.aggregate),
        ("(b) run_consensus: read, aggregate, store, commit", m.run),
        ("    read + store = (b) - (a)", m.overhead),
        ("    of which read: labels, gold, fingerprint", m.read),
        ("    of which store: run, tasks, workers, audit", max(m.overhead - m.read, 0.0)),
        ("same inputs again: read, find the stored run", m.reused),
    ]
    for name, seconds in rows:
        print(f"{name:<52}{seconds:>9.3f}{seconds / m.aggregate:>13.2f}")
    verdict = "meets" if m.ratio <= TARGET_RATIO else "misses"
    scope = "" if m.labels >= FULL_LABELS else (
        f"; the target is set for {FULL_LABELS:,} labels, small runs are mostly fixed costs")
    print(f"ratio (read + store) / aggregate: {m.ratio:.2f} ({verdict} the target of at most "
          f"{TARGET_RATIO:g}{scope})")
    return {"bench": BENCH, "ratio": round(m.ratio, 3), "labels": m.labels, "tasks": m.tasks,
            "workers": m.workers, "aggregate_s": round(m.aggregate, 4),
            "run_s": round(m.run, 4), "read_s": round(m.read, 4),
            "store_s": round(max(m.overhead - m.read, 0.0), 4),
            "reused_s": round(m.reused, 4), "iterations": m.iterations,
            "target": TARGET_RATIO, "repeat": repeat}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 labels")
    parser.add_argument("--labels", type=int, help="counted labels (default 1,000,000)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    args.labels = args.labels or (QUICK_LABELS if args.quick else FULL_LABELS)
    args.repeat = args.repeat or 3
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table, then the JSON line."""
    args = parse_args(argv)
    measurement, version = measure(args.labels, args.repeat)
    summary = print_report(measurement, args.repeat, version)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
