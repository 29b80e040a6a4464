"""Bulk task import: parse JSON lines or CSV from a stream, then store all rows or none."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from flask_babel import gettext, ngettext
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, record
from coordinator.errors import InvalidInput, PayloadTooLarge
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project
from i18n.locales import InvalidLocale, normalise_locale

JSONL_TYPES = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-lines"}
)
CSV_TYPES = frozenset({"text/csv"})

JSONL_KEYS = frozenset({"external_id", "payload", "languages", "gold"})
CSV_COLUMNS = frozenset({"external_id", "text", "media_url", "payload", "languages", "gold"})

MAX_EXTERNAL_ID = 200
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_LANGUAGES = 20
#: Stop collecting after this many bad lines: the caller has enough to fix the file.
MAX_REPORTED_ERRORS = 100
#: Rows per IN (...) look-up; well under SQLite's and PostgreSQL's parameter limits.
LOOKUP_CHUNK = 5000
MAX_REPORTED_DUPLICATE_GROUPS = 1000
#: Bytes read from the body at a time.
READ_CHUNK = 256 * 1024


@dataclass(slots=True)
class TaskRow:
    """One validated line of an import."""

    line: int
    external_id: str
    payload: dict[str, Any]
    languages: list[str]
    gold: str | None
    content_hash: str


@dataclass
class ImportResult:
    """What an import did: counts and groups of identical payloads."""

    received: int
    created: int
    unchanged: int
    duplicates: list[dict[str, Any]] = field(default_factory=list)


class _LineErrors:
    """Field errors keyed by line number, capped at MAX_REPORTED_ERRORS lines."""

    def __init__(self) -> None:
        self.by_line: dict[str, dict[str, list[str]]] = {}
        self.count = 0

    def add(self, line: int, field_name: str, message: str) -> None:
        key = gettext("line %(n)d", n=line)
        if key not in self.by_line:
            self.count += 1
            if len(self.by_line) >= MAX_REPORTED_ERRORS:
                return
            self.by_line[key] = {}
        self.by_line[key].setdefault(field_name, []).append(message)

    def raise_if_any(self) -> None:
        if not self.by_line:
            return
        first_line, first_fields = next(iter(self.by_line.items()))
        first_field, first_messages = next(iter(first_fields.items()))
        detail = ngettext(
            "%(num)d line is invalid; nothing was imported. First: %(line)s, %(field)s: "
            "%(message)s",
            "%(num)d lines are invalid; nothing was imported. First: %(line)s, %(field)s: "
            "%(message)s",
            self.count, line=first_line, field=first_field, message=first_messages[0],
        )
        raise InvalidInput(detail, errors=self.by_line)


def canonical_json(payload: dict[str, Any]) -> bytes:
    """Return the bytes a payload's content hash is taken over."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(payload: dict[str, Any]) -> str:
    """Return the SHA-256 of a payload's canonical JSON form."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


class _RowChecker:
    """Validate row values against one project; shared by the JSON-lines and CSV readers."""

    def __init__(self, project: Project, max_tasks: int) -> None:
        self.classes = frozenset(project.label_classes)
        self.default_languages = [project.source_locale]
        self.max_tasks = max_tasks
        self.errors = _LineErrors()
        self.rows: list[TaskRow] = []
        self.first_line_of: dict[str, int] = {}

    def add(self, line: int, external_id: Any, payload: Any, languages: Any, gold: Any) -> None:
        errors = self.errors
        before = errors.count
        if not isinstance(external_id, str) or not external_id.strip():
            errors.add(line, "external_id", gettext("A non-empty string is required."))
        elif len(external_id) > MAX_EXTERNAL_ID:
            errors.add(line, "external_id",
                       gettext("At most %(n)d characters.", n=MAX_EXTERNAL_ID))
        elif external_id in self.first_line_of:
            errors.add(line, "external_id", gettext(
                "%(id)s also appears on line %(other)d of this import.",
                id=external_id, other=self.first_line_of[external_id]))
        else:
            self.first_line_of[external_id] = line
        digest = ""
        if not isinstance(payload, dict) or not payload:
            errors.add(line, "payload", gettext("A non-empty JSON object is required."))
        else:
            canonical = canonical_json(payload)
            if len(canonical) > MAX_PAYLOAD_BYTES:
                errors.add(line, "payload",
                           gettext("At most %(n)d bytes of JSON.", n=MAX_PAYLOAD_BYTES))
            digest = hashlib.sha256(canonical).hexdigest()
        codes = self._languages(line, languages)
        if gold is not None and gold not in self.classes:
            errors.add(line, "gold", gettext(
                "%(value)s is not one of the project's label classes.", value=repr(gold)[:80]))
        if errors.count == before:
            self.rows.append(TaskRow(line, external_id, payload, codes, gold, digest))
        if len(self.rows) + errors.count > self.max_tasks:
            raise PayloadTooLarge(gettext(
                "An import holds at most %(n)d tasks; split the file.", n=self.max_tasks))

    def _languages(self, line: int, languages: Any) -> list[str]:
        if languages is None:
            return self.default_languages
        if (not isinstance(languages, list) or not languages
                or not all(isinstance(code, str) for code in languages)
                or len(languages) > MAX_LANGUAGES):
            self.errors.add(line, "languages", gettext(
                "A list of 1 to %(n)d locale codes is required.", n=MAX_LANGUAGES))
            return []
        codes = []
        for code in languages:
            try:
                codes.append(normalise_locale(code))
            except InvalidLocale:
                self.errors.add(line, "languages", gettext(
                    "%(value)s is not a locale; use a code such as en, pt_BR or sr_Latn.",
                    value=repr(code)[:80]))
        return codes

    def finish(self) -> list[TaskRow]:
        self.errors.raise_if_any()
        if not self.rows:
            raise InvalidInput(gettext("The body holds no tasks."))
        return self.rows


def _raw_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Yield the stream's lines with their newlines, reading it in large chunks."""
    # Iterating a request stream directly reads it one byte at a time (werkzeug's
    # LimitedStream is unbuffered), which made reading the body most of an import's time.
    pending: list[bytes] = []  # parts of a line longer than one chunk, joined once
    while chunk := stream.read(READ_CHUNK):
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        lines = chunk.split(b"\n")
        pending.append(lines[0])
        lines[0] = b"".join(pending)
        pending = [lines.pop()]
        for line in lines:
            yield line + b"\n"
    tail = b"".join(pending)
    if tail:
        yield tail


