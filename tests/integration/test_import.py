"""Bulk task import: formats, idempotency, all-or-nothing, limits."""

from __future__ import annotations

import http.client
import io
import json
import threading

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from coordinator import db
from coordinator.audit.models import AuditEvent
from coordinator.projects.imports import content_hash
from coordinator.projects.models import Task

JSONL = "application/x-ndjson"


def jsonl(*items: dict) -> bytes:
    return ("\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n").encode()


def post_import(world, project_id, body: bytes, content_type: str = JSONL, who: str = "manager"):
    return world.post(who, f"/api/v1/projects/{project_id}/tasks/import", data=body,
                      headers={"Content-Type": content_type})


def task_count(app) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(Task))


THREE = jsonl(
    {"external_id": "a", "payload": {"text": "Très bien"}, "languages": ["fr"]},
    {"external_id": "b", "payload": {"text": "Sehr gut"}, "languages": ["de-DE"], "gold": "positive"},
    {"external_id": "c", "payload": {"text": "Fine"}},
)


def test_jsonl_import_creates_tasks_with_normalised_languages(app, world, project_id):
    response = post_import(world, project_id, THREE)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"received": 3, "created": 3, "unchanged": 0, "duplicates": []}
    tasks = world.get("auditor", f"/api/v1/projects/{project_id}/tasks").get_json()
    by_id = {task["external_id"]: task for task in tasks}
    assert by_id["b"]["languages"] == ["de_DE"]
    assert by_id["b"]["gold"] == "positive"
    assert by_id["c"]["languages"] == ["en"], "defaults to the project's source locale"
    assert by_id["a"]["content_hash"] == content_hash({"text": "Très bien"})


def test_retrying_an_import_changes_nothing(app, world, project_id):
    first = post_import(world, project_id, THREE)
    second = post_import(world, project_id, THREE)
    assert first.status_code == second.status_code == 200
    assert second.get_json()["created"] == 0
    assert second.get_json()["unchanged"] == 3
    assert task_count(app) == 3
    with app.app_context():
        imports = db.session().scalars(
            select(AuditEvent).where(AuditEvent.action == "tasks.import")).all()
    assert len(imports) == 1 and imports[0].after["created"] == 3


def test_overlapping_import_adds_only_new_tasks(app, world, project_id):
    post_import(world, project_id, THREE)
    more = THREE + jsonl({"external_id": "d", "payload": {"text": "Neu"}, "languages": ["de"]})
    response = post_import(world, project_id, more)
    assert response.get_json()["created"] == 1
    assert response.get_json()["unchanged"] == 3
    assert task_count(app) == 4


def test_changed_content_for_a_stored_id_is_refused_and_nothing_is_written(app, world, project_id):
    post_import(world, project_id, THREE)
    changed = jsonl(
        {"external_id": "new", "payload": {"text": "new"}},
        {"external_id": "a", "payload": {"text": "Très bien!"}, "languages": ["fr"]},
    )
    response = post_import(world, project_id, changed)
    assert response.status_code == 422
    body = response.get_json()
    assert "line 2" in body["errors"]
    assert "already exists" in body["errors"]["line 2"]["external_id"][0]
    assert task_count(app) == 3, "the new task on line 1 must not be stored either"


def test_duplicate_external_id_in_one_request_names_both_lines(app, world, project_id):
    body = jsonl(
        {"external_id": "x", "payload": {"text": "one"}},
        {"external_id": "y", "payload": {"text": "two"}},
        {"external_id": "x", "payload": {"text": "three"}},
    )
    response = post_import(world, project_id, body)
    assert response.status_code == 422
    message = response.get_json()["errors"]["line 3"]["external_id"][0]
    assert "line 1" in message
    assert task_count(app) == 0


