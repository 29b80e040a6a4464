"""Model-versus-crowd figures in the report and lineage, from the feedback tables."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from coordinator import db
from coordinator.consensus.models import WorkerSkill
from coordinator.feedback.models import (
    ModelAgreement,
    PredictionFlag,
    PredictionImport,
    TrainingRun,
)


@pytest.fixture
def judged(app, project_id, run_id, seeder):
    """A finished training run and its import: t4 flagged, each worker's agreement."""
    task_id = seeder.task_ids()["t4"]
    with app.app_context():
        session = db.session()
        training = TrainingRun(
            project_id=project_id, consensus_run_id=run_id, status="succeeded",
            options={"folds": 2}, dataset_hash="d" * 64, items=6, device="cpu (test)",
            metrics={"accuracy_consensus": 0.75, "accuracy_gold": 0.5, "gold_items": 2})
        session.add(training)
        session.flush()
        outcome = PredictionImport(
            project_id=project_id, training_run_id=training.id, consensus_run_id=run_id,
            predictions_hash="p" * 64, thresholds={"positive": 0.5}, items=8, flagged=1,
            extra_labels=2)
        session.add(outcome)
        session.flush()
        session.add(PredictionFlag(import_id=outcome.id, task_id=task_id,
                                   consensus_label="positive", predicted_label="negative",
                                   predicted_probability=0.9, consensus_probability=0.05))
        skills = session.scalars(select(WorkerSkill).where(WorkerSkill.run_id == run_id)).all()
        for n, skill in enumerate(skills):
            session.add(ModelAgreement(import_id=outcome.id, worker_id=skill.worker_id,
                                       workforce_id=skill.workforce_id, labels=4,
                                       agreeing=n % 4, skill=skill.skill))
        session.commit()
        return {"training": training.id, "import": outcome.id, "task": task_id,
                "skills": [(s.workforce_id, n % 4) for n, s in enumerate(skills)]}


def test_the_report_has_no_model_section_without_a_training_run(world, project_id, run_id):
    report = world.get("auditor", f"/api/v1/projects/{project_id}/report").get_json()
    assert report["model"] is None


def test_the_report_shows_the_model_against_the_crowd(world, client, project_id, run_id,
                                                      judged):
    report = world.get("auditor", f"/api/v1/projects/{project_id}/report").get_json()
    model = report["model"]
    assert model["training_run"]["id"] == judged["training"]
    assert model["import_id"] == judged["import"]
    assert model["accuracy_consensus"] == 0.75 and model["accuracy_gold"] == 0.5
    assert model["flagged"] == 1 and model["flagged_share"] == pytest.approx(1 / 8)
    expected = {}
    for workforce_id, agreeing in judged["skills"]:
        labels, agree = expected.get(workforce_id, (0, 0))
        expected[workforce_id] = (labels + 4, agree + agreeing)
    rows = {row["workforce_id"]: row for row in model["by_workforce"]}
    assert set(rows) == set(expected)
    skills = {row["workforce_id"]: row["skill"] for row in report["confusion"]["by_workforce"]}
    for workforce_id, (labels, agree) in expected.items():
        assert rows[workforce_id]["labels"] == labels
        assert rows[workforce_id]["agreement"] == pytest.approx(agree / labels)
        assert rows[workforce_id]["skill"] == pytest.approx(skills[workforce_id])
    page = client.get(f"/api/v1/projects/{project_id}/report.html", headers=world.headers(
        "auditor", **{"Accept-Language": "en"})).get_data(as_text=True)
    assert 'id="model-by-workforce"' in page and "75" in page


def test_lineage_names_the_training_run_that_judged_the_label(world, project_id, run_id,
                                                              judged, seeder):
    base = f"/api/v1/projects/{project_id}/consensus/{run_id}/tasks"
    flagged = world.get("auditor", f"{base}/{judged['task']}/lineage").get_json()["training"]
    assert flagged["training_run"]["id"] == judged["training"]
    assert flagged["import_id"] == judged["import"] and flagged["flagged"] is True
    assert flagged["predicted_label"] == "negative"
    assert flagged["predicted_probability"] == pytest.approx(0.9)
    other = seeder.task_ids()["t1"]
    calm = world.get("auditor", f"{base}/{other}/lineage").get_json()["training"]
    assert calm["flagged"] is False and calm["predicted_label"] is None
