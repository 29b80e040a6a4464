"""The ``mturk_poll`` job: the same services as the CLI and HTTP, on the sweep schedule."""

from __future__ import annotations

import pytest

from coordinator import create_app, jobs
from coordinator.config import DEFAULTS, ENV_PREFIX
from coordinator.mturk import services


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DEFAULTS:
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)


def make_app(tmp_path, **config):
    return create_app({"TESTING": True, "SECRET_KEY": "test", "INSTANCE_PATH": str(tmp_path),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", **config})


@pytest.fixture
def seen(monkeypatch):
    """Replace the poll and sync services by recorders; the job must call exactly these."""
    calls = []
    client = object()
    monkeypatch.setattr(services, "client_for_app", lambda: client)

    def poll_each(session, given, result):
        calls.append(("poll", given))
        for _ in range(3):  # three HITs, each yielded so that the job commits it
            result.hits += 1
            yield result
        result.recorded, result.approved = 2, 1

    def sync(session, given):
        calls.append(("sync", given))
        return {"blocked": 1, "unblocked": 0, "errors": []}

    monkeypatch.setattr(services, "poll_each", poll_each)
    monkeypatch.setattr(services, "sync_changed_block_qualifications", sync)
    return calls, client


def test_the_job_runs_the_poll_then_the_qualification_sync_with_one_client(tmp_path, seen):
    calls, client = seen
    result = jobs.run_job(make_app(tmp_path), "mturk_poll")
    assert calls == [("poll", client), ("sync", client)]
    assert result["hits"] == 3
    assert result["recorded"] == 2 and result["approved"] == 1
    assert result["qualification"] == {"blocked": 1, "unblocked": 0, "errors": []}


def test_a_quiet_poll_reports_zero(tmp_path, monkeypatch, seen):
    def quiet(session, client, result):
        result.hits = 2
        yield result

    monkeypatch.setattr(services, "poll_each", quiet)
    monkeypatch.setattr(services, "sync_changed_block_qualifications",
                        lambda session, client: {"blocked": 0, "unblocked": 0, "errors": []})
    assert jobs.run_job(make_app(tmp_path), "mturk_poll") == 0


def test_the_poll_is_a_sweep_only_when_its_period_is_set(tmp_path):
    assert "mturk_poll" not in jobs.sweep_periods(make_app(tmp_path).config)
    app = make_app(tmp_path, MTURK_POLL_SECONDS=300, BROKER_URL="redis://127.0.0.1:6379/11")
    assert jobs.sweep_periods(app.config)["mturk_poll"] == 300
    schedule = jobs.celery_app(app).conf.beat_schedule
    assert schedule["mturk-poll"]["task"] == "coordinator.mturk_poll"
    assert schedule["mturk-poll"]["schedule"] == 300.0
    assert "coordinator.mturk_poll" in jobs.celery_app(app).tasks


def test_the_ticker_runs_the_poll_job(tmp_path, monkeypatch, seen):
    calls, client = seen
    monkeypatch.setattr(jobs, "TICKER_JITTER_SECONDS", 0.0)
    app = make_app(tmp_path, MTURK_POLL_SECONDS=1, LEASE_SWEEP_SECONDS=0, WEBHOOK_SWEEP_SECONDS=0)
    ticker = jobs.start_ticker(app)
    try:
        assert ticker is not None and set(ticker.periods) == {"mturk_poll"}
        for _ in range(100):
            if calls:
                break
            ticker._stopped.wait(0.05)
        assert calls[:2] == [("poll", client), ("sync", client)]
    finally:
        jobs.jobs(app).in_process.wait()
