"""The ``coordinator`` command: serve, migrate, seed and administer the service."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask

from coordinator import create_app, db, jobs, schema
from coordinator.config import ConfigError


def _app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _session() -> Iterator[Any]:
    app = _app()
    with app.app_context():
        yield db.session()


@click.group()
@click.version_option(package_name="annotation-coordinator")
def main() -> None:
    """Coordinate annotation work across vendors, MTurk and languages."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Web processes (gunicorn).")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (and, without a broker, run the background jobs in process)."""
    app = _app()
    _require_current_schema(app)
    click.echo(f"API docs: http://{host}:{port}/api/docs   OpenAPI: "
               f"http://{host}:{port}/api/v1/openapi.json", err=True)
    click.echo(_jobs_line(app), err=True)
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # Windows: no gunicorn, fall back to Werkzeug's threaded server
        jobs.start_ticker(app)
        app.run(host=host, port=port, threaded=True)
        return

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("timeout", 300)  # large imports stream for a while

        def load(self) -> Flask:  # runs in each web process, after the fork
            jobs.start_ticker(app)
            return app

    _Gunicorn().run()


def _require_current_schema(app: Flask) -> None:
    engine = db.database(app).engine
    if not schema.is_current(engine):
        raise click.ClickException(
            "the database is not at the latest migration: run `coordinator db upgrade` first")
    engine.dispose()  # processes fork from this one: none may inherit its connection


def _jobs_line(app: Flask) -> str:
    broker = app.config["BROKER_URL"]
    if broker:
        return (f"Background jobs: on Celery workers through {_safe_broker(broker)} "
                "(run `coordinator worker`)")
    if app.config["JOBS_IN_PROCESS"] == "off":
        return "Background jobs: off in process (run `coordinator jobs run ...` yourself)"
    periods = jobs.sweep_periods(app.config)
    sweeps = ", ".join(f"{name.replace('_', ' ')} every {seconds} s"
                       for name, seconds in periods.items()) or "no sweeps"
    return f"Background jobs: in each web process ({sweeps})"


def _safe_broker(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


@main.command()
@click.option("--queues", default=jobs.DEFAULT_QUEUE, show_default=True,
              help=f"Comma-separated queues to consume; the GPU worker takes "
                   f"`{jobs.TRAINING_QUEUE}` only.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Worker processes.  [default: one per CPU]")
@click.option("--beat/--no-beat", default=True, show_default=True,
              help="Also send the periodic sweeps; with several workers give --no-beat to "
                   "all but one (a duplicate sweep is harmless, only wasted).")
def worker(queues: str, concurrency: int | None, beat: bool) -> None:
    """Run a Celery worker for the configured broker (COORDINATOR_BROKER_URL)."""
    app = _app()
    if not app.config["BROKER_URL"]:
        raise click.ClickException(
            "COORDINATOR_BROKER_URL is not set, so jobs run inside `coordinator serve` and "
            "there is nothing for a worker to do. Set it to a redis:// or amqp:// URL.")
    names = [name.strip() for name in queues.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one queue", param_hint="--queues")
    _require_current_schema(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)  # beat keeps its schedule there
    celery = jobs.celery_app(app)
    click.echo(f"Worker: broker {_safe_broker(app.config['BROKER_URL'])}, queues "
               f"{', '.join(names)}, beat {'on' if beat else 'off'}", err=True)
    argv = ["worker", "--queues", ",".join(names), "--loglevel", app.config["LOG_LEVEL"].upper()]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if beat:
        argv.append("--beat")
    celery.worker_main(argv)


@main.group(name="jobs")
def jobs_group() -> None:
    """Run background jobs by hand (or from cron)."""


@jobs_group.command(name="run")
@click.argument("name", type=click.Choice([name.replace("_", "-") for name in jobs.JOBS
                                           if "." not in name]))  # training.*: `train`
def jobs_run(name: str) -> None:
    """Run job NAME once, now, in this process, whatever the broker."""
    app = _app()
    click.echo(f"Running {name} ...", err=True)
    result = jobs.run_job(app, name.replace("-", "_"))
    jobs.jobs(app).in_process.wait()  # the jobs it queued in turn, such as webhook delivery
    click.echo(f"{name}: {result}")


@main.group(name="db")
def db_group() -> None:
    """Migrate the database schema."""


@db_group.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Migrate the database up to the latest (or the given) revision."""
    app = _app()
    schema.upgrade(app.config["DATABASE_URL"], revision)
    click.echo(f"database at {_safe_url(app.config['DATABASE_URL'])} is at {revision}")


