"""Background jobs: settings, the Celery app's shape, and running jobs without a broker."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from coordinator import create_app, jobs
from coordinator.cli import main
from coordinator.config import DEFAULTS, ENV_PREFIX, ConfigError, load_settings

BROKER = "redis://127.0.0.1:6379/11"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the caller's COORDINATOR_* settings."""
    for name in DEFAULTS:
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)


def make_app(tmp_path, **config):
    """An app whose jobs are never touched by a database: the fake jobs only record."""
    return create_app({"TESTING": True, "SECRET_KEY": "test", "INSTANCE_PATH": str(tmp_path),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", **config})


@pytest.fixture
def calls(monkeypatch):
    """Replace the real jobs by one that records who ran it, with what, on which thread."""
    seen = []

    def probe(session, **kwargs):
        seen.append({"kwargs": kwargs, "thread": threading.current_thread().name,
                     "session": session})
        return kwargs.get("answer", 42)

    monkeypatch.setitem(jobs.JOBS, "probe", probe)
    return seen


def test_without_a_broker_jobs_run_in_process(tmp_path):
    settings = load_settings(environ={})
    assert settings["BROKER_URL"] == "" and settings["JOBS_IN_PROCESS"] == "thread"
    assert (settings["LEASE_SWEEP_SECONDS"], settings["WEBHOOK_SWEEP_SECONDS"]) == (60, 30)
    app = make_app(tmp_path)
    with pytest.raises(ConfigError, match="COORDINATOR_BROKER_URL is empty"):
        jobs.celery_app(app)


def test_a_wrong_broker_scheme_is_a_clear_config_error():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"COORDINATOR_BROKER_URL": "http://guest:secret@mq:5672//"})
    message = str(caught.value)
    assert "COORDINATOR_BROKER_URL" in message and "redis://" in message and "amqp://" in message
    assert "http://" in message and "secret" not in message  # never echo a password
    with pytest.raises(ConfigError, match="COORDINATOR_BROKER_URL"):
        load_settings({"BROKER_URL": "127.0.0.1:6379"}, environ={})
    with pytest.raises(ConfigError, match="COORDINATOR_RESULT_BACKEND_URL"):
        load_settings(environ={"COORDINATOR_RESULT_BACKEND_URL": "mongodb://db/results"})
    with pytest.raises(ConfigError, match="COORDINATOR_LEASE_SWEEP_SECONDS"):
        load_settings(environ={"COORDINATOR_LEASE_SWEEP_SECONDS": "-1"})
    with pytest.raises(ConfigError, match="COORDINATOR_JOBS_IN_PROCESS"):
        load_settings(environ={"COORDINATOR_JOBS_IN_PROCESS": "fork"})


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "rediss://cache:6380/1", "amqp://guest:guest@127.0.0.1:5672//",
    "pyamqp://mq//", "sentinel://s1:26379;sentinel://s2:26379"])
def test_brokers_celery_speaks_are_accepted(url):
    assert load_settings(environ={"COORDINATOR_BROKER_URL": f" {url} "})["BROKER_URL"] == url


def test_the_celery_app_gets_the_broker_and_backend(tmp_path):
    app = make_app(tmp_path, BROKER_URL=BROKER, RESULT_BACKEND_URL="redis://127.0.0.1:6379/12")
    celery = jobs.celery_app(app)
    assert celery is jobs.celery_app(app)  # one per Flask app
    assert celery.conf.broker_url == BROKER
    assert celery.conf.result_backend == "redis://127.0.0.1:6379/12"
    assert celery.conf.task_ignore_result is False
    assert {"coordinator.expire_leases", "coordinator.deliver_webhooks"} <= set(celery.tasks)
    without_backend = jobs.celery_app(make_app(tmp_path / "b", BROKER_URL=BROKER))
    assert without_backend.conf.task_ignore_result is True


def test_queues_routes_and_beat_schedule(tmp_path):
    app = make_app(tmp_path, BROKER_URL=BROKER, LEASE_SWEEP_SECONDS=90, WEBHOOK_SWEEP_SECONDS=15)
    celery = jobs.celery_app(app)
    assert {queue.name for queue in celery.conf.task_queues} == {"default", "training"}
    assert celery.conf.task_default_queue == "default"
    router = celery.amqp.router
    assert router.route({}, "coordinator.expire_leases")["queue"].name == "default"
    assert router.route({}, "coordinator.deliver_webhooks")["queue"].name == "default"
    assert router.route({}, "coordinator.training.fit")["queue"].name == "training"
    schedule = celery.conf.beat_schedule
    assert schedule["expire-leases"]["task"] == "coordinator.expire_leases"
    assert schedule["expire-leases"]["schedule"] == 90.0
    assert schedule["deliver-webhooks"]["task"] == "coordinator.deliver_webhooks"
    assert schedule["deliver-webhooks"]["schedule"] == 15.0
    assert str(tmp_path) in celery.conf.beat_schedule_filename


def test_a_sweep_set_to_zero_is_left_out(tmp_path):
    app = make_app(tmp_path, BROKER_URL=BROKER, LEASE_SWEEP_SECONDS=0)
    assert set(jobs.celery_app(app).conf.beat_schedule) == {"deliver-webhooks"}
    assert jobs.sweep_periods(app.config) == {"deliver_webhooks": 30}


def test_enqueue_runs_the_job_on_a_background_thread_without_a_broker(tmp_path, calls):
    app = make_app(tmp_path)
    with app.app_context():
        future = jobs.enqueue("probe", answer=7)
    assert future.result(timeout=10) == 7
    jobs.jobs(app).in_process.wait()
    assert calls[0]["kwargs"] == {"answer": 7}
    assert calls[0]["thread"].startswith("coordinator-job")
    assert calls[0]["session"] is not None


