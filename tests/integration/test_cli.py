"""The ``coordinator`` command against a real SQLite file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from coordinator import create_app, db, schema
from coordinator.cli import main
from coordinator.projects.models import Task
from coordinator.workforces.models import Workforce


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("COORDINATOR_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("COORDINATOR_LOG_LEVEL", "warning")
    monkeypatch.delenv("COORDINATOR_DATABASE_URL", raising=False)
    return CliRunner()


def invoke(runner, *args):
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result


def test_db_upgrade_then_current(runner, tmp_path):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    assert (tmp_path / "instance" / "coordinator.sqlite3").exists()
    result = invoke(runner, "db", "current")
    head = schema.head_revision()
    assert f"current: {head}" in result.output and f"latest: {head}" in result.output


def test_create_admin_prints_a_working_token(runner, tmp_path):
    invoke(runner, "db", "upgrade")
    result = invoke(runner, "create-admin", "root")
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("cdt_")
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "TESTING": True})
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["account"]["role"] == "admin"
    again = invoke(runner, "create-admin", "root")
    assert again.exit_code == 1 and "already exists" in again.output


def test_demo_seeds_once_and_issues_fresh_tokens(runner, tmp_path):
    invoke(runner, "db", "upgrade")
    first = invoke(runner, "demo")
    second = invoke(runner, "demo")
    assert first.exit_code == second.exit_code == 0
    assert "created" in first.output and "already there" in second.output
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "TESTING": True})
    with app.app_context():
        session = db.session()
        assert session.scalar(select(func.count()).select_from(Task)) == 24
        assert session.scalar(select(func.count()).select_from(Workforce)) == 6
        languages = {code for (codes,) in session.execute(select(Task.languages)) for code in codes}
    assert {"ar", "hi", "sw", "ja", "zh_Hans", "pt_BR"} <= languages
    manager_token = second.output.split("Manager token (shown only now):")[1].split()[0]
    seen = app.test_client().get(
        "/api/v1/projects/1/guidelines/1/rendered?locale=ar_EG",
        headers={"Authorization": f"Bearer {manager_token}"}).get_json()
    assert (seen["served_locale"], seen["direction"]) == ("ar", "rtl")
    vendor_token = second.output.split("Vendor token for Nordlicht Annotation GmbH:")[1].split()[0]
    client = app.test_client()
    listed = client.get("/api/v1/workforces", headers={"Authorization": f"Bearer {vendor_token}"})
    assert [w["name"] for w in listed.get_json()] == ["Nordlicht Annotation GmbH"]


def test_serve_refuses_an_unmigrated_database(runner):
    result = invoke(runner, "serve", "--port", "1")
    assert result.exit_code == 1
    assert "coordinator db upgrade" in result.output


def test_a_wrong_setting_is_a_clear_error(runner, monkeypatch):
    monkeypatch.setenv("COORDINATOR_IMPORT_MAX_TASKS", "lots")
    result = invoke(runner, "db", "upgrade")
    assert result.exit_code == 1
    assert "COORDINATOR_IMPORT_MAX_TASKS" in result.output and "whole number" in result.output


def test_downgrade_to_base_then_up_again(runner):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    assert invoke(runner, "db", "downgrade", "base").exit_code == 0
    assert "current: none" in invoke(runner, "db", "current").output
    assert invoke(runner, "db", "upgrade").exit_code == 0