def _decoded_lines(stream: IO[bytes], errors: _LineErrors) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(_raw_lines(stream), start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            errors.add(number, "line", gettext("The line is not valid UTF-8."))


def read_jsonl(stream: IO[bytes], project: Project, max_tasks: int) -> list[TaskRow]:
    """Parse and validate a JSON-lines body: one task object per line, blank lines skipped."""
    checker = _RowChecker(project, max_tasks)
    loads = json.loads
    for number, text in _decoded_lines(stream, checker.errors):
        if not text.strip():
            continue
        try:
            item = loads(text)
        except ValueError as exc:
            checker.errors.add(number, "line", gettext("Not valid JSON: %(reason)s", reason=str(exc)))
            continue
        if not isinstance(item, dict):
            checker.errors.add(number, "line", gettext("Each line must be a JSON object."))
            continue
        unknown = item.keys() - JSONL_KEYS
        if unknown:
            for key in sorted(unknown):
                checker.errors.add(number, key[:100], gettext("Unknown field."))
            continue
        checker.add(number, item.get("external_id"), item.get("payload"),
                    item.get("languages"), item.get("gold"))
    return checker.finish()


def _csv_text(stream: IO[bytes], errors: _LineErrors) -> Iterable[str]:
    for number, text in _decoded_lines(stream, errors):
        yield text[1:] if number == 1 and text.startswith("\ufeff") else text


def read_csv(stream: IO[bytes], project: Project, max_tasks: int) -> list[TaskRow]:
    """Parse and validate a CSV body with a header row naming the columns."""
    checker = _RowChecker(project, max_tasks)
    reader = csv.reader(_csv_text(stream, checker.errors), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(gettext("The body holds no tasks.")) from None
    except csv.Error as exc:
        raise InvalidInput(gettext("Line 1 is not valid CSV: %(reason)s", reason=str(exc))) from None
    columns = [name.strip() for name in header]
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if unknown or "external_id" not in columns or len(set(columns)) != len(columns):
        raise InvalidInput(
            gettext("The CSV header must name external_id and may name %(allowed)s, each once.",
                    allowed=", ".join(sorted(CSV_COLUMNS - {"external_id"}))),
            errors={gettext("line %(n)d", n=1): {name[:100]: [gettext("Unknown column.")]
                                                   for name in unknown}},
        )
    width = len(columns)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            checker.errors.add(start, "line", gettext("Not valid CSV: %(reason)s", reason=str(exc)))
            break  # the reader cannot resynchronise after a broken quote
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != width:
            checker.errors.add(start, "line", gettext(
                "Expected %(expected)d cells, found %(found)d.", expected=width, found=len(cells)))
            continue
        values = dict(zip(columns, cells))
        checker.add(start, values["external_id"], _csv_payload(values, checker, start),
                    _csv_languages(values.get("languages")), values.get("gold") or None)
    return checker.finish()


def _csv_payload(values: dict[str, str], checker: _RowChecker, line: int) -> Any:
    if values.get("payload"):
        try:
            return json.loads(values["payload"])
        except ValueError:
            checker.errors.add(line, "payload", gettext("The payload cell is not valid JSON."))
            return {"invalid": True}
    return {key: values[key] for key in ("text", "media_url") if values.get(key)}


def _csv_languages(cell: str | None) -> list[str] | None:
    if not cell or not cell.strip():
        return None
    return cell.replace(",", " ").replace(";", " ").split()


def read_tasks(stream: IO[bytes], content_type: str, project: Project, max_tasks: int) -> list[TaskRow]:
    """Parse a body in the format named by ``content_type``."""
    if content_type in JSONL_TYPES:
        return read_jsonl(stream, project, max_tasks)
    return read_csv(stream, project, max_tasks)


def _chunks(items: list[Any], size: int = LOOKUP_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing_tasks(session: Session, project_id: int, external_ids: list[str]) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    for chunk in _chunks(external_ids):
        for external_id, digest, languages, gold in session.execute(
            select(Task.external_id, Task.content_hash, Task.languages, Task.gold).where(
                Task.project_id == project_id, Task.external_id.in_(chunk)
            )
        ):
            found[external_id] = (digest, languages, gold)
    return found


def _has_tasks(session: Session, project_id: int) -> bool:
    return session.scalar(select(Task.id).where(Task.project_id == project_id).limit(1)) is not None


def _stored_duplicate_groups(session: Session, project_id: int,
                             hashes: set[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    first_id: dict[str, int] = {}
    for chunk in _chunks(sorted(hashes)):
        for task_id, external_id, digest in session.execute(
            select(Task.id, Task.external_id, Task.content_hash)
            .where(Task.project_id == project_id, Task.content_hash.in_(chunk))
            .order_by(Task.id)
        ):
            groups[digest].append(external_id)
            first_id.setdefault(digest, task_id)
    return {digest: groups[digest] for digest in sorted(groups, key=first_id.__getitem__)}


def _new_duplicate_groups(rows: list[TaskRow]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        groups[row.content_hash].append(row.external_id)
    return groups


def _reported(groups: dict[str, list[str]]) -> list[dict[str, Any]]:
    repeated = [
        {"content_hash": digest, "external_ids": ids} for digest, ids in groups.items() if len(ids) > 1
    ]
    return repeated[:MAX_REPORTED_DUPLICATE_GROUPS]


def _insert_tasks(session: Session, project_id: int, rows: list[TaskRow]) -> None:
    # A Core insert: the ORM's bulk insert drops keys whose value is None, so every switch
    # between gold and non-gold rows started a new batch, and it costs more per row besides.
    session.execute(insert(Task.__table__), [
        {"project_id": project_id, "external_id": row.external_id, "payload": row.payload,
         "content_hash": row.content_hash, "languages": row.languages, "gold": row.gold}
        for row in rows
    ])


#: Version of the canonical form ``imported_hash`` reads.
IMPORTED_FORM = "coordinator.tasks.imported/1"


def imported_hash(rows: list[TaskRow]) -> str:
    """Return the SHA-256 of new tasks: JSON ``[form, [external_id, content_hash, gold]...]``
    in the file's order, without spaces."""
    body = json.dumps([IMPORTED_FORM, [[row.external_id, row.content_hash, row.gold]
                                       for row in rows]],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def store_tasks(session: Session, actor: Actor, project_id: int, rows: list[TaskRow],
                *, source_format: str) -> ImportResult:
    """Store every new row, accept exact repeats of stored rows, refuse changed ones.

    Duplicate groups list every task of the project sharing a payload with an imported row,
    in the order of their first task.
    """
    project = get_project(session, project_id)
    # Serialise imports into one project so two retries of one file never race.
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    # A project's first import, the usual bulk load, has nothing stored to compare with.
    had_tasks = _has_tasks(session, project.id)
    existing = (_existing_tasks(session, project.id, [row.external_id for row in rows])
                if had_tasks else {})
    errors = _LineErrors()
    new_rows = []
    for row in rows:
        stored = existing.get(row.external_id)
        if stored is None:
            new_rows.append(row)
        elif stored != (row.content_hash, row.languages, row.gold):
            errors.add(row.line, "external_id", gettext(
                "%(id)s already exists with different content; tasks cannot be replaced by "
                "an import.", id=row.external_id))
    errors.raise_if_any()
    if new_rows:
        before = (session.scalar(select(func.max(Task.id)).where(Task.project_id == project.id))
                  if had_tasks else None) or 0
        _insert_tasks(session, project.id, new_rows)
    # Without earlier tasks the project now holds exactly these rows, inserted in this order.
    groups = (_stored_duplicate_groups(session, project.id, {row.content_hash for row in rows})
              if had_tasks else _new_duplicate_groups(new_rows))
    result = ImportResult(
        received=len(rows),
        created=len(new_rows),
        unchanged=len(rows) - len(new_rows),
        duplicates=_reported(groups),
    )
    if new_rows:
        # The ids the new tasks took: imports into a project are serialised (the lock above),
        # so its rows above the old maximum are this import's; other projects' imports may
        # take ids between them, so the range bounds them, and count says how many are ours.
        first, last = session.execute(select(func.min(Task.id), func.max(Task.id)).where(
            Task.project_id == project.id, Task.id > before)).one()
        record(session, actor, "tasks.import", "project", project.id, after={
            "format": source_format, "received": result.received, "created": result.created,
            "unchanged": result.unchanged, "duplicate_groups": len(result.duplicates),
            "task_ids": [first, last], "tasks_sha256": imported_hash(new_rows),
        })
    return result
