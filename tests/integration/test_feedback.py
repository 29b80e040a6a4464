"""Predictions back as quality feedback: flags, bad input, double import, re-dispatch."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sqlalchemy import func, select

from coordinator import db, jobs
from coordinator.audit.services import Actor
from coordinator.cli import main
from coordinator.consensus import services as consensus
from coordinator.consensus.models import TaskConsensus, WorkerSkill
from coordinator.dispatch.models import Assignment
from coordinator.feedback import services
from coordinator.feedback.models import PredictionFlag, PredictionImport, TrainingRun
from coordinator.workforces import services as workforces
from tests.crowd import CROWD, GOLD, Seeder
from tests.helpers import assert_invalid, audit_events, count_rows
from training.outputs import write_outputs

CLASSES = ["positive", "negative", "neutral"]


@pytest.fixture
def crowd(app, world, project_id):
    """CROWD's labels, a Dawid-Skene run, and a second EU workforce to re-dispatch to."""
    seeder = Seeder(app, world, project_id)
    seeder.add(CROWD, gold=GOLD)
    with app.app_context():
        session = db.session()
        other = workforces.create_workforce(
            session, Actor.system(), kind="vendor", name="Vendor EU 2", region="eu",
            countries=["FR"], languages=["en", "de", "fr"], daily_capacity=1000,
            price_per_label=Decimal("0.06"), currency="EUR", timezone="Europe/Paris")
        run = consensus.run_consensus(session, Actor.system(), project_id).run
        session.commit()
        labels = dict(session.execute(select(TaskConsensus.task_id, TaskConsensus.label).where(
            TaskConsensus.run_id == run.id)).all())
        return {"run_id": run.id, "tasks": seeder.task_ids(), "labels": labels,
                "eu2": other.id, "seeder": seeder}


def outputs_for(folder, crowd, project_id, *, disagree=("t4",), classes=CLASSES, extra_ids=(),
                content_hash="0" * 64):
    """Write training outputs that agree with the consensus (0.8) except on ``disagree``."""
    tasks = crowd["tasks"]
    ids = sorted(tasks[name] for name in tasks) + list(extra_ids)
    names = {v: k for k, v in tasks.items()}
    rows = []
    for task_id in ids:
        label = crowd["labels"].get(task_id, "positive")
        if names.get(task_id) in disagree:
            label = "negative" if label != "negative" else "positive"
            row = [0.05] * len(classes)
            row[classes.index(label)] = 0.9
        else:
            row = [0.1] * len(classes)
            row[classes.index(label) if label in classes else 0] = 0.8
        rows.append(np.asarray(row) / sum(row))
    manifest = {"project": {"id": project_id, "name": "Sentiment"},
                "consensus_run_id": crowd["run_id"], "guideline_version": 1,
                "content_hash": content_hash, "classes": classes}
    write_outputs(folder, dataset_manifest=manifest, ids=np.asarray(ids),
                  fold=np.zeros(len(ids), dtype=np.int64), probabilities=np.asarray(rows),
                  metrics={}, settings={"folds": 2, "epochs": 1, "seed": 0},
                  run={"device": "cpu", "device_name": "test"}, models=[])
    return str(folder)


def import_from(app, location, project_id, **kwargs):
    with app.app_context():
        session = db.session()
        outcome = services.import_predictions(session, Actor.system(), project_id,
                                              location=location, **kwargs)
        session.commit()
        return outcome.prediction_import.id, outcome.reused


def test_confident_learning_thresholds_flag_only_confident_disagreement():
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.75, 0.25], [0.45, 0.55],
                              [0.6, 0.4]])
    consensus_labels = np.array([0, 0, 1, 1, 0, 0])
    thresholds, flagged, confident = services.confident_flags(probabilities, consensus_labels)
    # class 0: mean p0 over rows 0, 1, 4, 5; class 1: mean p1 over rows 2, 3
    assert np.allclose(thresholds, [(0.9 + 0.7 + 0.45 + 0.6) / 4, (0.8 + 0.25) / 2])
    assert confident.tolist() == [0, 0, 1, 0, 1, -1]
    assert flagged.tolist() == [False, False, False, True, True, False]


