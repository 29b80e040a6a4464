"""Background jobs: in this process by default, on Celery workers when a broker is configured.

A job is a function of a database session that calls one service. Every way of running it
goes through :func:`run_job`, which opens the job's session inside the app context, calls
the job, commits once and closes the session:

- ``enqueue(name)`` after a view or command has committed: with ``COORDINATOR_BROKER_URL``
  set it sends the job to a Celery worker (``coordinator worker``); without one it runs it
  on a small thread pool of this process (``COORDINATOR_JOBS_IN_PROCESS``).
- the periodic sweeps: Celery beat with a broker, else a :class:`Ticker` thread that
  ``coordinator serve`` starts in every web process.
- ``coordinator jobs run NAME`` by hand (or from cron).

Importing this module does nothing: Celery is imported and the Celery app built on first
use, and nothing connects to a broker until a job is sent.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy.orm import Session

from coordinator import db
from coordinator.config import ConfigError

log = logging.getLogger(__name__)

#: Celery task names are the job names under this prefix.
TASK_PREFIX = "coordinator."
#: The queue every job goes to unless routed elsewhere.
DEFAULT_QUEUE = "default"
#: The queue only the GPU worker consumes (``coordinator worker --queues training``).
TRAINING_QUEUE = "training"
#: Threads that run enqueued jobs and sweeps in a process without a broker.
IN_PROCESS_THREADS = 2
#: Most seconds the ticker waits before its first sweeps, so web processes spread out.
TICKER_JITTER_SECONDS = 5.0


def expire_leases(session: Session) -> int:
    """Return leases whose time is up to the pool; the number expired."""
    from coordinator.dispatch.services import expire_leases as expire

    return expire(session)


def deliver_webhooks(session: Session) -> int:
    """Send the vendor webhooks that are due; the number of deliveries attempted."""
    from coordinator.webhooks.services import deliver_due
    from integrations.vendors.webhooks import HttpSender

    config = current_app.config
    sender = HttpSender(float(config.get("WEBHOOK_TIMEOUT_SECONDS", 10)),
                        ca_bundle=config.get("WEBHOOK_CA_BUNDLE") or None)
    options = {}
    if config.get("WEBHOOK_MAX_ATTEMPTS"):
        options["max_attempts"] = int(config["WEBHOOK_MAX_ATTEMPTS"])
    return deliver_due(session, sender, **options)


def mturk_poll(session: Session) -> Any:
    """Fetch MTurk's submitted work, record labels once and review them; what was done.

    Then the block qualification of each MTurk workforce whose blocks or workers changed
    since its last sync is brought in line, so a blocked worker is kept from new HITs
    within a poll and one whose block was lifted gets them back.
    """
    from dataclasses import asdict

    from coordinator.mturk.services import (
        PollResult,
        client_for_app,
        poll_each,
        sync_changed_block_qualifications,
    )

    client = client_for_app()
    outcome = PollResult()
    # Committed HIT by HIT: an MTurk failure or a crash later keeps what was done before,
    # and each HIT's advisory lock (PostgreSQL) is held only while that HIT is polled.
    for _ in poll_each(session, client, result=outcome):
        session.commit()
    synced = sync_changed_block_qualifications(session, client)
    if not (outcome or outcome.errors or synced["blocked"] or synced["unblocked"] or synced["errors"]):
        return 0
    return {**asdict(outcome), "qualification": synced}


def training_fit(session: Session, training_run_id: int, *, progress: Any = None) -> str:
    """Run a recorded training run (dataset in, predictions out); its status at the end.

    Unlike the other jobs it commits by itself, in three steps, because training takes
    minutes: claim the run (queued -> running) and commit; train with the session closed,
    so no transaction and no write lock is held meanwhile; record the outcome, success or
    failure (a crash included), in a short transaction of its own. A run that is not queued
    (a redelivered job, a run another worker took) is not trained again. Named under
    ``training.`` so it goes to the ``training`` queue: only the GPU worker
    (``coordinator worker --queues training``) takes it. ``coordinator train`` calls it too.
    """
    from coordinator.feedback import services

    plan = services.claim_training_run(session, training_run_id)
    if plan is None:
        status = services.training_run_status(session, training_run_id)
        session.commit()
        return status
    session.commit()
    session.close()  # hands the connection back; the next use opens a new transaction
    try:
        manifest = services.train_claimed_run(plan, progress=progress)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the run
        run = services.fail_training_run(session, plan.training_run_id, exc)
    else:
        run = services.finish_training_run(session, plan.training_run_id, manifest)
    session.commit()
    return run.status


#: Every job by name. A job takes the session (and keyword arguments) and only flushes.
JOBS: dict[str, Callable[..., Any]] = {
    "expire_leases": expire_leases,
    "deliver_webhooks": deliver_webhooks,
    "mturk_poll": mturk_poll,
    "training.fit": training_fit,
}

#: Jobs to enqueue after a job that changed something: expired leases are announced at once.
FOLLOW_UPS: dict[str, str] = {
    "expire_leases": "deliver_webhooks",
}

#: The periodic sweeps: job name -> the setting holding its period in seconds (0 = off).
SWEEPS: dict[str, str] = {
    "expire_leases": "LEASE_SWEEP_SECONDS",
    "deliver_webhooks": "WEBHOOK_SWEEP_SECONDS",
    "mturk_poll": "MTURK_POLL_SECONDS",
}

#: Where each task goes; the training queue's tasks arrive with the GPU job.
ROUTES: dict[str, dict[str, str]] = {
    **{TASK_PREFIX + name: {"queue": DEFAULT_QUEUE} for name in JOBS
       if not name.startswith("training.")},
    TASK_PREFIX + "training.*": {"queue": TRAINING_QUEUE},
}


def _job(name: str) -> Callable[..., Any]:
    try:
        return JOBS[name]
    except KeyError:
        raise ValueError(f"there is no job {name!r}; jobs: {', '.join(JOBS)}") from None


def run_job(app: Flask, name: str, **kwargs: Any) -> Any:
    """Run job ``name`` now in this thread: its own session, one commit, the session closed."""
    job = _job(name)
    with app.app_context():  # the app context's teardown closes the session
        started = time.perf_counter()
        result = job(db.session(), **kwargs)
        db.session().commit()
        log.log(logging.INFO if result else logging.DEBUG, "job %s: %s", name, result,
                extra={"job": name, "result": result,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
        if result and name in FOLLOW_UPS:
            enqueue(FOLLOW_UPS[name])
        return result


def sweep_periods(config: Any) -> dict[str, int]:
    """Return each periodic sweep's period in seconds, leaving out those turned off."""
    periods = {name: int(config[setting]) for name, setting in SWEEPS.items()}
    return {name: seconds for name, seconds in periods.items() if seconds > 0}