def test_identical_payloads_are_reported_by_content_hash(app, world, project_id):
    post_import(world, project_id, jsonl({"external_id": "old", "payload": {"text": "same"}}))
    body = jsonl(
        {"external_id": "n1", "payload": {"text": "same"}},
        {"external_id": "n2", "payload": {"text": "other"}},
        {"external_id": "n3", "payload": {"text": "other"}},
    )
    response = post_import(world, project_id, body)
    assert response.status_code == 200
    groups = {g["content_hash"]: g["external_ids"] for g in response.get_json()["duplicates"]}
    assert groups == {
        content_hash({"text": "same"}): ["old", "n1"],
        content_hash({"text": "other"}): ["n2", "n3"],
    }
    assert task_count(app) == 4, "duplicates are reported, not refused"


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ('{"external_id": "z", "payload": {"text": "t"}, "colour": "red"}', "colour", "Unknown"),
        ('{"external_id": "z", "payload": "just text"}', "payload", "object"),
        ('{"external_id": "", "payload": {"text": "t"}}', "external_id", "non-empty"),
        ('{"external_id": "z", "payload": {"text": "t"}, "gold": "maybe"}', "gold", "label classes"),
        ('{"external_id": "z", "payload": {"text": "t"}, "languages": ["xx_YY"]}', "languages", "locale"),
        ('{"external_id": "z", "payload": {"text": "t"}, "languages": "en"}', "languages", "list"),
        ('{"external_id": "z", "payload": {"text": "t"}', "line", "JSON"),
        ('["not", "an", "object"]', "line", "object"),
    ],
)
def test_bad_jsonl_lines_are_named_and_nothing_is_written(app, world, project_id, line, field, fragment):
    good = '{"external_id": "ok", "payload": {"text": "fine"}}'
    response = post_import(world, project_id, f"{good}\n{line}\n".encode())
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert list(errors) == ["line 2"]
    assert fragment in " ".join(errors["line 2"][field])
    assert "line 2" in response.get_json()["detail"]
    assert task_count(app) == 0


def test_invalid_utf8_is_named_by_line(app, world, project_id):
    body = b'{"external_id": "a", "payload": {"text": "ok"}}\n{"external_id": "b\xff"}\n'
    response = post_import(world, project_id, body)
    assert response.status_code == 422
    assert "UTF-8" in response.get_json()["errors"]["line 2"]["line"][0]


CSV_BODY = (
    "\ufeffexternal_id,text,languages,gold\r\n"
    'r1,"Gut, aber teuer",de;en,positive\r\n'
    'r2,"Line one\nline two",hi,\r\n'
    "\r\n"
    "r3,नमस्ते,,\r\n"
).encode()


def test_csv_import_with_quotes_multiline_cells_and_bom(app, world, project_id):
    response = post_import(world, project_id, CSV_BODY, "text/csv")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 3
    tasks = {t["external_id"]: t for t in
             world.get("manager", f"/api/v1/projects/{project_id}/tasks").get_json()}
    assert tasks["r1"]["payload"] == {"text": "Gut, aber teuer"}
    assert tasks["r1"]["languages"] == ["de", "en"]
    assert tasks["r1"]["gold"] == "positive"
    assert tasks["r2"]["payload"]["text"] == "Line one\nline two"
    assert tasks["r3"]["languages"] == ["en"] and tasks["r3"]["gold"] is None


def test_malformed_csv_line_is_named(app, world, project_id):
    body = b"external_id,text\nr1,fine\nr2,too,many,cells\nr3,ok\n"
    response = post_import(world, project_id, body, "text/csv")
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert list(errors) == ["line 3"]
    assert "Expected 2 cells" in errors["line 3"]["line"][0]
    assert task_count(app) == 0


def test_broken_csv_quote_is_named(app, world, project_id):
    body = b'external_id,text\nr1,fine\nr2,"unterminated\n'
    response = post_import(world, project_id, body, "text/csv")
    assert response.status_code == 422
    assert "line 3" in response.get_json()["errors"]
    assert task_count(app) == 0


