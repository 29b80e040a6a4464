"""A small multilingual crowd with gold, written straight through the models, for API tests."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from sqlalchemy import select

from coordinator import db
from coordinator.dispatch.models import Assignment, Worker
from coordinator.guidelines.models import GuidelineVersion
from coordinator.labels.models import Label
from coordinator.projects.models import Task

CLASSES = ["positive", "negative", "neutral"]
POS, NEG, NEU = CLASSES
REGION = {"vendor_eu": "eu", "vendor_in": "in"}

#: (task, workforce, worker, value, locale): four workers, six tasks, 20 counted labels.
CROWD = [
    ("t1", "vendor_eu", "a", POS, "de"), ("t1", "vendor_eu", "b", POS, "de"),
    ("t1", "vendor_in", "c", POS, "hi"), ("t1", "vendor_in", "d", NEG, "hi"),
    ("t2", "vendor_eu", "a", NEG, "de"), ("t2", "vendor_eu", "b", NEG, "en"),
    ("t2", "vendor_in", "c", POS, "hi"), ("t2", "vendor_in", "d", NEG, "hi"),
    ("t3", "vendor_eu", "a", NEU, "de"), ("t3", "vendor_eu", "b", POS, "de"),
    ("t3", "vendor_in", "c", NEU, "en"), ("t3", "vendor_in", "d", NEU, "hi"),
    ("t4", "vendor_eu", "a", POS, "en"), ("t4", "vendor_eu", "b", POS, "de"),
    ("t4", "vendor_in", "c", POS, "hi"),
    ("t5", "vendor_eu", "a", NEG, "de"), ("t5", "vendor_in", "c", NEG, "hi"),
    ("t5", "vendor_in", "d", POS, "hi"),
    ("t6", "vendor_eu", "b", NEU, "de"), ("t6", "vendor_in", "d", NEU, "hi"),
]
GOLD = {"t1": POS, "t2": NEG, "t3": NEU}
#: Labels kept aside: a late one, and one a correction superseded. Neither may count.
ASIDE = [
    ("t6", "vendor_eu", "a", POS, "de", "late"),
    ("t4", "vendor_in", "c", NEG, "hi", "superseded"),
]


class Seeder:
    """Writes tasks, workers, assignments and labels straight through the models."""

    def __init__(self, app, world, project_id):
        self.app, self.world, self.project_id = app, world, project_id

    def add(self, rows, gold=None, aside=()):
        """Add (task, workforce, worker, value, locale) labels; ``aside`` rows are not counted."""
        gold = gold or {}
        with self.app.app_context():
            session = db.session()
            version = session.scalar(select(GuidelineVersion).where(
                GuidelineVersion.project_id == self.project_id))
            if version is None:
                version = GuidelineVersion(project_id=self.project_id, number=1,
                                           status="published", title="Guide",
                                           source_markdown="# Guide", source_locale="en")
                session.add(version)
                session.flush()
            tasks = {t.external_id: t for t in session.scalars(
                select(Task).where(Task.project_id == self.project_id))}
            workers = {(w.workforce_id, w.external_id): w for w in session.scalars(select(Worker))}
            entries = [(*row, True, None) for row in rows] + [
                (*row[:5], False, row[5]) for row in aside]
            for task_key, workforce_key, worker_key, value, locale, counted, why in entries:
                if task_key not in tasks:
                    tasks[task_key] = Task(
                        project_id=self.project_id, external_id=task_key,
                        payload={"text": task_key}, languages=["en"], gold=gold.get(task_key),
                        content_hash=hashlib.sha256(task_key.encode()).hexdigest())
                    session.add(tasks[task_key])
                workforce_id = self.world.workforce_ids[workforce_key]
                if (workforce_id, worker_key) not in workers:
                    workers[(workforce_id, worker_key)] = Worker(
                        workforce_id=workforce_id, external_id=worker_key)
                    session.add(workers[(workforce_id, worker_key)])
                session.flush()
                task, worker = tasks[task_key], workers[(workforce_id, worker_key)]
                assignment = Assignment(
                    project_id=self.project_id, task_id=task.id, workforce_id=workforce_id,
                    guideline_version_id=version.id, status="submitted",
                    price=Decimal("0.05"), currency="EUR", guideline_locale=locale,
                    worker_id=worker.id)
                session.add(assignment)
                session.flush()
                session.add(Label(
                    project_id=self.project_id, task_id=task.id, assignment_id=assignment.id,
                    workforce_id=workforce_id, worker_id=worker.id, value=value,
                    guideline_version_id=version.id, guideline_locale=locale,
                    counted=counted, set_aside=why))
            session.commit()

    def task_ids(self):
        with self.app.app_context():
            return dict(db.session().execute(select(Task.external_id, Task.id).where(
                Task.project_id == self.project_id)).all())

    def worker_ids(self):
        with self.app.app_context():
            return {(wf, ext): wid for wid, wf, ext in db.session().execute(
                select(Worker.id, Worker.workforce_id, Worker.external_id)).all()}