class InProcess:
    """Runs jobs on a few threads of this process; one process's view, rebuilt after a fork.

    A job already waiting to start is not queued twice: a burst of dispatches asks for one
    webhook delivery, not hundreds.
    """

    def __init__(self, app: Flask, threads: int = IN_PROCESS_THREADS) -> None:
        self.app = app
        self.threads = threads
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._waiting: dict[tuple[str, str], Future[Any]] = {}
        self._ticker: Ticker | None = None

    def _fresh(self) -> ThreadPoolExecutor:
        if self._pid != os.getpid() or self._executor is None:  # threads do not survive fork
            self._pid = os.getpid()
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="coordinator-job")
            self._waiting = {}
            self._ticker = None
        return self._executor

    def submit(self, name: str, kwargs: dict[str, Any]) -> Future[Any]:
        """Queue job ``name``; returns its Future, or that of the same job still waiting."""
        _job(name)
        key = (name, repr(sorted(kwargs.items())))
        with self._lock:  # held until the key is stored, so _run cannot pop it first
            waiting = self._waiting.get(key)
            if waiting is not None:
                return waiting
            future = self._fresh().submit(self._run, key, name, kwargs)
            self._waiting[key] = future
            return future

    def _run(self, key: tuple[str, str], name: str, kwargs: dict[str, Any]) -> Any:
        with self._lock:
            self._waiting.pop(key, None)
        try:
            return run_job(self.app, name, **kwargs)
        except Exception:
            log.exception("job %s failed", name, extra={"job": name})
            raise

    def start_ticker(self) -> Ticker | None:
        """Start this process's sweep ticker once; None when every sweep is turned off."""
        with self._lock:
            self._fresh()
            if self._ticker is None:
                periods = sweep_periods(self.app.config)
                if not periods:
                    return None
                self._ticker = Ticker(self, periods)
                self._ticker.start()
            return self._ticker

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the jobs queued so far have finished (tests and orderly shutdown)."""
        with self._lock:
            executor, self._executor = self._executor, None
            if self._ticker is not None:
                self._ticker.stop()
                self._ticker = None
        if executor is not None:
            executor.shutdown(wait=True)


class Ticker(threading.Thread):
    """A daemon thread that queues each sweep once per period on an :class:`InProcess`."""

    def __init__(self, runner: InProcess, periods: dict[str, int]) -> None:
        super().__init__(name="coordinator-ticker", daemon=True)
        self.runner = runner
        self.periods = dict(periods)
        self._stopped = threading.Event()

    def run(self) -> None:
        start = time.monotonic() + random.uniform(0, TICKER_JITTER_SECONDS)
        due = dict.fromkeys(self.periods, start)
        while not self._stopped.wait(max(0.0, min(due.values()) - time.monotonic())):
            now = time.monotonic()
            for name, when in due.items():
                if when <= now:
                    try:
                        self.runner.submit(name, {})
                    except RuntimeError:  # the interpreter or the pool is shutting down
                        return
                    due[name] = now + self.periods[name]

    def stop(self) -> None:
        self._stopped.set()


class Jobs:
    """The app's way of running jobs: in process, or through the Celery app built on demand."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.in_process = InProcess(app)
        self._celery: Any = None
        self._lock = threading.Lock()

    @property
    def broker(self) -> str:
        return str(self.app.config["BROKER_URL"])

    def celery(self) -> Any:
        """Return the app's Celery app, building it on first use."""
        with self._lock:
            if self._celery is None:
                self._celery = make_celery(self.app)
            return self._celery