@db_group.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (``base`` removes every table)."""
    app = _app()
    schema.downgrade(app.config["DATABASE_URL"], revision)
    click.echo(f"database is at {revision}")


@db_group.command()
def current() -> None:
    """Show the revision the database is at and the latest one."""
    app = _app()
    with db.database(app).engine.connect() as connection:
        click.echo(f"current: {schema.current_revision(connection) or 'none'}   "
                   f"latest: {schema.head_revision()}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group(name="audit")
def audit_group() -> None:
    """Check the hash-chained audit trail."""


@audit_group.command(name="verify")
@click.option("--expect-head", metavar="SEQ:HASH",
              help="A head noted down earlier; fail unless the chain still holds it.")
def audit_verify(expect_head: str | None) -> None:
    """Walk the audit chain; name the first edited, deleted or reordered event (exit 1)."""
    from sqlalchemy import select

    from coordinator.audit.models import AuditEvent
    from coordinator.audit.services import verify_chain

    with _session() as session:
        verdict = verify_chain(session)
        if verdict.problem is not None:
            problem = verdict.problem
            raise click.ClickException(
                f"audit chain broken at event {problem.seq} (id {problem.event_id}), "
                f"{problem.kind}: {problem.detail}")
        if expect_head:
            seq_text, _, digest = expect_head.partition(":")
            if not seq_text.isdigit() or len(digest) != 64:
                raise click.BadParameter("give SEQ:HASH as printed by an earlier verify",
                                         param_hint="--expect-head")
            stored = session.scalar(select(AuditEvent.hash).where(
                AuditEvent.seq == int(seq_text)))
            if stored != digest:
                raise click.ClickException(
                    f"audit chain broken at event {seq_text}: it no longer holds the expected "
                    "head; the events up to it were rewritten or deleted")
    click.echo(f"audit chain ok: {verdict.events} events; head {verdict.head_seq}:"
               f"{verdict.head_hash}" if verdict.head_seq else "audit chain ok: no events")


@main.command("create-admin")
@click.argument("name")
def create_admin(name: str) -> None:
    """Create an admin account NAME and print its first API token."""
    from coordinator.accounts import services
    from coordinator.audit.services import Actor
    from coordinator.errors import CoordinatorError

    with _session() as session:
        try:
            account = services.create_account(session, Actor.system(), name=name, role="admin")
            issued = services.issue_token(session, Actor.system(), account.id, name="created by CLI")
        except CoordinatorError as exc:
            raise click.ClickException(exc.detail or str(exc)) from None
        session.commit()
    click.echo(f"admin account {name!r} created (id {account.id}). Its token, shown only now:",
               err=True)
    click.echo(issued.secret)


@main.command()
def demo() -> None:
    """Seed a small multilingual project, vendors and accounts, and print tokens to try them."""
    from coordinator.demo import seed_demo

    with _session() as session:
        result = seed_demo(session)
        session.commit()
    state = "created" if result.created else "already there"
    click.echo(f"Demo project {result.project.name!r} (id {result.project.id}): {state}.")
    click.echo(f"Manager token (shown only now):  {result.manager_token}")
    click.echo(f"Vendor token for {result.vendor_name}:  {result.vendor_token}")
    click.echo("Try:  curl -H 'Authorization: Bearer <manager token>' "
               "http://127.0.0.1:8000/api/v1/projects")


@main.group(name="i18n")
def i18n_group() -> None:
    """Extract, update and compile the service's message catalogs (i18n/translations)."""


@i18n_group.command(name="extract")
def i18n_extract() -> None:
    """Write the messages of the code to i18n/translations/messages.pot."""
    from i18n import catalogs

    try:
        path = catalogs.extract()
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"template: {path}")


@i18n_group.command(name="update")
@click.option("--locale", "locales", multiple=True,
              help="Only this locale (repeatable); default: every shipped and existing one.")
def i18n_update(locales: tuple[str, ...]) -> None:
    """Create missing catalogs and make every catalog follow the template."""
    from i18n import catalogs

    try:
        states = catalogs.update(list(locales) or None)
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    for state in states:
        todo = len(state.untranslated) + len(state.fuzzy)
        click.echo(f"{state.locale:8} {'created' if state.created else 'updated'}  "
                   f"{state.messages} messages, {todo} to translate")


@i18n_group.command(name="compile")
@click.option("--locale", "locales", multiple=True,
              help="Only this locale (repeatable); default: every catalog.")