def test_enqueue_inline_and_off(tmp_path, calls):
    app = make_app(tmp_path, JOBS_IN_PROCESS="inline")
    with app.app_context():
        assert jobs.enqueue("probe", answer=1).result(timeout=0) == 1
    assert calls[0]["thread"] == threading.current_thread().name
    app.config["JOBS_IN_PROCESS"] = "off"
    with app.app_context():
        assert jobs.enqueue("probe") is None
        assert jobs.start_ticker(app) is None
    assert len(calls) == 1


def test_a_waiting_job_is_not_queued_twice(tmp_path, monkeypatch):
    release, started = threading.Event(), threading.Event()
    runs = []

    def slow(session, **kwargs):
        runs.append(kwargs)
        started.set()
        release.wait(10)
        return len(runs)

    monkeypatch.setitem(jobs.JOBS, "slow", slow)
    app = make_app(tmp_path)
    jobs.jobs(app).in_process = jobs.InProcess(app, threads=1)
    with app.app_context():
        running = jobs.enqueue("slow")
        assert started.wait(10)
        waiting = jobs.enqueue("slow")
        assert jobs.enqueue("slow") is waiting and waiting is not running
        other = jobs.enqueue("slow", workforce_id=3)
        assert other is not waiting
    release.set()
    assert {running.result(10), waiting.result(10), other.result(10)} == {1, 2, 3}
    jobs.jobs(app).in_process.wait()
    assert runs == [{}, {}, {"workforce_id": 3}]


def test_a_failing_job_is_logged_and_raised_through_its_future(tmp_path, monkeypatch, caplog):
    def broken(session):
        raise RuntimeError("vendor down")

    monkeypatch.setitem(jobs.JOBS, "broken", broken)
    app = make_app(tmp_path)
    with app.app_context(), caplog.at_level(logging.ERROR, logger="coordinator.jobs"):
        future = jobs.enqueue("broken")
        with pytest.raises(RuntimeError, match="vendor down"):
            future.result(10)
        jobs.jobs(app).in_process.wait()
    assert "job broken failed" in caplog.text


def test_an_unknown_job_is_refused_at_once(tmp_path):
    with make_app(tmp_path).app_context(), pytest.raises(ValueError, match="no job 'nope'"):
        jobs.enqueue("nope")


class FakeCelery:
    def __init__(self, fail=False):
        self.sent, self.fail = [], fail

    def send_task(self, name, kwargs):
        if self.fail:
            raise ConnectionRefusedError("broker down")
        self.sent.append((name, kwargs))
        return "async-result"


def test_enqueue_with_a_broker_sends_the_task(tmp_path, calls):
    app = make_app(tmp_path, BROKER_URL=BROKER)
    jobs.jobs(app)._celery = FakeCelery()
    with app.app_context():
        assert jobs.enqueue("probe", answer=3) == "async-result"
        assert jobs.start_ticker(app) is None  # beat sends the sweeps
    assert jobs.jobs(app)._celery.sent == [("coordinator.probe", {"answer": 3})]
    assert calls == []


def test_a_broker_that_is_down_does_not_fail_the_caller(tmp_path, caplog):
    app = make_app(tmp_path, BROKER_URL=BROKER)
    jobs.jobs(app)._celery = FakeCelery(fail=True)
    with app.app_context(), caplog.at_level(logging.ERROR, logger="coordinator.jobs"):
        assert jobs.enqueue("deliver_webhooks") is None
    assert "could not send job deliver_webhooks" in caplog.text


def test_the_ticker_starts_once_and_runs_the_sweeps(tmp_path, monkeypatch, calls):
    monkeypatch.setattr(jobs, "TICKER_JITTER_SECONDS", 0.0)
    monkeypatch.setattr(jobs, "SWEEPS", {"probe": "LEASE_SWEEP_SECONDS"})
    app = make_app(tmp_path, LEASE_SWEEP_SECONDS=1)
    ticker = jobs.start_ticker(app)
    try:
        assert ticker is not None and ticker.daemon and ticker.is_alive()
        assert jobs.start_ticker(app) is ticker
        for _ in range(100):
            if calls:
                break
            threading.Event().wait(0.05)
        assert calls and calls[0]["thread"].startswith("coordinator-job")
    finally:
        jobs.jobs(app).in_process.wait()
    ticker.join(5)
    assert not ticker.is_alive()


def test_importing_the_service_imports_no_celery():
    code = ("import sys; from coordinator import create_app, jobs, cli; "
            "print(any(m == 'celery' or m.startswith('celery.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_worker_without_a_broker_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("COORDINATOR_INSTANCE_PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 1
    assert "COORDINATOR_BROKER_URL is not set" in result.output


def test_the_webhook_job_builds_its_sender_from_the_settings(tmp_path, monkeypatch):
    from coordinator.webhooks import services
    from integrations.vendors import webhooks

    made, delivered = [], []

    class Sender:
        def __init__(self, timeout_s, ca_bundle=None):
            made.append((timeout_s, ca_bundle))

    def deliver_due(session, sender, **options):
        delivered.append((type(sender), options))
        return 5

    monkeypatch.setattr(webhooks, "HttpSender", Sender)
    monkeypatch.setattr(services, "deliver_due", deliver_due)
    app = make_app(tmp_path, WEBHOOK_TIMEOUT_SECONDS=7, WEBHOOK_MAX_ATTEMPTS=4)
    assert jobs.run_job(app, "deliver_webhooks") == 5
    assert made == [(7.0, None)]
    assert delivered == [(Sender, {"max_attempts": 4})]
