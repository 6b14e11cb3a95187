"""Configuration: defaults → ENFORCE_* environment → test config, and a clear ConfigError on bad values."""
from __future__ import annotations

import json

import pytest

from server import create_app
from server.config import SETTINGS, ConfigError, load

GOOD = {"ENFORCE_SECRET_KEY": "a-long-enough-secret-key"}


@pytest.mark.parametrize("environ, message", [
    ({"ENFORCE_DATABASE_URL": "mysql://root@localhost/enforce"}, "ENFORCE_DATABASE_URL: scheme 'mysql'"),
    ({"ENFORCE_DATABASE_URL": "postgres://u@h/db"}, "ENFORCE_DATABASE_URL: scheme 'postgres'"),
    ({"ENFORCE_STAFF_TOKEN_TTL_S": "twelve hours"}, "ENFORCE_STAFF_TOKEN_TTL_S"),
    ({"ENFORCE_LOGIN_MAX_FAILURES": "0"}, "ENFORCE_LOGIN_MAX_FAILURES must be positive"),
    ({"ENFORCE_MAX_CONTENT_LENGTH": "-5"}, "ENFORCE_MAX_CONTENT_LENGTH must be positive"),
    ({"ENFORCE_LOG_JSON": "maybe"}, "ENFORCE_LOG_JSON: expected true/false"),
    ({"ENFORCE_DATABSE_URL": "sqlite://"}, "unknown setting(s): ENFORCE_DATABSE_URL"),
    ({"ENFORCE_ENV": "staging"}, "ENFORCE_ENV must be development, production or test"),
    ({"ENFORCE_ENV": "production", "ENFORCE_SECRET_KEY": ""}, "ENFORCE_SECRET_KEY must be set in production"),
    ({"ENFORCE_SECRET_KEY": "short"}, "ENFORCE_SECRET_KEY is too short"),
    ({"ENFORCE_STORAGE_URL": "ftp://files.example/blobs"}, "ENFORCE_STORAGE_URL: scheme 'ftp'"),
    ({"ENFORCE_BROKER_URL": "amqp://guest@localhost//"}, "ENFORCE_BROKER_URL: use memory:// (in-process) or redis://"),
    ({"ENFORCE_HOLIDAYS_FILE": "/nonexistent/holidays.json"}, "ENFORCE_HOLIDAYS_FILE"),
    ({"ENFORCE_CALENDAR_PROVISIONAL": "sometimes"}, "ENFORCE_CALENDAR_PROVISIONAL: expected true/false"),
])
def test_bad_values_stop_load_with_a_message_naming_the_variable(tmp_path, environ, message):
    with pytest.raises(ConfigError) as caught:
        load(str(tmp_path), environ={**GOOD, **environ})
    assert message in str(caught.value)


