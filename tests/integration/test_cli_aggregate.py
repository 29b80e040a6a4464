"""`coordinator aggregate` and `coordinator agreement`: on CSV files, with no app or database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import coordinator
import coordinator.cli as cli
from coordinator.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "act_sp"
LABELS = str(DATA / "labels.csv")
GOLD = str(DATA / "gold.csv")
UNREACHABLE_PG = "postgresql+psycopg://nobody:secret@127.0.0.1:9/nowhere?connect_timeout=1"


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A runner that fails the test if anything builds the app or opens a database."""
    def refuse(*args, **kwargs):
        raise AssertionError("the file commands must not create the Flask app")

    monkeypatch.setattr(coordinator, "create_app", refuse)
    monkeypatch.setattr(cli, "create_app", refuse)
    monkeypatch.setenv("COORDINATOR_DATABASE_URL", UNREACHABLE_PG)
    monkeypatch.setenv("COORDINATOR_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner, *args):
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def tiny(tmp_path) -> str:
    """Three tasks: t1 a clear 'cat', t2 a 1-1 tie between cat and dog, t3 a clear 'dog'."""
    return write(tmp_path / "tiny.csv", (
        "task,worker,label,locale\n"
        "t1,w1,cat,de\nt1,w2,cat,fr\nt1,w3,dog,fr\n"
        "t2,w1,dog,de\nt2,w2,cat,fr\n"
        "t3,w1,dog,de\nt3,w2,dog,fr\nt3,w3,dog,fr\n"))


# --- aggregate ----------------------------------------------------------------------------


def test_aggregate_writes_labels_confidence_and_posteriors(runner, tmp_path):
    out = tmp_path / "consensus.csv"
    result = run(runner, "aggregate", "--labels", LABELS, "--gold", GOLD, "--out", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, dtype={"task": str, "label": str})
    assert list(frame.columns) == ["task", "label", "confidence", "p_0", "p_1"]
    assert len(frame) == 600 and frame["task"].is_unique
    assert frame[["p_0", "p_1"]].sum(axis=1).sub(1).abs().max() < 1e-9
    assert (frame["confidence"] == frame[["p_0", "p_1"]].max(axis=1)).all()
    assert set(frame["label"]) == {"0", "1"}
    summary = result.stderr
    assert "600 tasks, 75 workers, 3332 labels" in summary
    assert "converged" in summary and "stop: likelihood" in summary
    assert "ties: 0" in summary
    assert "held out; accuracy on held-out gold 0.9" in summary
    assert result.stdout == ""


def test_aggregate_to_stdout_keeps_the_summary_on_stderr(runner, tiny):
    result = run(runner, "aggregate", "--labels", tiny, "--method", "majority_vote",
                 "--out", "-")
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame.columns) == ["task", "label", "confidence", "p_cat", "p_dog"]
    assert "3 tasks, 3 workers, 8 labels" in result.stderr


def test_ties_go_to_the_first_class_in_the_given_order(runner, tiny, tmp_path):
    out = tmp_path / "o.csv"
    default = run(runner, "aggregate", "--labels", tiny, "--method", "majority_vote",
                  "--out", out)
    assert default.exit_code == 0
    labels = pd.read_csv(out).set_index("task")
    assert labels.loc["t2", "label"] == "cat"          # sorted classes: cat before dog
    assert labels.loc["t2", "p_cat"] == labels.loc["t2", "p_dog"] == 0.5
    assert "ties: 1 task(s)" in default.stderr

    reordered = run(runner, "aggregate", "--labels", tiny, "--method", "majority_vote",
                    "--classes", "dog,cat", "--out", out)
    assert reordered.exit_code == 0
    labels = pd.read_csv(out).set_index("task")
    assert list(labels.columns) == ["label", "confidence", "p_dog", "p_cat"]
    assert labels.loc["t2", "label"] == "dog"
    assert labels.loc[["t1", "t3"], "label"].tolist() == ["cat", "dog"]