def test_import_flags_redispatches_away_from_the_original_workforces(app, world, project_id,
                                                                     crowd, tmp_path):
    location = outputs_for(tmp_path / "out", crowd, project_id)
    t4 = crowd["tasks"]["t4"]
    import_id, reused = import_from(app, location, project_id)
    assert not reused
    base = f"/api/v1/projects/{project_id}"
    flags = world.get("auditor", f"{base}/prediction-imports/{import_id}/flags").get_json()
    assert [f["external_id"] for f in flags] == ["t4"]
    assert flags[0]["consensus_label"] == "positive" and flags[0]["predicted_label"] == "negative"
    assert flags[0]["redispatched"] is True
    with app.app_context():
        session = db.session()
        new = session.execute(select(Assignment.workforce_id).where(
            Assignment.task_id == t4, Assignment.status == "offered")).scalars().all()
        record = session.get(PredictionImport, import_id)
        assert record.dispatch_run_id is not None
        assert record.thresholds["negative"] == pytest.approx(0.8)  # t2, t5: 0.8 each
        run = session.get(TrainingRun, record.training_run_id)
        assert run.status == "succeeded" and run.output_uri == location
    assert len(new) == 2 and set(new) == {crowd["eu2"]}  # away from vendor_eu and vendor_in
    assert [e.after["flagged"] for e in audit_events(app, "predictions.import")] == [1]
    assert len(audit_events(app, "predictions.redispatch")) == 1


def test_second_import_of_the_same_predictions_changes_nothing(app, project_id, crowd, tmp_path):
    location = outputs_for(tmp_path / "out", crowd, project_id)
    first, _ = import_from(app, location, project_id)
    assignments = count_rows(app, Assignment)
    second, reused = import_from(app, location, project_id)
    assert reused and second == first
    assert count_rows(app, PredictionFlag) == 1 and count_rows(app, PredictionImport) == 1
    assert count_rows(app, Assignment) == assignments
    assert count_rows(app, TrainingRun) == 1


def test_agreement_with_the_model_beside_skill(app, world, project_id, crowd, tmp_path):
    import_id, _ = import_from(app, outputs_for(tmp_path / "out", crowd, project_id),
                               project_id, redispatch=False)
    base = f"/api/v1/projects/{project_id}/prediction-imports/{import_id}/agreement"
    workers = world.get("auditor", base).get_json()
    predicted = {name: crowd["labels"][crowd["tasks"][name]] for name in crowd["tasks"]}
    predicted["t4"] = "negative"
    expected: dict[tuple[str, str], list[int]] = {}
    for task, workforce, worker, value, _ in CROWD:
        entry = expected.setdefault((workforce, worker), [0, 0])
        entry[0] += 1
        entry[1] += value == predicted[task]
    ids = crowd["seeder"].worker_ids()
    with app.app_context():
        skills = dict(db.session().execute(select(WorkerSkill.worker_id, WorkerSkill.skill).where(
            WorkerSkill.run_id == crowd["run_id"])).all())
    by_id = {row["worker_id"]: row for row in workers}
    for (workforce, worker), (labels, agreeing) in expected.items():
        row = by_id[ids[(world.workforce_ids[workforce], worker)]]
        assert (row["labels"], row["agreeing"]) == (labels, agreeing)
        assert row["agreement"] == pytest.approx(agreeing / labels)
        assert row["skill"] == pytest.approx(skills[row["worker_id"]])
    groups = world.get("auditor", base + "?by=workforce").get_json()
    eu = next(g for g in groups if g["workforce_id"] == world.workforce_ids["vendor_eu"])
    assert eu["labels"] == sum(v[0] for k, v in expected.items() if k[0] == "vendor_eu")
    assert eu["workers"] == 2
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(PredictionFlag).where(
            PredictionFlag.redispatched.is_(True))) == 0


def test_bad_predictions_are_refused_and_change_nothing(app, project_id, crowd, tmp_path):
    cases = {
        "another project": (outputs_for(tmp_path / "a", crowd, project_id + 1000), "predictions",
                            "for project"),
        "unknown class": (outputs_for(tmp_path / "b", crowd, project_id,
                                      classes=["positive", "negative", "sarcastic"]),
                          "classes", "sarcastic"),
        "unknown items": (outputs_for(tmp_path / "c", crowd, project_id, extra_ids=[987654]),
                          "items", "987654"),
    }
    tampered = outputs_for(tmp_path / "d", crowd, project_id)
    path = tmp_path / "d" / "predictions.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    first = json.loads(lines[0])
    first["p"] = list(reversed(first["p"]))
    path.write_bytes(gzip.compress(("\n".join([json.dumps(first), *lines[1:]]) + "\n").encode()))
    cases["hash mismatch"] = (tampered, "predictions", "does not match")
    cases["nothing there"] = (str(tmp_path / "missing"), "predictions", "cannot read")
    from coordinator.errors import InvalidInput

    for name, (location, field, words) in cases.items():
        with app.app_context(), pytest.raises(InvalidInput) as caught:
            services.import_predictions(db.session(), Actor.system(), project_id,
                                        location=location)
        assert field in caught.value.errors, name
        assert words in " ".join(caught.value.errors[field]), (name, caught.value.errors)
    for model in (PredictionImport, PredictionFlag, TrainingRun):
        assert count_rows(app, model) == 0