@pytest.mark.parametrize("name, value, message", [
    ("ENFORCE_DATABASE_URL", "oracle://scott@db/orcl", "ENFORCE_DATABASE_URL"),
    ("ENFORCE_DEVICE_TOKEN_TTL_S", "1h", "ENFORCE_DEVICE_TOKEN_TTL_S"),
    ("ENFORCE_NO_SUCH_SETTING", "1", "unknown setting(s): ENFORCE_NO_SUCH_SETTING"),
    ("ENFORCE_BROKER_URL", "sqs://queue", "ENFORCE_BROKER_URL"),
    ("ENFORCE_STORAGE_URL", "gs://bucket", "ENFORCE_STORAGE_URL"),
])
def test_create_app_fails_at_start_up(tmp_path, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_app({"ENV": "test", "SECRET_KEY": "test-secret-key-0123456789"})


def test_production_without_secret_key_refuses_to_start(monkeypatch):
    monkeypatch.setenv("ENFORCE_ENV", "production")
    monkeypatch.delenv("ENFORCE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY must be set in production"):
        create_app()


def test_precedence_defaults_then_environment_then_test_config(tmp_path):
    values = load(str(tmp_path), environ=dict(GOOD))
    assert values["LOGIN_MAX_FAILURES"] == SETTINGS["LOGIN_MAX_FAILURES"].default == 5

    environ = {**GOOD, "ENFORCE_LOGIN_MAX_FAILURES": "7", "ENFORCE_LOG_LEVEL": "WARNING"}
    values = load(str(tmp_path), environ=environ)
    assert values["LOGIN_MAX_FAILURES"] == 7  # parsed to int
    assert values["LOG_LEVEL"] == "WARNING"

    values = load(str(tmp_path), {"LOGIN_MAX_FAILURES": 9, "ENFORCE_LOG_LEVEL": "DEBUG"}, environ=environ)
    assert values["LOGIN_MAX_FAILURES"] == 9
    assert values["LOG_LEVEL"] == "DEBUG"  # the prefix is optional in the test config


def test_test_config_values_are_validated_too(tmp_path):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load(str(tmp_path), {"DATABASE_URL": "mssql://sa@db/x"}, environ=dict(GOOD))
    with pytest.raises(ConfigError, match="STAFF_TOKEN_TTL_S must be positive"):
        load(str(tmp_path), {"STAFF_TOKEN_TTL_S": 0}, environ=dict(GOOD))


def test_the_provisional_calendar_is_on_unless_switched_off(tmp_path):
    assert load(str(tmp_path), environ=dict(GOOD))["CALENDAR_PROVISIONAL"] is True
    assert load(str(tmp_path), environ={**GOOD, "ENFORCE_CALENDAR_PROVISIONAL": "off"})["CALENDAR_PROVISIONAL"] is False


def test_empty_environment_variable_means_default(tmp_path):
    values = load(str(tmp_path), environ={**GOOD, "ENFORCE_LOG_LEVEL": ""})
    assert values["LOG_LEVEL"] == "INFO"


def test_embedded_defaults_live_in_the_instance_folder(tmp_path):
    values = load(str(tmp_path), environ={})
    assert values["DATABASE_URL"] == f"sqlite:///{tmp_path / 'enforce.db'}"
    assert values["STORAGE_URL"] == (tmp_path / "blobs").as_uri()
    assert values["BROKER_URL"] == "memory://"
    # The generated secret key is kept, private to the owner, and reused on the next start.
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert values["SECRET_KEY"] == key_file.read_text().strip()
    assert load(str(tmp_path), environ={})["SECRET_KEY"] == values["SECRET_KEY"]


def test_postgresql_url_gets_the_psycopg_driver(tmp_path):
    values = load(str(tmp_path), environ={**GOOD, "ENFORCE_DATABASE_URL": "postgresql://u@db:5432/enforce"})
    assert values["DATABASE_URL"] == "postgresql+psycopg://u@db:5432/enforce"
    explicit = "postgresql+psycopg://u@db:5432/enforce"
    assert load(str(tmp_path), environ={**GOOD, "ENFORCE_DATABASE_URL": explicit})["DATABASE_URL"] == explicit


def test_holidays_file_is_checked_at_start_up(tmp_path):
    empty_year = tmp_path / "empty.json"
    empty_year.write_text(json.dumps({"2027": {"holidays": [], "workdays": []}}))
    with pytest.raises(ConfigError, match="year 2027 lists no dates"):
        load(str(tmp_path), environ={**GOOD, "ENFORCE_HOLIDAYS_FILE": str(empty_year)})
    bad_date = tmp_path / "bad.json"
    bad_date.write_text(json.dumps({"2027": {"holidays": ["2027-02-30"]}}))
    with pytest.raises(ConfigError, match="ENFORCE_HOLIDAYS_FILE"):
        load(str(tmp_path), environ={**GOOD, "ENFORCE_HOLIDAYS_FILE": str(bad_date)})
    not_json = tmp_path / "not.json"
    not_json.write_text("{2027: ")
    with pytest.raises(ConfigError, match="ENFORCE_HOLIDAYS_FILE"):
        load(str(tmp_path), environ={**GOOD, "ENFORCE_HOLIDAYS_FILE": str(not_json)})


def test_the_app_carries_the_loaded_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ENFORCE_LOGIN_LOCK_MINUTES", "42")
    app = create_app({"ENV": "test", "SECRET_KEY": "test-secret-key-0123456789",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "STORAGE_URL": tmp_path.as_uri()})
    assert app.config["LOGIN_LOCK_MINUTES"] == 42
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'x.db'}"
    assert app.testing