def test_majority_vote_on_the_real_data(runner, tmp_path):
    out = tmp_path / "mv.csv"
    result = run(runner, "aggregate", "--labels", LABELS, "--gold", GOLD,
                 "--method", "majority_vote", "--out", out)
    assert result.exit_code == 0
    frame = pd.read_csv(out)
    assert len(frame) == 600
    assert frame[["p_0", "p_1"]].sum(axis=1).sub(1).abs().max() < 1e-9
    assert "majority_vote:" in result.stderr and "iterations: none" in result.stderr


def test_stop_crowdkit(runner, tmp_path):
    out = tmp_path / "ck.csv"
    result = run(runner, "aggregate", "--labels", LABELS, "--stop", "crowdkit", "--out", out)
    assert result.exit_code == 0
    assert "stop: crowdkit" in result.stderr
    assert len(pd.read_csv(out)) == 600


def test_workers_out_and_gold_holdout(runner, tmp_path):
    workers = tmp_path / "workers.csv"
    result = run(runner, "aggregate", "--labels", LABELS, "--gold", GOLD, "--gold-holdout",
                 "0.5", "--out", tmp_path / "o.csv", "--workers-out", workers)
    assert result.exit_code == 0
    frame = pd.read_csv(workers)
    assert list(frame.columns) == ["worker", "labels", "skill", "accuracy_consensus",
                                   "accuracy_gold", "gold_labels"]
    assert len(frame) == 75 and frame["labels"].sum() == 3332
    assert frame["skill"].between(0, 1).all()
    assert frame["accuracy_gold"].between(0, 1).all()
    used = int(result.stderr.split(" used by the method")[0].rsplit(" ", 1)[1])
    held = int(result.stderr.split(" held out")[0].rsplit(" ", 1)[1])
    assert used + held == 600 and 250 < held < 350


def test_duplicates_last_and_first(runner, tmp_path):
    labels = write(tmp_path / "dup.csv", "task,worker,label\n1,a,x\n1,a,y\n1,b,y\n")
    out = tmp_path / "o.csv"
    last = run(runner, "aggregate", "--labels", labels, "--method", "majority_vote",
               "--out", out)
    assert last.exit_code == 0 and "(1 superseded)" in last.stderr
    assert pd.read_csv(out)["label"].tolist() == ["y"]
    run(runner, "aggregate", "--labels", labels, "--method", "majority_vote",
        "--duplicates", "first", "--out", out)
    assert pd.read_csv(out)["p_x"].tolist() == [0.5]


def test_method_names_in_help_match_the_package():
    import aggregation

    assert sorted(cli.AGGREGATION_METHODS) == sorted(aggregation.METHODS)
    assert cli.AGGREGATION_METHODS[0] == aggregation.DEFAULT_METHOD


# --- bad input: a clear message, exit code 1, no traceback ----------------------------------


@pytest.mark.parametrize(("content", "args", "message"), [
    (None, (), "the labels file missing.csv does not exist"),
    ("task,worker,lab\n1,a,x\n", (), "lacks the column(s) label (it has: task, worker, lab)"),
    ("task,label\n1,x\n", (), "lacks the column(s) worker"),
    ("", (), "is empty: it needs a header line with the columns task,worker,label"),
    ("task,worker,label\n1,a,x\n2,a,z\n", ("--classes", "x,y"),
     "labels outside the project's classes ['x', 'y']: 'z'"),
    ("task,worker,label\n1,a,x\n", ("--method", "best_guess"),
     "unknown method 'best_guess'; use one of dawid_skene, majority_vote"),
    ("task,worker,label\n1,a,x\n1,a,y\n", ("--duplicates", "error"),
     "labelled the same task more than once: (task '1', worker 'a')"),
    ("task,worker,label\n1,a,x\n", ("--method", "wawa", "--stop", "crowdkit"),
     "--stop applies to dawid_skene only"),
    ("task,worker,label\n1,a,\n", (), "empty 'label' cell"),
    ("task,worker,label\n1,a,x\n", ("--classes", " , "), "--classes is empty"),
])
def test_aggregate_bad_input(runner, tmp_path, content, args, message):
    labels = "missing.csv"
    if content is not None:
        labels = write(tmp_path / "labels.csv", content)
    result = run(runner, "aggregate", "--labels", labels, *args, "--out", tmp_path / "o.csv")
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.csv").exists()