def test_training_run_through_the_api_and_the_training_job(app, world, project_id, crowd):
    base = f"/api/v1/projects/{project_id}"
    response = world.post("manager", f"{base}/training-runs",
                          json={"folds": 2, "epochs": 1, "device": "cpu"})
    assert response.status_code == 202, response.get_json()
    run = response.get_json()
    assert run["status"] == "queued" and run["items"] == 6
    assert run["options"] == {"folds": 2, "epochs": 1, "seed": 0, "device": "cpu"}
    assert world.post("auditor", f"{base}/training-runs", json={}).status_code == 403
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "succeeded"
    shown = world.get("auditor", f"{base}/training-runs/{run['id']}").get_json()
    assert shown["status"] == "succeeded" and shown["device"].startswith("cpu")
    assert shown["output_uri"].endswith(f"outputs/training-run-{run['id']}")
    assert 0 <= shown["metrics"]["accuracy_consensus"] <= 1
    assert shown["metrics"]["item_epochs_per_s"] > 0
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "succeeded"  # again
    created = world.post("manager", f"{base}/training-runs/{run['id']}/predictions",
                         json={"redispatch": False})
    assert created.status_code == 201, created.get_json()
    again = world.post("manager", f"{base}/training-runs/{run['id']}/predictions",
                       json={"redispatch": False})
    assert again.status_code == 200 and again.get_json()["reused"] is True
    assert again.get_json()["id"] == created.get_json()["id"]
    listed = world.get("auditor", f"{base}/training-runs").get_json()
    assert [r["id"] for r in listed] == [run["id"]]


def test_training_job_is_a_celery_task_on_the_training_queue(tmp_path):
    from coordinator import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                      "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                      "BROKER_URL": "redis://127.0.0.1:6399/0"})
    celery = jobs.celery_app(app)  # builds the app; connects to nothing
    assert "coordinator.training.fit" in celery.tasks
    router = celery.amqp.router
    assert router.route({}, "coordinator.training.fit")["queue"].name == "training"
    assert router.route({}, "coordinator.expire_leases")["queue"].name == "default"