def i18n_compile(locales: tuple[str, ...]) -> None:
    """Compile every catalog (.po) into the .mo file the service reads."""
    from i18n import catalogs

    try:
        written = catalogs.compile(list(locales) or None)
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"compiled {len(written)} catalogs")


# --- aggregate and agreement: on CSV files, without the app or a database -------------------
# These two commands never call create_app, read no configuration and open no database: they
# work on a laptop with nothing set up. NumPy, pandas and the aggregation package are imported
# inside the commands, so the other commands do not pay for them.

#: The names in aggregation.METHODS, for --help without importing pandas (a test keeps them
#: equal).
AGGREGATION_METHODS = ("dawid_skene", "majority_vote", "wawa", "zero_based_skill",
                       "gold_majority_vote", "one_coin_dawid_skene", "glad", "mace")
_SPINNER = "|/-\\"


class _Progress:
    """Phase messages with a spinner on stderr, shown only when stderr is a terminal.

    ``with progress.phase("fitting dawid_skene"):`` shows ``| fitting dawid_skene ... 3 s``
    turning while the block runs and leaves ``fitting dawid_skene ... done (3.2 s)``.
    Elsewhere (a pipe, a log file, tests) it prints nothing: the summary says what happened.
    """

    def __init__(self, stream: Any = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled

    @contextmanager
    def phase(self, message: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        import threading
        import time

        start = time.monotonic()
        stop = threading.Event()

        def spin() -> None:
            turn = 0
            while not stop.wait(0.1):
                seconds = time.monotonic() - start
                self.stream.write(f"\r{_SPINNER[turn % 4]} {message} ... {seconds:.0f} s")
                self.stream.flush()
                turn += 1

        self.stream.write(f"  {message} ...")
        self.stream.flush()
        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            stop.set()
            spinner.join()
            seconds = time.monotonic() - start
            self.stream.write(f"\r  {message} ... {outcome} ({seconds:.1f} s)\x1b[K\n")
            self.stream.flush()


def _split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _read_csv(path: str, what: str, needed: tuple[str, ...]) -> Any:
    """Read a CSV file as text (aggregation.io's conventions), or raise ClickException."""
    import pandas as pd

    from aggregation import AggregationInputError
    from aggregation.table import MissingColumnsError

    source: Any = sys.stdin if path == "-" else Path(path)
    if path != "-":
        if not source.exists():
            raise click.ClickException(f"the {what} file {path} does not exist")
        if not source.is_file():
            raise click.ClickException(f"the {what} file {path} is not a file")
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise click.ClickException(
            f"the {what} file {path} is empty: it needs a header line with the columns "
            f"{','.join(needed)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise click.ClickException(f"cannot read the {what} file {path}: {exc}") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        error: AggregationInputError = MissingColumnsError(missing, frame.columns, f"{what} file")
        raise click.ClickException(f"{path}: {error}")
    return frame


def _read_inputs(labels_path: str, gold_path: str | None, classes_option: str | None,
                 duplicates: str, keep: list[str]) -> tuple[Any, Any]:
    """Return the validated LabelTable and the gold Series (or None) of two CSV files.

    The classes are --classes in its order, else every label seen in the labels and the gold
    file, sorted.
    """
    from aggregation import prepare_gold, prepare_labels
    from aggregation.table import COLUMNS, GOLD_COLUMNS

    frame = _read_csv(labels_path, "labels", COLUMNS)
    gold_frame = _read_csv(gold_path, "gold", GOLD_COLUMNS) if gold_path else None
    classes: tuple[str, ...] | None = tuple(_split_list(classes_option)) or None
    if classes_option is not None and not classes:
        raise click.ClickException("--classes is empty: give the classes separated by commas")
    if classes is None:
        seen = set(frame["label"].dropna())
        if gold_frame is not None:
            seen |= set(gold_frame["label"].dropna())
        classes = tuple(sorted(seen))
    table = _input_errors(lambda: prepare_labels(frame, classes, duplicates=duplicates,
                                                 keep=keep), labels_path)
    gold = None
    if gold_frame is not None:
        gold = _input_errors(lambda: prepare_gold(gold_frame, table.classes), gold_path)
    return table, gold


def _input_errors(step: Any, path: str | None) -> Any:
    """Run ``step()``, turning aggregation's input errors into a ClickException."""
    from aggregation import AggregationInputError

    try:
        return step()
    except AggregationInputError as exc:
        raise click.ClickException(f"{path}: {exc}" if path else str(exc)) from None


@contextmanager
def _output(path: str) -> Iterator[Any]:
    """Yield a text stream for ``path`` ('-': stdout), with a clear error if it cannot open."""
    if path == "-":
        yield sys.stdout
        return
    import os
    import tempfile

    target = Path(path)
    try:  # a partial file never replaces a good one: write beside it, then rename
        fd, part = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                    dir=target.parent if str(target.parent) else ".")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with open(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.chmod(part, 0o666 & ~_umask())
        os.replace(part, target)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(part):
            os.unlink(part)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN != NaN


@main.command()
@click.option("--labels", "labels_path", required=True, metavar="L.csv",
              help="Label table: CSV with the columns task,worker,label ('-': stdin).")
@click.option("--gold", "gold_path", metavar="G.csv",
              help="Gold answers: CSV with the columns task,label.")
@click.option("--method", default="dawid_skene", show_default=True, metavar="METHOD",
              help=f"Aggregation method: {', '.join(AGGREGATION_METHODS)}.")
@click.option("--classes", "classes_option", metavar="A,B,...",
              help="The project's classes, in order (ties go to the earlier one).  "
                   "[default: every label seen, sorted]")
@click.option("--out", "out_path", default="-", show_default=True, metavar="O.csv",
              help="Where to write task,label,confidence,p_<class>... ('-': stdout).")
@click.option("--workers-out", "workers_path", metavar="W.csv",
              help="Also write per worker: labels, skill (the method's score), "
                   "accuracy against the consensus and against gold.")
@click.option("--stop", type=click.Choice(["likelihood", "crowdkit"]), default=None,
              help="Dawid-Skene only: stop on the marginal likelihood or on crowd-kit's own "
                   "quantity.  [default: likelihood]")
@click.option("--gold-holdout", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Share of gold tasks held out to measure accuracy (chosen by task hash).")
@click.option("--duplicates", default="last", show_default=True,
              type=click.Choice(["last", "first", "error"]),
              help="A worker who labelled a task twice: keep the last or first label, "
                   "or stop with an error.")
def aggregate(labels_path: str, gold_path: str | None, method: str,
              classes_option: str | None, out_path: str, workers_path: str | None,
              stop: str | None, gold_holdout: float, duplicates: str) -> None:
    """Aggregate a label CSV into one label per task, with posteriors.

    Works on files only: no server, configuration or database.
    """
    if method not in AGGREGATION_METHODS:
        raise click.ClickException(
            f"unknown method {method!r}; use one of {', '.join(AGGREGATION_METHODS)}")
    if stop is not None and method != "dawid_skene":
        raise click.ClickException(f"--stop applies to dawid_skene only, not to {method}")
    progress = _Progress()
    with progress.phase(f"reading {labels_path}" + (f" and {gold_path}" if gold_path else "")):
        import aggregation
        import aggregation.io
        from aggregation import agreement

        table, gold = _read_inputs(labels_path, gold_path, classes_option, duplicates, [])
    options = {"stop": stop} if stop else {}
    with progress.phase(f"fitting {method}"):
        try:
            result = aggregation.aggregate(table, method, gold=gold, gold_holdout=gold_holdout,
                                           duplicates=duplicates, **options)
        except aggregation.AggregationInputError as exc:
            raise click.ClickException(str(exc)) from None
    with progress.phase(f"writing {'stdout' if out_path == '-' else out_path}"):
        with _output(out_path) as stream:
            aggregation.io.write_result(result, stream)
        if workers_path:
            workers = _worker_table(table, result, gold, agreement)
            with _output(workers_path) as stream:
                workers.to_csv(stream, index=False)
    for line in _aggregate_summary(table, result, gold, out_path, workers_path):
        click.echo(line, err=True)


def _worker_table(table: Any, result: Any, gold: Any, agreement: Any) -> Any:
    """Per worker: labels, skill, accuracy against the consensus and (all) gold."""
    import pandas as pd

    consensus = agreement.accuracy(table, result.labels, "worker")
    workers = pd.DataFrame({"labels": table.frame.groupby("worker", sort=False).size()})
    workers.index.name = "worker"
    skills = result.worker_skills
    workers["skill"] = skills.reindex(workers.index) if skills is not None else float("nan")
    workers["accuracy_consensus"] = consensus["accuracy"].reindex(workers.index)
    if gold is not None:
        on_gold = agreement.accuracy(table, gold, "worker")
        workers["accuracy_gold"] = on_gold["accuracy"].reindex(workers.index)
        workers["gold_labels"] = on_gold["labels"].reindex(workers.index).fillna(0).astype(int)
    return workers.reset_index()


def _aggregate_summary(table: Any, result: Any, gold: Any, out_path: str,
                       workers_path: str | None) -> list[str]:
    codes = table.encode()
    classes = ", ".join(str(c) for c in result.classes)
    lines = [f"{result.method}: {codes.n_tasks} tasks, {codes.n_workers} workers, "
             f"{table.n_labels} labels ({result.superseded} superseded), classes {classes}"]
    if result.converged is None and not result.iterations:
        lines.append("iterations: none (not iterative)")
    else:
        state = {True: "converged", False: "did not converge", None: "no convergence test"}
        stop = f", stop: {result.stop}" if result.stop else ""
        lines.append(f"iterations: {result.iterations}, {state[result.converged]}{stop}")
    tied = len(result.ties)
    lines.append(f"ties: {tied} task(s)" + (
        f", each given the earliest tied class in the order {classes}" if tied else ""))
    if gold is None:
        lines.append("gold: none given")
    else:
        lines.append(f"gold: {len(gold)} tasks, {result.gold_used} used by the method, "
                     f"{result.gold_held_out} held out; accuracy on held-out gold "
                     f"{_number(result.gold_accuracy)}")
    lines.append(f"wrote {result.n_tasks} row(s) to {'stdout' if out_path == '-' else out_path}"
                 + (f", workers to {workers_path}" if workers_path else ""))
    return lines


@main.command()
@click.option("--labels", "labels_path", required=True, metavar="L.csv",
              help="Label table: CSV with the columns task,worker,label and any grouping "
                   "columns ('-': stdin).")
@click.option("--gold", "gold_path", metavar="G.csv",
              help="Gold answers (task,label): adds accuracy_gold.")
@click.option("--consensus", "consensus_path", metavar="C.csv",
              help="A CSV written by `coordinator aggregate` (task,label,...): adds "
                   "accuracy_consensus.")
@click.option("--by", "by_option", metavar="COL,...",
              help="Group by these columns of the labels file, e.g. workforce,locale "
                   "(or worker).")
@click.option("--classes", "classes_option", metavar="A,B,...",
              help="The project's classes; labels outside them are an error.  "
                   "[default: every label seen]")
@click.option("--duplicates", default="last", show_default=True,
              type=click.Choice(["last", "first", "error"]),
              help="A worker who labelled a task twice: keep the last or first label, "
                   "or stop with an error.")
@click.option("--format", "output_format", default="table", show_default=True,
              type=click.Choice(["table", "csv", "json"]))
@click.option("--out", "out_path", default="-", show_default=True,
              help="Where to write the report ('-': stdout).")
def agreement(labels_path: str, gold_path: str | None, consensus_path: str | None,
              by_option: str | None, classes_option: str | None, duplicates: str,
              output_format: str, out_path: str) -> None:
    """Report inter-annotator agreement of a label CSV, overall or per group.

    Krippendorff's alpha, Fleiss' kappa, mean pairwise Cohen's kappa and accuracy against
    the consensus and gold. Works on files only: no server, configuration or database.
    """
    by = _split_list(by_option)
    progress = _Progress()
    with progress.phase(f"reading {labels_path}"):
        from aggregation import agreement as metrics

        table, gold = _read_inputs(labels_path, gold_path, classes_option, duplicates, by)
        consensus = _read_consensus(consensus_path, table.classes) if consensus_path else None
    with progress.phase("measuring agreement"):
        report = _input_errors(lambda: metrics.agreement_report(
            table, by or None, gold=gold, consensus=consensus), None)
    if not by:
        report.index.name = "group"
    with _output(out_path) as stream:
        stream.write(_format_report(report, output_format))
    if out_path != "-":
        click.echo(f"wrote {len(report)} row(s) to {out_path}", err=True)


def _read_consensus(path: str, classes: tuple) -> Any:
    """Read a consensus CSV (task,label,...) into a Series of labels by task."""
    import pandas as pd

    from aggregation.table import MissingValuesError, UnknownLabelsError

    frame = _read_csv(path, "consensus", ("task", "label"))
    for column in ("task", "label"):
        empty = frame[column].isna().to_numpy()
        if empty.any():
            raise click.ClickException(
                f"{path}: {MissingValuesError(column, empty.nonzero()[0], 'consensus file')}")
    outside = ~frame["label"].isin(classes)
    if outside.any():
        error = UnknownLabelsError(list(pd.unique(frame.loc[outside, "label"])),
                                  int(outside.sum()), classes, "consensus file")
        raise click.ClickException(f"{path}: {error}")
    repeated = frame["task"].duplicated(keep=False)
    if repeated.any():
        shown = ", ".join(repr(t) for t in pd.unique(frame.loc[repeated, "task"])[:5])
        raise click.ClickException(
            f"{path}: the consensus file lists {int(frame['task'][repeated].nunique())} "
            f"task(s) more than once: {shown}")
    return pd.Series(frame["label"].to_numpy(), index=pd.Index(frame["task"], name="task"),
                     name="label")


def _format_report(report: Any, output_format: str) -> str:
    flat = report.reset_index()
    if output_format == "csv":
        return str(flat.to_csv(index=False))
    if output_format == "json":
        import json

        rows = json.loads(flat.to_json(orient="records", force_ascii=False))
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    return str(flat.to_string(index=False, na_rep="n/a", float_format=lambda v: f"{v:.3f}")) \
        + "\n"


@main.group(name="mturk")
def mturk_group() -> None:
    """Mechanical Turk: publish HITs, poll results, clean up, reconcile with MTurk."""


@mturk_group.command(name="publish")
@click.option("--project", "project_id", type=int, required=True, help="Project id.")
@click.option("--workforce", "workforce_id", type=int, required=True, help="MTurk workforce id.")
@click.option("--limit", type=click.IntRange(min=1), help="Create at most this many HITs.")
def mturk_publish(project_id: int, workforce_id: int, limit: int | None) -> None:
    """Create HITs for a project's offered MTurk assignments, if the balance covers them."""
    from flask import current_app

    from coordinator.audit.services import Actor
    from coordinator.errors import CoordinatorError
    from coordinator.mturk import services

    with _session() as session:
        config = current_app.config
        try:
            page = services.worker_page_url(
                config["MTURK_WORKER_PAGE_URL"],
                production=config["MTURK_PRODUCTION"] and not config["MTURK_SANDBOX"])
            result = services.publish(session, Actor.system(), services.client_for_app(),
                                      project_id, workforce_id, page_url=page, limit=limit)
        except CoordinatorError as exc:
            raise click.ClickException(str(exc.detail or exc.title)) from None
        session.commit()  # what was created stays recorded even when the batch stopped
        click.echo(f"created {len(result.created)} HIT(s) of {result.planned} planned, "
                   f"{result.adopted} replacement(s) put back into their HIT, cost {result.cost} USD")
        if result.failure:
            failure = result.failure
            raise click.ClickException(
                f"stopped at task {failure['task_id']}: MTurk {failure['operation']} "
                f"{failure['code']}: {failure['message']}; run the command again to finish")


@mturk_group.command(name="poll")
def mturk_poll() -> None:
    """Fetch submitted work, record labels once, approve or reject under each project's policy."""
    from coordinator.mturk import services

    with _session() as session:
        result = services.PollResult()
        for _ in services.poll_each(session, services.client_for_app(), result=result):
            session.commit()  # each HIT's outcome is kept even if a later one fails
        session.commit()
        click.echo(f"{result.hits} HIT(s) polled: {result.recorded} label(s) recorded, "
                   f"{result.confirmed} confirmed, "
                   f"{result.invalid} not counted, {result.approved} approved, "
                   f"{result.rejected} rejected, {result.discrepancies} answer(s) differing "
                   f"from the stored label, {result.mirrored} decided on MTurk, "
                   f"{result.released} slot(s) released")
        for error in result.errors:
            click.echo(f"failed: {error}", err=True)


@mturk_group.command(name="cleanup")
def mturk_cleanup() -> None:
    """Expire HITs whose work was cancelled and delete finished or expired ones."""
    from coordinator.audit.services import Actor
    from coordinator.mturk import services

    with _session() as session:
        result = services.cleanup(session, Actor.system(), services.client_for_app())
        session.commit()
        click.echo(f"expired {len(result.expired)}, deleted {len(result.deleted)}, "
                   f"kept {len(result.kept)}")
        for hit_id, why in result.kept.items():
            click.echo(f"kept {hit_id}: {why}", err=True)


@mturk_group.command(name="reconcile")
def mturk_reconcile() -> None:
    """List HITs on MTurk we do not know, and ours MTurk does not have live (exit 1 if any)."""
    from coordinator.mturk import services
    from integrations.mturk.client import MTurkError

    with _session() as session:
        try:
            found = services.reconcile(session, services.client_for_app())
        except MTurkError as exc:
            raise click.ClickException(f"MTurk {exc.operation} {exc.code}: {exc.message}; "
                                       "run the command again") from None
    for hit_id in found.unknown:
        click.echo(f"unknown to us: {hit_id}")
    for entry in found.not_live:
        click.echo(f"not live on MTurk: {entry['hit_id']} ({entry['mturk_status']})")
    if found.unknown or found.not_live:
        sys.exit(1)
    click.echo("MTurk and we agree.")


@mturk_group.command(name="sync-qualification")
@click.option("--workforce", "workforce_id", type=int, required=True, help="MTurk workforce id.")
def mturk_sync_qualification(workforce_id: int) -> None:
    """Give the block qualification to blocked workers, take it from those whose block was lifted."""
    from coordinator.audit.services import Actor
    from coordinator.errors import CoordinatorError
    from coordinator.mturk import services
    from integrations.mturk.client import MTurkError

    with _session() as session:
        try:
            changes = services.sync_block_qualification(session, Actor.system(), workforce_id,
                                                        services.client_for_app())
        except MTurkError as exc:
            raise click.ClickException(f"MTurk {exc.operation} {exc.code}: {exc.message}; "
                                       "run the command again") from None
        except CoordinatorError as exc:
            raise click.ClickException(str(exc.detail or exc.title)) from None
        session.commit()
    click.echo(f"blocked {len(changes['blocked'])}, unblocked {len(changes['unblocked'])}")
    for worker in changes["blocked"]:
        click.echo(f"blocked: {worker}")
    for worker in changes["unblocked"]:
        click.echo(f"unblocked: {worker}")


# --- export, train and feedback: the training job and its way back -------------------------


def _fail_on_errors(step: Any) -> Any:
    """Run ``step()``, turning the service's errors into a ClickException."""
    from coordinator.errors import CoordinatorError

    try:
        return step()
    except CoordinatorError as exc:
        fields = "; ".join(f"{name}: {' '.join(map(str, messages))}"
                           for name, messages in (exc.errors or {}).items())
        raise click.ClickException(" ".join(filter(None, [exc.detail or str(exc.title),
                                                          fields]))) from None


@main.command(name="export")
@click.option("--project", "project_id", required=True, type=int, help="Project id.")
@click.option("--run", "run_id", type=int, help="Consensus run id.  [default: the newest]")
@click.option("--out", "location", required=True, metavar="DIR|s3://BUCKET/PREFIX",
              help="Where to write manifest.json and items.jsonl.gz.")
def export_command(project_id: int, run_id: int | None, location: str) -> None:
    """Write a consensus run as a training dataset (compressed JSON lines and a manifest)."""
    from coordinator.audit.services import Actor
    from coordinator.feedback import services

    with _session() as session:
        export = _fail_on_errors(lambda: services.export_dataset(
            session, Actor.system(), project_id, location, run_id))
        session.commit()
    counts = export.manifest["counts"]
    click.echo(f"exported consensus run {export.manifest['consensus_run_id']}: "
               f"{counts['items']} items (train {counts['splits']['train']}, validation "
               f"{counts['splits']['validation']}, test {counts['splits']['test']}), "
               f"{counts['gold']} with gold, to {export.location}", err=True)
    click.echo(export.manifest["content_hash"])


@main.command()
@click.option("--project", "project_id", required=True, type=int, help="Project id.")
@click.option("--run", "run_id", type=int, help="Consensus run id.  [default: the newest]")
@click.option("--out", "location", metavar="DIR|s3://BUCKET/PREFIX",
              help="Where to export the dataset (outputs go under it, in outputs/).  "
                   "[default: COORDINATOR_EXPORT_LOCATION]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--epochs", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)
@click.option("--import/--no-import", "then_import", default=False, show_default=True,
              help="Import the predictions when the run succeeds (flags, redispatch).")
@click.option("--training-run", "training_run_id", type=int,
              help="Train this queued or failed run again, with its own dataset and "
                   "settings, instead of exporting a new one.")
def train(project_id: int, run_id: int | None, location: str | None, device: str, folds: int,
          epochs: int, seed: int, then_import: bool, training_run_id: int | None) -> None:
    """Export a consensus run, train on it in this process and record the run."""
    from pathlib import Path

    from coordinator.audit.services import Actor
    from coordinator.feedback import services
    from coordinator.jobs import training_fit
    from training.__main__ import TerminalProgress

    app = _app()
    root = app.config.get("EXPORT_LOCATION") or str(Path(app.instance_path) / "exports")
    with app.app_context():
        session = db.session()
        if training_run_id is not None:
            run = _fail_on_errors(lambda: services.requeue_training_run(
                session, Actor.system(), project_id, training_run_id))
        else:
            run = _fail_on_errors(lambda: services.start_training_run(
                session, Actor.system(), project_id, export_root=root, run_id=run_id,
                location=location, options={"folds": folds, "epochs": epochs, "seed": seed,
                                            "device": device}))
        session.commit()
        click.echo(f"training run {run.id}: {run.items} items from consensus run "
                   f"{run.consensus_run_id}, dataset at {run.dataset_uri}", err=True)
        status = _fail_on_errors(lambda: training_fit(session, run.id,
                                                      progress=TerminalProgress()))
        run = services.get_training_run(session, project_id, run.id)
        if status == "failed":
            raise click.ClickException(f"training run {run.id} failed: {run.error}")
        if status != "succeeded":  # claimed by another worker before this one
            raise click.ClickException(f"training run {run.id} is {status} elsewhere")
        metrics = run.metrics or {}
        click.echo(f"training run {run.id} succeeded on {run.device}: accuracy against "
                   f"consensus {_number(metrics.get('accuracy_consensus') or float('nan'))}, "
                   f"against gold {_number(metrics.get('accuracy_gold') or float('nan'))}, "
                   f"{(metrics.get('item_epochs_per_s') or 0):,.0f} item-epochs/s; outputs at "
                   f"{run.output_uri}", err=True)
        if then_import:
            outcome = _fail_on_errors(lambda: services.import_predictions(
                session, Actor.system(), project_id, training_run_id=run.id))
            session.commit()
            _echo_import(outcome)
    click.echo(run.id)


def _echo_import(outcome: Any) -> None:
    item = outcome.prediction_import
    state = "already imported" if outcome.reused else "imported"
    sent = (f", sent back in dispatch run {item.dispatch_run_id}" if item.dispatch_run_id
            else "")
    click.echo(f"predictions {state} (import {item.id}): {item.items} items, {item.flagged} "
               f"flagged{sent}", err=True)


@main.group(name="feedback")
def feedback_group() -> None:
    """Bring a training run's predictions back as quality feedback."""


@feedback_group.command(name="import")
@click.option("--project", "project_id", required=True, type=int, help="Project id.")
@click.option("--training-run", "training_run_id", type=int,
              help="A recorded training run whose outputs to import.")
@click.option("--from", "location", metavar="DIR|s3://BUCKET/PREFIX",
              help="A training output folder (python -m training --out ...); recorded as a "
                   "training run when it has none.")
@click.option("--redispatch/--no-redispatch", default=True, show_default=True,
              help="Send flagged items back to dispatch for more labels.")
@click.option("--extra-labels", type=click.IntRange(1, 25), default=2, show_default=True)
def feedback_import(project_id: int, training_run_id: int | None, location: str | None,
                    redispatch: bool, extra_labels: int) -> None:
    """Import predictions: flag confident disagreements with the consensus, send them back."""
    from coordinator.audit.services import Actor
    from coordinator.feedback import services

    if training_run_id is None and location is None:
        raise click.UsageError("give --training-run or --from")
    with _session() as session:
        outcome = _fail_on_errors(lambda: services.import_predictions(
            session, Actor.system(), project_id, training_run_id=training_run_id,
            location=location, redispatch=redispatch, extra_labels=extra_labels))
        session.commit()
        _echo_import(outcome)
        click.echo(outcome.prediction_import.id)



@main.command(name="quality-round")
@click.option("--project", "project_id", required=True, type=int, help="Project id.")
@click.option("--run", "run_id", type=int, help="Consensus run (default: the newest).")
def quality_round(project_id: int, run_id: int | None) -> None:
    """After a consensus run: block workers below the gold floor, open reviews, adjust overlap."""
    from coordinator.audit.services import Actor
    from coordinator.dispatch.services import reference_rates
    from coordinator.quality import services

    app = _app()
    with app.app_context():
        session = db.session()
        outcome = _fail_on_errors(lambda: services.quality_round(
            session, Actor.system(), project_id, run_id,
            rates=reference_rates(app.config["EXCHANGE_RATES"])))
        session.commit()
        click.echo(f"run {outcome.run_id}: {len(outcome.blocked)} worker(s) blocked, "
                   f"{outcome.review_opened} review item(s) opened, "
                   f"{outcome.extra_assignments} extra assignment(s), "
                   f"{outcome.cancelled} offer(s) withdrawn, {len(outcome.plan.stop)} task(s) "
                   f"confident, {len(outcome.plan.waiting)} waiting")
        if outcome.extra_skipped:
            click.echo(f"no extra assignments: {outcome.extra_skipped}", err=True)


if __name__ == "__main__":
    sys.exit(main())
