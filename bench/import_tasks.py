"""Benchmark: tasks imported per second over HTTP, beside a plain batched psycopg insert.

Both sides run in the same process against the same scratch PostgreSQL database, which the
benchmark creates, migrates and drops. "Ours" is the whole server path: a real socket, the
werkzeug server, auth, JSON-lines parsing and validation, the idempotency look-up, the insert,
the duplicate report and the commit. The baseline inserts the same, already hashed rows into
the same ``tasks`` table with ``executemany`` in batches, in one transaction.

    python bench/import_tasks.py            # 100,000 tasks, best of 3
    python bench/import_tasks.py --quick    # 5,000 tasks, once
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from coordinator.projects.imports import content_hash

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import (  # noqa: E402
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
    timed,
)

BENCH = "import_tasks"
TARGET_RATIO = 0.3
BASELINE_BATCH = 1000
#: Bytes per write on the client socket, so the body is streamed, not sent in one piece.
SEND_CHUNK = 64 * 1024
LABELS = ["positive", "negative", "neutral"]

#: Review and support snippets per locale; tasks combine them into 100-300 byte payloads.
SENTENCES: dict[str, list[str]] = {
    "en": ["The delivery arrived two days late and the box was damaged.",
           "Customer support answered quickly and solved my problem.",
           "I am not sure whether the update fixed the login issue.",
           "Great value for the price, I would buy it again."],
    "de": ["Die Lieferung kam zwei Tage zu spät und der Karton war beschädigt.",
           "Der Kundendienst hat schnell geantwortet und mein Problem gelöst.",
           "Ich weiß nicht, ob das Update den Anmeldefehler behoben hat."],
    "fr": ["La livraison est arrivée avec deux jours de retard.",
           "Le service client a répondu rapidement et a résolu mon problème.",
           "Très bon rapport qualité-prix, je rachèterai sans hésiter."],
    "es": ["El pedido llegó dos días tarde y la caja estaba dañada.",
           "La atención al cliente respondió rápido y resolvió mi problema.",
           "No sé si la actualización arregló el error de inicio de sesión."],
    "pt_BR": ["A entrega atrasou dois dias e a caixa veio amassada.",
              "O atendimento foi rápido e resolveu meu problema.",
              "Ótimo custo-benefício, compraria de novo."],
    "hi": ["डिलीवरी दो दिन देर से आई और डिब्बा क्षतिग्रस्त था।",
           "ग्राहक सेवा ने जल्दी जवाब दिया और मेरी समस्या हल कर दी।"],
    "ja": ["配達が二日遅れ、箱が破損していました。",
           "サポートの対応が早く、問題がすぐに解決しました。",
           "アップデートでログインの不具合が直ったか分かりません。"],
    "zh_Hans": ["快递晚了两天，而且箱子破损了。", "客服回复很快，解决了我的问题。",
                "性价比很高，还会再买。"],
    "ar": ["وصل الطلب متأخراً يومين وكان الصندوق تالفاً.", "رد فريق الدعم بسرعة وحل مشكلتي."],
    "ru": ["Доставка задержалась на два дня, коробка была повреждена.",
           "Служба поддержки быстро ответила и решила мою проблему."],
    "sw": ["Mzigo ulifika siku mbili kuchelewa na sanduku lilikuwa limeharibika.",
           "Huduma kwa wateja walijibu haraka na kutatua tatizo langu."],
    "tr": ["Teslimat iki gün gecikti ve kutu hasarlıydı.",
           "Müşteri hizmetleri hızlı yanıt verdi ve sorunumu çözdü."],
}
SOURCES = ["app-store", "support-ticket", "web-review", "survey"]


@dataclass(frozen=True)
class Task:
    """One task as the client sends it."""

    external_id: str
    payload: dict[str, Any]
    languages: list[str]
    gold: str | None


# --- the data --------------------------------------------------------------------------------


def _text(rng: random.Random, locale: str) -> str:
    sentences = SENTENCES[locale]
    parts = [rng.choice(sentences)]
    # Grow towards a realistic review length without passing ~300 bytes of payload.
    while len(" ".join(parts).encode()) < 90 and len(parts) < 4:
        parts.append(rng.choice(sentences))
    return " ".join(parts)


def make_tasks(count: int, seed: int = 7) -> list[Task]:
    """Return ``count`` multilingual tasks; about 1% repeat an earlier payload, 5% are gold."""
    rng = random.Random(seed)
    locales = list(SENTENCES)
    tasks: list[Task] = []
    for number in range(1, count + 1):
        locale = rng.choice(locales)
        if number > 100 and rng.random() < 0.01:
            payload = rng.choice(tasks[:number - 1]).payload  # an exact duplicate to report
        else:
            payload = {"text": _text(rng, locale), "source": rng.choice(SOURCES),
                       "ref": f"R-{rng.randrange(10**9):09d}"}
        languages = [locale, "en"] if locale != "en" and rng.random() < 0.1 else [locale]
        gold = rng.choice(LABELS) if rng.random() < 0.05 else None
        tasks.append(Task(f"t-{number}", payload, languages, gold))
    return tasks


def jsonl_body(tasks: list[Task]) -> bytes:
    """Return the tasks as a UTF-8 JSON-lines body."""
    lines = (json.dumps({"external_id": t.external_id, "payload": t.payload,
                         "languages": t.languages, "gold": t.gold}, ensure_ascii=False)
             for t in tasks)
    return ("\n".join(lines) + "\n").encode()


def payload_sizes(tasks: list[Task]) -> tuple[int, int, float]:
    """Return the smallest, largest and mean payload size in UTF-8 JSON bytes."""
    sizes = [len(json.dumps(t.payload, ensure_ascii=False).encode()) for t in tasks]
    return min(sizes), max(sizes), statistics.fmean(sizes)


# --- the scratch database --------------------------------------------------------------------


def empty_tasks(conninfo: str) -> None:
    """Remove every task, so each measurement inserts into an empty table."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("TRUNCATE tasks RESTART IDENTITY CASCADE")  # assignments refer to tasks
        connection.execute("VACUUM ANALYZE tasks")