def test_cuda_requested_without_cuda_fails_the_run_with_a_clear_error(
        app, world, project_id, crowd, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = f"/api/v1/projects/{project_id}"
    run = world.post("manager", f"{base}/training-runs", json={"device": "cuda"}).get_json()
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "failed"
    shown = world.get("auditor", f"{base}/training-runs/{run['id']}").get_json()
    assert shown["status"] == "failed" and "no CUDA GPU" in shown["error"]
    premature = world.post("manager", f"{base}/training-runs/{run['id']}/predictions", json={})
    assert premature.status_code == 409


def test_training_needs_a_consensus_run_and_valid_options(world, project_id):
    base = f"/api/v1/projects/{project_id}"
    assert world.post("manager", f"{base}/training-runs", json={}).status_code == 409
    assert_invalid(world.post("manager", f"{base}/training-runs", json={"folds": 1}), "folds")
    assert_invalid(world.post("manager", f"{base}/training-runs", json={"device": "tpu"}),
                   "device")


def test_cli_feedback_import_from_a_folder(app, database_url, project_id, crowd, tmp_path,
                                           monkeypatch):
    for key, value in {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
                       "INSTANCE_PATH": str(tmp_path / "instance"), "BROKER_URL": "",
                       "JOBS_IN_PROCESS": "off", "LOG_LEVEL": "warning"}.items():
        monkeypatch.setenv(f"COORDINATOR_{key}", value)
    location = outputs_for(tmp_path / "out", crowd, project_id)
    runner = CliRunner()
    args = ["feedback", "import", "--project", str(project_id), "--from", location,
            "--no-redispatch"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "1 flagged" in first.stderr
    second = runner.invoke(main, args)
    assert second.exit_code == 0 and "already imported" in second.stderr
    bad = runner.invoke(main, ["feedback", "import", "--project", str(project_id), "--from",
                               str(tmp_path / "nowhere")])
    assert bad.exit_code != 0 and "cannot read" in bad.output


def test_cli_train_exports_trains_records_and_imports(app, database_url, project_id, crowd,
                                                      tmp_path, monkeypatch):
    for key, value in {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
                       "INSTANCE_PATH": str(tmp_path / "instance"), "BROKER_URL": "",
                       "JOBS_IN_PROCESS": "off", "LOG_LEVEL": "warning"}.items():
        monkeypatch.setenv(f"COORDINATOR_{key}", value)
    result = CliRunner().invoke(main, [
        "train", "--project", str(project_id), "--out", str(tmp_path / "ds"), "--folds", "2",
        "--epochs", "1", "--device", "cpu", "--import"])
    assert result.exit_code == 0, result.output
    assert "succeeded on cpu" in result.stderr and "predictions imported" in result.stderr
    assert (tmp_path / "ds" / "outputs" / f"training-run-{result.stdout.strip()}"
            / "predictions.jsonl.gz").is_file()
    with app.app_context():
        run = db.session().get(TrainingRun, int(result.stdout.strip()))
        assert run.status == "succeeded" and run.dataset_uri == str(tmp_path / "ds")
    assert count_rows(app, PredictionImport) == 1


# --- the training job's transactions: claim, train with none open, record ------------------


def _other_writer(database_url):
    """An engine of its own, that gives up on a locked SQLite database after half a second."""
    from sqlalchemy import event

    from coordinator.db import make_engine

    engine = make_engine(database_url)
    if database_url.startswith("sqlite"):
        event.listen(engine, "connect",
                     lambda con, _: con.execute("PRAGMA busy_timeout=500"))
    return engine


def test_training_holds_no_transaction_and_runs_once(app, world, database_url, project_id,
                                                      crowd, monkeypatch):
    import training.job
    from coordinator.projects.models import Project

    real_train = training.job.train
    seen = {"trained": 0}
    engine = _other_writer(database_url)

    def probe(*args, **kwargs):
        seen["trained"] += 1
        with engine.begin() as connection:  # another writer commits while training runs
            connection.execute(Project.__table__.update().where(Project.id == project_id)
                               .values(name=Project.name))
            seen["status"] = connection.scalar(select(TrainingRun.status).where(
                TrainingRun.id == run["id"]))
        # The same job delivered again meanwhile finds the run claimed and trains nothing.
        seen["again"] = jobs.run_job(app, "training.fit", training_run_id=run["id"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training.job, "train", probe)
    base = f"/api/v1/projects/{project_id}"
    run = world.post("manager", f"{base}/training-runs",
                     json={"folds": 2, "epochs": 1, "device": "cpu"}).get_json()
    try:
        assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "succeeded"
    finally:
        engine.dispose()
    assert seen == {"trained": 1, "status": "running", "again": "running"}
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "succeeded"
    assert seen["trained"] == 1
    assert [e.after for e in audit_events(app, "training.claim")] == [{"status": "running"}]
    assert len(audit_events(app, "training.finish")) == 1


def test_a_second_claim_gets_nothing(app, world, project_id, crowd):
    base = f"/api/v1/projects/{project_id}"
    run = world.post("manager", f"{base}/training-runs", json={"device": "cpu"}).get_json()
    with app.app_context():
        session = db.session()
        plan = services.claim_training_run(session, run["id"])
        session.commit()
    with app.app_context():
        session = db.session()
        assert services.claim_training_run(session, run["id"]) is None
        assert services.training_run_status(session, run["id"]) == "running"
    assert plan.training_run_id == run["id"] and plan.options["device"] == "cpu"
    assert plan.output_uri.endswith(f"outputs/training-run-{run['id']}")


def test_a_crashed_run_is_failed_and_can_be_run_again(app, world, database_url, project_id,
                                                      crowd, monkeypatch, tmp_path):
    import training.job

    real_train = training.job.train

    def crash(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(training.job, "train", crash)
    base = f"/api/v1/projects/{project_id}"
    run = world.post("manager", f"{base}/training-runs",
                     json={"folds": 2, "epochs": 1, "device": "cpu"}).get_json()
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "failed"
    shown = world.get("auditor", f"{base}/training-runs/{run['id']}").get_json()
    assert shown["status"] == "failed" and "CUDA out of memory" in shown["error"]
    assert world.post("auditor", f"{base}/training-runs/{run['id']}/retry").status_code == 403
    monkeypatch.setattr(jobs, "enqueue", lambda *a, **k: None)  # the job is run below
    retried = world.post("manager", f"{base}/training-runs/{run['id']}/retry")
    assert retried.status_code == 202 and retried.get_json()["status"] == "queued"
    assert retried.get_json()["error"] is None
    [event] = audit_events(app, "training.requeue")
    assert event.before["status"] == "failed" and event.after == {"status": "queued"}
    monkeypatch.setattr(training.job, "train", real_train)
    assert jobs.run_job(app, "training.fit", training_run_id=run["id"]) == "succeeded"
    assert world.post("manager", f"{base}/training-runs/{run['id']}/retry").status_code == 409
    # ... and by hand: a failed run trained again by `coordinator train --training-run`.
    monkeypatch.setattr(training.job, "train", crash)
    second = world.post("manager", f"{base}/training-runs",
                        json={"folds": 2, "epochs": 1, "device": "cpu"}).get_json()
    assert jobs.run_job(app, "training.fit", training_run_id=second["id"]) == "failed"
    monkeypatch.setattr(training.job, "train", real_train)
    for key, value in {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
                       "INSTANCE_PATH": str(tmp_path / "instance"), "BROKER_URL": "",
                       "JOBS_IN_PROCESS": "off", "LOG_LEVEL": "warning"}.items():
        monkeypatch.setenv(f"COORDINATOR_{key}", value)
    result = CliRunner().invoke(main, ["train", "--project", str(project_id),
                                       "--training-run", str(second["id"])])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(second["id"]) and "succeeded on cpu" in result.stderr
    assert count_rows(app, TrainingRun) == 2
    again = CliRunner().invoke(main, ["train", "--project", str(project_id),
                                      "--training-run", str(second["id"])])
    assert again.exit_code != 0 and "succeeded" in again.output


# --- imports: flags sent later, classes of the consensus run, no orphan run ---------------


def test_flags_kept_back_are_sent_by_a_later_import(app, project_id, crowd, tmp_path):
    location = outputs_for(tmp_path / "out", crowd, project_id)
    first, _ = import_from(app, location, project_id, redispatch=False)
    assignments = count_rows(app, Assignment)
    second, reused = import_from(app, location, project_id)
    assert reused and second == first
    with app.app_context():
        record = db.session().get(PredictionImport, first)
        assert record.dispatch_run_id is not None
        flags = db.session().scalars(select(PredictionFlag)).all()
        assert [f.redispatched for f in flags] == [True]
    sent = count_rows(app, Assignment)
    assert sent == assignments + 2
    import_from(app, location, project_id)  # a third time sends nothing again
    assert count_rows(app, Assignment) == sent
    assert len(audit_events(app, "predictions.redispatch")) == 1


def test_predictions_must_have_the_consensus_runs_classes(app, project_id, crowd, tmp_path):
    from coordinator.errors import InvalidInput

    fewer = outputs_for(tmp_path / "a", crowd, project_id, classes=["positive", "negative"])
    with app.app_context(), pytest.raises(InvalidInput) as caught:
        services.import_predictions(db.session(), Actor.system(), project_id, location=fewer)
    assert "classes" in caught.value.errors
    assert "neutral" in " ".join(caught.value.errors["classes"])
    assert count_rows(app, PredictionImport) == 0 and count_rows(app, TrainingRun) == 0


def test_losing_the_import_race_leaves_no_run_behind(app, project_id, crowd, tmp_path):
    location = outputs_for(tmp_path / "out", crowd, project_id)
    first, _ = import_from(app, location, project_id, redispatch=False)
    with app.app_context():
        session = db.session()
        real_scalar = session.scalar
        missed = []

        def late_lookup(statement, *args, **kwargs):  # as if the other import had not
            if not missed and "prediction_imports" in str(statement):  # committed yet
                missed.append(True)
                return None
            return real_scalar(statement, *args, **kwargs)

        session.scalar = late_lookup
        outcome = services.import_predictions(session, Actor.system(), project_id,
                                              location=location, redispatch=False)
        session.commit()
        assert missed and outcome.reused and outcome.prediction_import.id == first
    assert count_rows(app, TrainingRun) == 1 and count_rows(app, PredictionImport) == 1
    assert len(audit_events(app, "training.record")) == 1


def test_the_output_manifest_does_not_choose_the_file_read(app, project_id, crowd, tmp_path):
    location = outputs_for(tmp_path / "out", crowd, project_id)
    path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["predictions"] = "../../elsewhere.jsonl.gz"
    path.write_text(json.dumps(manifest))
    import_id, reused = import_from(app, location, project_id, redispatch=False)
    assert not reused and count_rows(app, PredictionImport) == 1