def test_bad_gold_is_a_clear_error(runner, tiny, tmp_path):
    gold = write(tmp_path / "gold.csv", "task,answer\nt1,cat\n")
    result = run(runner, "aggregate", "--labels", tiny, "--gold", gold)
    assert result.exit_code == 1 and "gold file lacks the column(s) label" in result.stderr
    gold = write(tmp_path / "gold.csv", "task,label\nt1,cat\nt1,dog\n")
    result = run(runner, "aggregate", "--labels", tiny, "--gold", gold)
    assert result.exit_code == 1 and "gives 1 task(s) two answers: 't1'" in result.stderr
    gold = write(tmp_path / "gold.csv", "task,label\nt1,bird\n")
    result = run(runner, "aggregate", "--labels", tiny, "--gold", gold, "--classes", "cat,dog")
    assert result.exit_code == 1 and "gold table have labels outside" in result.stderr


def test_an_unwritable_output_is_a_clear_error(runner, tiny, tmp_path):
    result = run(runner, "aggregate", "--labels", tiny, "--out", tmp_path / "no" / "o.csv")
    assert result.exit_code == 1 and "cannot write" in result.stderr


def test_a_failed_run_leaves_an_existing_output_alone(runner, tmp_path):
    out = write(tmp_path / "o.csv", "keep me\n")
    labels = write(tmp_path / "l.csv", "task,worker,label\n1,a,x\n1,a,y\n")
    result = run(runner, "aggregate", "--labels", labels, "--duplicates", "error",
                 "--out", out)
    assert result.exit_code == 1
    assert Path(out).read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


# --- agreement ----------------------------------------------------------------------------


def test_agreement_table(runner):
    result = run(runner, "agreement", "--labels", LABELS, "--gold", GOLD)
    assert result.exit_code == 0
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["group", "labels", "tasks", "workers", "krippendorff_alpha",
                              "fleiss_kappa", "cohen_kappa", "accuracy_gold"]
    assert row.split()[:4] == ["all", "3332", "600", "75"]
    assert all(len(value.split(".")[1]) == 3 for value in row.split()[4:])


def test_agreement_csv_with_consensus_from_aggregate(runner, tmp_path):
    consensus = tmp_path / "consensus.csv"
    assert run(runner, "aggregate", "--labels", LABELS, "--out", consensus).exit_code == 0
    result = run(runner, "agreement", "--labels", LABELS, "--gold", GOLD,
                 "--consensus", consensus, "--format", "csv")
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == 1 and frame.loc[0, "group"] == "all"
    assert 0.5 < frame.loc[0, "accuracy_consensus"] < 1
    assert 0.5 < frame.loc[0, "accuracy_gold"] < 1
    assert 0.3 < frame.loc[0, "krippendorff_alpha"] < 0.8


def test_agreement_json_to_a_file(runner, tmp_path):
    out = tmp_path / "report.json"
    result = run(runner, "agreement", "--labels", LABELS, "--format", "json", "--out", out)
    assert result.exit_code == 0 and f"wrote 1 row(s) to {out}" in result.stderr
    rows = json.loads(out.read_text())
    assert rows[0]["group"] == "all" and rows[0]["labels"] == 3332
    assert set(rows[0]) == {"group", "labels", "tasks", "workers", "krippendorff_alpha",
                            "fleiss_kappa", "cohen_kappa"}


