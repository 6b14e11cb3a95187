"""A production process must read its audit-log key at start-up: a missing or unreadable key stops
start-up with a message naming ENFORCE_AUDIT_LOG_KEY (issue 16, item 3)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from server.config import ConfigError, load

ROOT = Path(__file__).resolve().parent.parent
PROD = {"ENFORCE_ENV": "production", "ENFORCE_SECRET_KEY": "a-long-enough-secret-key"}
PEM = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n"


def test_production_needs_the_key_configured(tmp_path):
    with pytest.raises(ConfigError, match="ENFORCE_AUDIT_LOG_KEY must be set in production"):
        load(str(tmp_path), environ=dict(PROD))


def test_a_missing_key_stops_production_start_up(tmp_path):
    missing = tmp_path / "secrets" / "audit-log-key.pem"
    with pytest.raises(ConfigError, match=f"ENFORCE_AUDIT_LOG_KEY: {missing} does not exist"):
        load(str(tmp_path), environ={**PROD, "ENFORCE_AUDIT_LOG_KEY": str(missing)})


def test_a_file_that_is_not_a_key_is_refused(tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="ENFORCE_AUDIT_LOG_KEY: .* is not a PEM private key"):
        load(str(tmp_path), environ={**PROD, "ENFORCE_AUDIT_LOG_KEY": str(bad)})


def test_a_readable_key_starts(tmp_path):
    key = tmp_path / "key.pem"
    key.write_bytes(PEM)
    values = load(str(tmp_path), environ={**PROD, "ENFORCE_AUDIT_LOG_KEY": str(key)})
    assert values["AUDIT_LOG_KEY"] == str(key)


def _unprivileged(command: list[str]) -> list[str]:
    """Run as nobody when we are root (as the container runs as ``enforce``), else as ourselves."""
    if os.getuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv(1) to drop privileges")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]


@pytest.mark.timeout(60)
def test_a_key_the_service_user_cannot_read_stops_start_up_naming_it():
    """The README's ``openssl genpkey`` writes 0600: owned by another user, the service cannot read it."""
    tmp_path = Path(tempfile.mkdtemp(prefix="enforce-secrets-"))  # pytest's own folders are 0700
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    key = secrets / "audit-log-key.pem"
    key.write_bytes(PEM)
    key.chmod(0o600)  # owned by root (or by us) with 0600: unreadable for nobody (or after chmod 000)
    if os.getuid() != 0:
        key.chmod(0o000)
    for folder in (tmp_path, secrets):
        folder.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORCE_")}
    env.update(PROD, ENFORCE_AUDIT_LOG_KEY=str(key), ENFORCE_INSTANCE_PATH=str(tmp_path / "instance"),
               ENFORCE_LOG_JSON="false", PYTHONDONTWRITEBYTECODE="1", HOME=str(tmp_path))
    # ``enforce routes`` builds the app, as every process of the image does first
    done = subprocess.run(_unprivileged([str(Path(sys.executable).parent / "enforce"), "routes"]), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=50)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"ENFORCE_AUDIT_LOG_KEY: cannot read {key}" in done.stderr
    assert "Permission denied" in done.stderr
    shutil.rmtree(tmp_path)


def test_database_and_task_timeouts_reach_the_drivers(tmp_path):
    """Issue 21 item 4 / issue 22 items 5-6: PostgreSQL sessions carry statement and idle-in-transaction
    timeouts and TCP keepalives; Celery acknowledges late, with a time limit inside Redis's visibility timeout."""
    from server import create_app

    app = create_app({"ENV": "test", "SECRET_KEY": "test-secret-key-0123456789",
                      "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "BROKER_URL": "redis://127.0.0.1:1/0",
                      "DB_STATEMENT_TIMEOUT_S": 20, "TASK_TIME_LIMIT_S": 600})
    args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert "statement_timeout=20000" in args["options"] and "idle_in_transaction_session_timeout=120000" in args["options"]
    assert args["keepalives"] == 1 and args["connect_timeout"] == 3
    conf = app.extensions["celery"].conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.task_time_limit == 600
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    with pytest.raises(ConfigError, match="ENFORCE_TASK_TIME_LIMIT_S must be at least 60"):
        load(str(tmp_path), {"TASK_TIME_LIMIT_S": 5}, environ={"ENFORCE_SECRET_KEY": "a-long-enough-secret-key"})