def test_unknown_csv_column_is_refused(app, world, project_id):
    body = b"external_id,text,colour\nr1,fine,red\n"
    response = post_import(world, project_id, body, "text/csv")
    assert response.status_code == 422
    assert response.get_json()["errors"]["line 1"] == {"colour": ["Unknown column."]}


def test_csv_payload_column_carries_json(app, world, project_id):
    body = b'external_id,payload\nr1,"{""text"": ""hi"", ""context"": ""x""}"\n'
    response = post_import(world, project_id, body, "text/csv")
    assert response.status_code == 200, response.get_json()
    task = world.get("manager", f"/api/v1/projects/{project_id}/tasks").get_json()[0]
    assert task["payload"] == {"text": "hi", "context": "x"}


def test_empty_body_is_refused(world, project_id):
    response = post_import(world, project_id, b"\n\n")
    assert response.status_code == 422
    assert "no tasks" in response.get_json()["detail"]


def test_wrong_content_type_is_415(world, project_id):
    response = post_import(world, project_id, THREE, "application/json")
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_too_many_tasks_is_413(app, world, project_id):
    app.config["IMPORT_MAX_TASKS"] = 2
    response = post_import(world, project_id, THREE)
    assert response.status_code == 413
    assert task_count(app) == 0


class VirtualBody(io.RawIOBase):
    """A body of ``size`` bytes that exists only as it is read, counting what was read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self.size - self.position)
        buffer[:size] = b"x" * size
        self.position += size
        self.read_bytes += size
        return size


def test_a_200_megabyte_body_is_refused_before_it_is_read(app, world, project_id):
    body = VirtualBody(200 * 2**20)
    response = world.client.post(
        f"/api/v1/projects/{project_id}/tasks/import",
        input_stream=body,
        headers={**world.headers("manager"), "Content-Type": JSONL},
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert body.read_bytes == 0
    assert task_count(app) == 0


@pytest.fixture
def live_server(app):
    """The app behind a real HTTP server on a free local port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


def test_a_chunked_body_is_cut_off_at_the_limit(app, world, project_id, live_server):
    app.config["IMPORT_MAX_BYTES"] = 64 * 1024
    line = b'{"external_id": "x%d", "payload": {"text": "padding padding padding"}}\n'

    def chunks():
        for number in range(100_000):  # about 7 MB if the server kept reading
            yield line % number

    connection = http.client.HTTPConnection("127.0.0.1", live_server, timeout=30)
    try:
        connection.request("POST", f"/api/v1/projects/{project_id}/tasks/import", body=chunks(),
                           headers={**world.headers("manager"), "Content-Type": JSONL},
                           encode_chunked=True)
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server closed the connection without an answer")
    finally:
        connection.close()
    assert status == 413, body
    assert body["status"] == 413
    assert task_count(app) == 0


@pytest.mark.parametrize("who", ["auditor", "vendor_eu"])
def test_only_managers_import(world, project_id, who):
    assert post_import(world, project_id, THREE, who=who).status_code == 403


def test_import_into_a_missing_project_is_404(world):
    assert post_import(world, 999_999, THREE).status_code == 404


def test_the_error_count_uses_the_languages_plural_forms(world, project_id):
    one = b'{"external_id": "a"}\n'
    two = one + b'{"external_id": "b"}\n'
    assert post_import(world, project_id, one).get_json()["detail"].startswith("1 line is invalid")
    assert post_import(world, project_id, two).get_json()["detail"].startswith("2 lines are invalid")


def test_arabic_gets_its_plural_form_for_a_few_lines(world, project_id):
    three = b'{"external_id": "a"}\n{"external_id": "b"}\n{"external_id": "c"}\n'
    response = world.client.post(
        f"/api/v1/projects/{project_id}/tasks/import", data=three,
        headers={**world.headers("manager"), "Content-Type": JSONL, "Accept-Language": "ar"})
    detail = response.get_json()["detail"]
    assert detail.startswith("3 ") and "line" not in detail
    assert response.headers["Content-Language"] == "ar"
