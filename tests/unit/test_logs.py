"""Logging: JSON lines with the request id, format choice by terminal, the access log."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g

from coordinator import logs


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """Put the root logger's handlers and level back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _record(message: str = "hello %s", args: tuple = ("world",), **extra: Any) -> logging.LogRecord:
    """Return a log record like logger.info would make."""
    record = logging.LogRecord("coordinator.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def _lines(stream: io.StringIO) -> list[str]:
    """Return the non-empty lines written to ``stream``."""
    return [line for line in stream.getvalue().splitlines() if line]


# --- JsonFormatter --------------------------------------------------------------------------


def test_json_formatter_writes_the_indexed_fields():
    entry = json.loads(logs.JsonFormatter().format(_record(request_id="req-1")))
    assert entry["message"] == "hello world"
    assert (entry["level"], entry["logger"], entry["request_id"]) == (
        "info", "coordinator.test", "req-1")
    assert entry["time"].endswith("+00:00")


def test_json_formatter_without_a_request_id_uses_a_dash():
    assert json.loads(logs.JsonFormatter().format(_record()))["request_id"] == "-"


def test_json_formatter_keeps_extra_fields_but_not_record_internals():
    entry = json.loads(logs.JsonFormatter().format(_record(status=201, path="/x")))
    assert (entry["status"], entry["path"]) == (201, "/x")
    assert not {"args", "msg", "levelno", "pathname", "created"} & entry.keys()


def test_json_formatter_stays_on_one_line_with_newlines_and_tracebacks():
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = _record("multi\nline", (), exc_info=sys.exc_info())
    text = logs.JsonFormatter().format(record)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry["message"] == "multi\nline"
    assert "RuntimeError: boom" in entry["exception"]


def test_json_formatter_copes_with_values_json_cannot_encode():
    entry = json.loads(logs.JsonFormatter().format(_record(thing=object(), word="café")))
    assert entry["thing"].startswith("<object") and entry["word"] == "café"


# --- configure_logging ----------------------------------------------------------------------


def _configure_and_log(stream: io.StringIO, log_format: str = "auto", level: str = "info") -> None:
    """Configure logging onto ``stream`` and write one warning and one debug line."""
    logs.configure_logging(log_format, level, stream=stream)
    logging.getLogger("coordinator.test").warning("careful %d", 3)
    logging.getLogger("coordinator.test").debug("noise")


def test_auto_picks_json_for_a_stream_that_is_not_a_terminal():
    stream = io.StringIO()
    _configure_and_log(stream)
    [line] = _lines(stream)
    assert json.loads(line)["message"] == "careful 3"


def test_auto_picks_text_on_a_terminal():
    stream = _Terminal()
    _configure_and_log(stream)
    [line] = _lines(stream)
    assert "WARNING [-] coordinator.test: careful 3" in line
    with pytest.raises(ValueError):
        json.loads(line)


def test_explicit_json_on_a_terminal_is_honoured():
    stream = _Terminal()
    _configure_and_log(stream, "json")
    assert json.loads(_lines(stream)[0])["level"] == "warning"


def test_level_is_applied():
    stream = io.StringIO()
    _configure_and_log(stream, "json", "debug")
    assert [json.loads(line)["message"] for line in _lines(stream)] == ["careful 3", "noise"]


def test_configuring_twice_does_not_duplicate_lines():
    first, second = io.StringIO(), io.StringIO()
    logs.configure_logging("json", "info", stream=first)
    _configure_and_log(second, "json")
    assert (len(_lines(first)), len(_lines(second))) == (0, 1)


# --- inside a request -----------------------------------------------------------------------


def _app() -> Flask:
    """Return a bare Flask app with the request-id and access-log hooks."""
    app = Flask(__name__)
    logs.init_app(app)

    @app.get("/hello")
    def hello() -> str:
        logging.getLogger("coordinator.test").warning("inside")
        return "hi"

    return app


def test_lines_inside_a_request_carry_its_id():
    stream = io.StringIO()
    logs.configure_logging("json", "info", stream=stream)
    response = _app().test_client().get("/hello", headers={"X-Request-ID": "trace-7"})
    entries = [json.loads(line) for line in _lines(stream)]
    assert response.headers["X-Request-ID"] == "trace-7"
    assert [entry["request_id"] for entry in entries] == ["trace-7", "trace-7"]


def test_access_log_line_describes_the_request():
    stream = io.StringIO()
    logs.configure_logging("json", "info", stream=stream)
    response = _app().test_client().get("/hello")
    access = [json.loads(line) for line in _lines(stream)
              if json.loads(line)["logger"] == "coordinator.access"]
    assert len(access) == 1
    entry = access[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/hello", 200)
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert entry["duration_ms"] >= 0
    assert entry["account_id"] is None


def test_request_id_filter_outside_a_request_is_a_dash():
    record = _record()
    assert logs.RequestIdFilter().filter(record) is True
    assert record.request_id == "-"


def test_request_id_filter_reads_g():
    app = Flask(__name__)
    with app.test_request_context():
        g.request_id = "abc"
        record = _record()
        logs.RequestIdFilter().filter(record)
    assert record.request_id == "abc"
