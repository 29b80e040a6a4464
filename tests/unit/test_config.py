"""Settings: defaults, COORDINATOR_* environment overrides, explicit overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator import create_app
from coordinator.config import DEFAULTS, ENV_PREFIX, ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the caller's COORDINATOR_* settings from create_app."""
    for name in DEFAULTS:
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)


def test_defaults_without_environment():
    settings = load_settings(environ={})
    assert settings == {name: setting.default for name, setting in DEFAULTS.items()}
    assert settings["LOG_FORMAT"] == "auto"
    assert settings["DATABASE_URL"] == ""
    assert settings["TRUST_PROXY_HEADERS"] is False


def test_every_setting_has_help_text():
    assert all(setting.help for setting in DEFAULTS.values())


def test_environment_overrides_defaults():
    settings = load_settings(environ={
        "COORDINATOR_LOG_LEVEL": " DEBUG ",
        "COORDINATOR_MAX_BODY_BYTES": "2048",
        "COORDINATOR_TRUST_PROXY_HEADERS": "yes",
        "COORDINATOR_DEFAULT_LOCALE": "pt-BR",
    })
    assert settings["LOG_LEVEL"] == "debug"
    assert settings["MAX_BODY_BYTES"] == 2048
    assert settings["TRUST_PROXY_HEADERS"] is True
    assert settings["DEFAULT_LOCALE"] == "pt_BR"


def test_variables_without_the_prefix_are_ignored():
    settings = load_settings(environ={"LOG_LEVEL": "debug", "COORDINATOR_log_level": "debug"})
    assert settings["LOG_LEVEL"] == DEFAULTS["LOG_LEVEL"].default


def test_plain_postgresql_urls_get_the_psycopg_driver():
    settings = load_settings(environ={"COORDINATOR_DATABASE_URL": "postgresql://u@db:5432/c"})
    assert settings["DATABASE_URL"] == "postgresql+psycopg://u@db:5432/c"


def test_overrides_beat_the_environment():
    settings = load_settings({"LOG_FORMAT": "text"}, environ={"COORDINATOR_LOG_FORMAT": "json"})
    assert settings["LOG_FORMAT"] == "text"


def test_overrides_are_validated_and_parsed():
    settings = load_settings({"IMPORT_MAX_TASKS": "10", "TRUST_PROXY_HEADERS": "off"}, environ={})
    assert (settings["IMPORT_MAX_TASKS"], settings["TRUST_PROXY_HEADERS"]) == (10, False)


def test_unknown_keys_pass_through_to_flask():
    settings = load_settings({"TESTING": True, "SOMETHING_ELSE": [1]}, environ={})
    assert settings["TESTING"] is True and settings["SOMETHING_ELSE"] == [1]


def test_overrides_are_not_mutated():
    overrides = {"LOG_FORMAT": "json", "TESTING": True}
    load_settings(overrides, environ={})
    assert overrides == {"LOG_FORMAT": "json", "TESTING": True}


def test_a_path_object_is_accepted_for_a_text_setting(tmp_path):
    assert load_settings({"INSTANCE_PATH": tmp_path}, environ={})["INSTANCE_PATH"] == str(tmp_path)


@pytest.mark.parametrize(("name", "value"), [
    ("LOG_FORMAT", "xml"),
    ("LOG_LEVEL", "verbose"),
    ("MAX_BODY_BYTES", "lots"),
    ("MAX_BODY_BYTES", "10"),  # below the minimum
    ("IMPORT_MAX_TASKS", "0"),
    ("TRUST_PROXY_HEADERS", "maybe"),
    ("DATABASE_URL", "mysql://u@h/db"),
    ("DEFAULT_LOCALE", "xx_YY"),
    ("DEFAULT_LOCALE", "english"),
])
def test_a_wrong_environment_value_names_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"COORDINATOR_{name}": value})
    message = str(caught.value)
    assert f"COORDINATOR_{name}" in message
    assert "environment" in message


def test_a_wrong_override_says_it_came_from_the_configuration():
    with pytest.raises(ConfigError, match=r"COORDINATOR_LOG_FORMAT .*\(from the configuration\)"):
        load_settings({"LOG_FORMAT": "xml"}, environ={})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"COORDINATOR_LOG_LEVEL": "loud", "COORDINATOR_MAX_BODY_BYTES": "x"})
    message = str(caught.value)
    assert "COORDINATOR_LOG_LEVEL" in message and "COORDINATOR_MAX_BODY_BYTES" in message


def test_database_url_error_does_not_echo_credentials():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"COORDINATOR_DATABASE_URL": "mysql://user:s3cret@host/db"})
    assert "s3cret" not in str(caught.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("config", [
    {"LOG_FORMAT": "yaml"},
    {"DATABASE_URL": "oracle://x"},
    {"MAX_BODY_BYTES": -1},
])
def test_create_app_with_bad_config_raises(tmp_path: Path, config):
    with pytest.raises(ConfigError):
        create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path), **config})


def test_create_app_with_bad_environment_raises(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COORDINATOR_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="COORDINATOR_LOG_LEVEL"):
        create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path)})


def test_create_app_fills_database_and_secret_from_the_instance_folder(tmp_path: Path):
    instance = tmp_path / "instance"
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance)})
    assert app.config["DATABASE_URL"] == f"sqlite:///{instance / 'coordinator.sqlite3'}"
    key_file = instance / "secret_key"
    assert app.config["SECRET_KEY"] == key_file.read_text().strip()
    assert len(app.config["SECRET_KEY"]) >= 32
    assert key_file.stat().st_mode & 0o077 == 0  # readable by the owner only
    # A restart keeps the key, so signed values stay valid.
    again = create_app({"TESTING": True, "INSTANCE_PATH": str(instance)})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_max_body_bytes_becomes_flasks_limit(tmp_path: Path):
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path), "MAX_BODY_BYTES": 4096})
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