# --- the server and the client ---------------------------------------------------------------


class Client(common.Client):
    """Calls the API over a real socket as the manager, streaming each body."""

    def create_project(self, name: str) -> int:
        """Create a project and return its id."""
        body = json.dumps({"name": name, "label_classes": LABELS, "source_locale": "en",
                           "redundancy": 3, "residency_region": "global"}).encode()
        status, document, _ = self.request("POST", "/api/v1/projects", body, chunk=SEND_CHUNK)
        expect(status == 201, f"creating a project answered {status}: {document}")
        return document["id"]

    def import_tasks(self, project_id: int, body: bytes) -> dict[str, Any]:
        """Import a JSON-lines body and return the result document."""
        status, document, _ = self.request(
            "POST", f"/api/v1/projects/{project_id}/tasks/import", body,
            content_type="application/x-ndjson", chunk=SEND_CHUNK)
        expect(status == 200, f"the import answered {status}: {str(document)[:500]}")
        return document


# --- the measurements ------------------------------------------------------------------------

INSERT_SQL = (
    "INSERT INTO tasks (project_id, external_id, payload, content_hash, languages, gold, "
    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def baseline_rows(tasks: list[Task], project_id: int) -> list[tuple[Any, ...]]:
    """Return the tasks as insert parameters, hashed beforehand so only the insert is timed."""
    now = datetime.now(timezone.utc)
    return [(project_id, t.external_id, Jsonb(t.payload), content_hash(t.payload),
             Jsonb(t.languages), t.gold, now) for t in tasks]


def insert_baseline(conninfo: str, rows: list[tuple[Any, ...]]) -> float:
    """Insert ``rows`` in batches in one transaction and return the seconds it took."""
    with psycopg.connect(conninfo) as connection:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for start in range(0, len(rows), BASELINE_BATCH):
                cursor.executemany(INSERT_SQL, rows[start:start + BASELINE_BATCH])
        connection.commit()
        return time.perf_counter() - started


def count_tasks(conninfo: str, project_id: int) -> int:
    """Return how many tasks the project holds."""
    with psycopg.connect(conninfo) as connection:
        return connection.execute(
            "SELECT count(*) FROM tasks WHERE project_id = %s", (project_id,)).fetchone()[0]


def run_repetition(number: int, tasks: list[Task], body: bytes, client: Client, conninfo: str,
                   timings: dict[str, Timings]) -> None:
    """Measure the baseline, the import and its retry once, each on an empty tasks table."""
    count = len(tasks)
    empty_tasks(conninfo)
    project_id = client.create_project(f"bench baseline {number}")
    timings["baseline"].seconds.append(insert_baseline(conninfo, baseline_rows(tasks, project_id)))
    expect(count_tasks(conninfo, project_id) == count, "the baseline lost rows")

    empty_tasks(conninfo)
    project_id = client.create_project(f"bench import {number}")
    seconds, result = timed(lambda: client.import_tasks(project_id, body))
    expect(result["created"] == count, f"the import created {result['created']} of {count}")
    expect(count_tasks(conninfo, project_id) == count, "the import lost rows")
    timings["ours"].seconds.append(seconds)

    seconds, retry = timed(lambda: client.import_tasks(project_id, body))
    expect(retry["created"] == 0 and retry["unchanged"] == count,
           f"the retry was not idempotent: {retry['created']} created")
    expect(retry["duplicates"] == result["duplicates"], "the retry reported other duplicates")
    timings["retry"].seconds.append(seconds)


def measure(tasks: list[Task], repeat: int) -> tuple[dict[str, Timings], str]:
    """Run every repetition against a fresh server and database; return timings and version."""
    body = jsonl_body(tasks)
    timings = make_timings(("baseline", "psycopg executemany (baseline)"),
                           ("ours", "HTTP bulk import (ours)"),
                           ("retry", "HTTP retry, all unchanged"))
    with scratch_database("bench_import") as url, bench_app(url) as app:
        conninfo = libpq_url(url)
        client_token = manager_token(app)
        with serving(app) as server:
            client = Client(server.server_port, client_token)
            for number in range(1, repeat + 1):
                run_repetition(number, tasks, body, client, conninfo, timings)
        version = server_version(conninfo)
    return timings, version


# --- the report ------------------------------------------------------------------------------


def print_report(tasks: list[Task], body: bytes, repeat: int, timings: dict[str, Timings],
                 version: str) -> dict[str, Any]:
    """Print the table and return the summary the JSON line is made of."""
    count = len(tasks)
    low, high, mean = payload_sizes(tasks)
    print(f"{BENCH}: {count:,} tasks ({len(body) / 2**20:.1f} MiB JSON lines; payloads "
          f"{low}-{high} bytes, mean {mean:.0f}; {len(SENTENCES)} locales), "
          f"PostgreSQL {version}, best of {repeat}")
    print_timings(timings, count, "tasks/s (best)")
    ours = count / timings["ours"].best()
    baseline = count / timings["baseline"].best()
    ratio = ours / baseline
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"ratio ours/baseline: {ratio:.3f} ({verdict} the target of {TARGET_RATIO})")
    return {"bench": BENCH, "ratio": round(ratio, 4), "tasks": count,
            "ours_per_s": round(ours, 1), "baseline_per_s": round(baseline, 1),
            "retry_per_s": round(count / timings["retry"].best(), 1), "repeat": repeat}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 tasks, one repetition")
    parser.add_argument("--tasks", type=int, help="tasks per import (default 100,000)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (5_000 if args.quick else 100_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table, then the JSON line."""
    args = parse_args(argv)
    tasks = make_tasks(args.tasks)
    timings, version = measure(tasks, args.repeat)
    summary = print_report(tasks, jsonl_body(tasks), args.repeat, timings, version)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