def test_agreement_by_a_column(runner, tiny):
    result = run(runner, "agreement", "--labels", tiny, "--by", "locale", "--format", "json")
    assert result.exit_code == 0
    rows = {row["locale"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"de", "fr"}
    assert (rows["de"]["labels"], rows["fr"]["labels"]) == (3, 5)
    assert rows["de"]["krippendorff_alpha"] is None      # one label per task: undefined


def test_agreement_by_two_columns_and_by_worker(runner, tiny):
    two = run(runner, "agreement", "--labels", tiny, "--by", "locale,worker", "--format", "csv")
    assert two.exit_code == 0
    frame = pd.read_csv(io.StringIO(two.stdout))
    assert list(frame.columns[:2]) == ["locale", "worker"]
    assert "krippendorff_alpha" not in frame.columns   # agreement among workers, not per one


def test_agreement_bad_input(runner, tiny, tmp_path):
    result = run(runner, "agreement", "--labels", tiny, "--by", "locale,region")
    assert result.exit_code == 1 and "lacks the column(s) region" in result.stderr
    result = run(runner, "agreement", "--labels", tmp_path / "none.csv")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    consensus = write(tmp_path / "c.csv", "task,answer\nt1,cat\n")
    result = run(runner, "agreement", "--labels", tiny, "--consensus", consensus)
    assert result.exit_code == 1 and "consensus file lacks the column(s) label" in result.stderr
    consensus = write(tmp_path / "c.csv", "task,label\nt1,bird\n")
    result = run(runner, "agreement", "--labels", tiny, "--consensus", consensus)
    assert result.exit_code == 1 and "outside the project's classes" in result.stderr
    consensus = write(tmp_path / "c.csv", "task,label\nt1,cat\nt1,dog\n")
    result = run(runner, "agreement", "--labels", tiny, "--consensus", consensus)
    assert result.exit_code == 1 and "lists 1 task(s) more than once" in result.stderr
    result = run(runner, "agreement", "--labels", tiny, "--classes", "cat")
    assert result.exit_code == 1 and "outside the project's classes ['cat']" in result.stderr
    assert "Traceback" not in result.output


# --- no app, no configuration, no database --------------------------------------------------


def test_the_file_commands_touch_no_database(runner, tiny, tmp_path, monkeypatch):
    """With an unreachable PostgreSQL and a broken setting, both commands still work."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    def refuse(*args):
        raise AssertionError("a database connection was opened")

    event.listen(Pool, "connect", refuse)
    monkeypatch.setenv("COORDINATOR_LOG_LEVEL", "not-a-level")  # create_app would refuse it
    try:
        out = tmp_path / "o.csv"
        assert run(runner, "aggregate", "--labels", tiny, "--out", out).exit_code == 0
        assert run(runner, "agreement", "--labels", tiny, "--consensus", out).exit_code == 0
    finally:
        event.remove(Pool, "connect", refuse)
    assert not (tmp_path / "instance").exists()


def test_a_fresh_process_imports_no_database_driver(tmp_path, tiny):
    """In a new interpreter the commands run without loading psycopg or building the app."""
    script = (
        "import sys, coordinator, coordinator.cli as cli\n"
        "def refuse(*a, **k): raise SystemExit('create_app was called')\n"
        "coordinator.create_app = cli.create_app = refuse\n"
        f"cli.main(['aggregate', '--labels', {tiny!r}, '--out', {str(tmp_path / 'o.csv')!r}],"
        " standalone_mode=False)\n"
        f"cli.main(['agreement', '--labels', {tiny!r}], standalone_mode=False)\n"
        "print('psycopg' in sys.modules, 'flask_smorest' in sys.modules)\n")
    env = {**os.environ, "COORDINATOR_DATABASE_URL": UNREACHABLE_PG,
           "COORDINATOR_INSTANCE_PATH": str(tmp_path / "instance")}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
    assert not (tmp_path / "instance").exists()


def test_progress_shows_phases_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = cli._Progress(stream)
    with progress.phase("fitting dawid_skene"):
        pass
    assert "fitting dawid_skene ... done (" in stream.getvalue()
    with pytest.raises(RuntimeError), progress.phase("writing o.csv"):
        raise RuntimeError
    assert "writing o.csv ... failed" in stream.getvalue()

    quiet = io.StringIO()
    with cli._Progress(quiet).phase("reading"):
        pass
    assert quiet.getvalue() == ""