def init_app(app: Flask) -> None:
    """Give the app its jobs; starts no thread and touches no broker."""
    app.extensions["coordinator.jobs"] = Jobs(app)


def jobs(app: Flask | None = None) -> Jobs:
    """Return the Jobs of ``app`` (default: the current app)."""
    return (app or current_app).extensions["coordinator.jobs"]


def celery_app(app: Flask | None = None) -> Any:
    """Return the Celery app bound to ``app``; ConfigError when no broker is configured."""
    return jobs(app).celery()


def make_celery(app: Flask) -> Any:
    """Build a Celery app whose tasks run the jobs of ``app``, each inside its app context."""
    from celery import Celery
    from kombu import Queue

    broker = app.config["BROKER_URL"]
    if not broker:
        raise ConfigError("COORDINATOR_BROKER_URL is empty: jobs run inside the serving process. "
                          "Set it to a redis:// or amqp:// URL to run them on Celery workers.")
    backend = app.config["RESULT_BACKEND_URL"] or None
    periods = sweep_periods(app.config)
    celery = Celery("coordinator", broker=broker, backend=backend, set_as_current=False)
    celery.conf.update(
        task_default_queue=DEFAULT_QUEUE,
        task_queues=[Queue(DEFAULT_QUEUE, routing_key=DEFAULT_QUEUE),
                     Queue(TRAINING_QUEUE, routing_key=TRAINING_QUEUE)],
        task_routes=ROUTES,
        task_ignore_result=backend is None,
        result_expires=24 * 3600,
        # A job whose worker dies is delivered again; every job is safe to run twice.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A broker that is down must not hold an HTTP request for long: the sweeps catch up.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.5},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,  # keep the service's log format
        enable_utc=True,
        timezone="UTC",
        beat_schedule={
            name.replace("_", "-"): {
                "task": TASK_PREFIX + name, "schedule": float(seconds),
                # a sweep that waited a whole period is stale: the next one does its work
                "options": {"expires": float(seconds)},
            }
            for name, seconds in periods.items()
        },
        beat_schedule_filename=str(Path(app.instance_path) / "celerybeat-schedule"),
    )
    for name in JOBS:
        celery.task(name=TASK_PREFIX + name, shared=False)(_task_body(app, name))
    return celery


def _task_body(app: Flask, name: str) -> Callable[..., Any]:
    def task(**kwargs: Any) -> Any:
        return run_job(app, name, **kwargs)

    task.__name__ = task.__qualname__ = name.replace(".", "_")  # Celery wants an identifier
    task.__doc__ = JOBS[name].__doc__
    return task


def enqueue(name: str, **kwargs: Any) -> Any:
    """Run job ``name`` in the background; call it after the caller's commit.

    With a broker the job is sent to the workers (an AsyncResult comes back). Without one it
    runs on this process's job threads (a Future), in the caller (a finished Future) with
    ``COORDINATOR_JOBS_IN_PROCESS=inline``, or not at all (None) with ``off``. Sending is
    best effort: the caller has committed, and the periodic sweep does what a lost job
    would have done, so a broker that is down is logged and None comes back.
    """
    _job(name)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    runner = jobs(app)
    if runner.broker:
        try:
            return runner.celery().send_task(TASK_PREFIX + name, kwargs=kwargs)
        except Exception:  # kombu raises many kinds; none of them may undo the caller's work
            log.exception("could not send job %s to the broker", name, extra={"job": name})
            return None
    mode = app.config["JOBS_IN_PROCESS"]
    if mode == "off":
        return None
    if mode == "inline":
        done: Future[Any] = Future()
        try:
            done.set_result(run_job(app, name, **kwargs))
        except Exception as exc:
            log.exception("job %s failed", name, extra={"job": name})
            done.set_exception(exc)
        return done
    return runner.in_process.submit(name, kwargs)


def start_ticker(app: Flask) -> Ticker | None:
    """Start the in-process sweeps of this process, once; None with a broker or when off."""
    if app.config["BROKER_URL"] or app.config["JOBS_IN_PROCESS"] == "off":
        return None
    return jobs(app).in_process.start_ticker()


def __getattr__(name: str) -> Any:
    """``celery -A coordinator.jobs:celery ...`` builds the service and its Celery app then."""
    if name == "celery":
        global _celery_for_cli
        if _celery_for_cli is None:
            from coordinator import create_app

            _celery_for_cli = celery_app(create_app())
        return _celery_for_cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_celery_for_cli: Any = None
