"""Building test databases with the real migrations, on SQLite or PostgreSQL."""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import make_url

from server import create_app


TEST_LIMITS = ("LOGIN_LIMIT_PER_ADDRESS", "LOGIN_LIMIT_PER_ACCOUNT", "REFRESH_LIMIT_PER_ADDRESS",
               "DEVICE_REGISTRATION_LIMIT", "PUBLIC_LIMIT_PER_ADDRESS")


def postgres_url() -> str | None:
    """The PostgreSQL URL the suite runs against, if any (``ENFORCE_DATABASE_URL``)."""
    url = os.environ.get("ENFORCE_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


def redis_url() -> str:
    """The Redis the suite's Redis tests use: ``ENFORCE_BROKER_URL`` when it is Redis (as in
    ``.ci/run``), else ``TEST_REDIS_URL``, else database 15 of a local Redis."""
    broker = os.environ.get("ENFORCE_BROKER_URL", "")
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"


def scratch_database_url(tmp: Path, name: str = "") -> str:
    """A new empty database of the suite's kind: a PostgreSQL database or a SQLite file."""
    base = postgres_url()
    if base is None:
        return f"sqlite:///{tmp / ((name or uuid.uuid4().hex[:8]) + '.db')}"
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    db_name = f"{url.database}_{name or uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    admin.dispose()
    return url.set(database=db_name).render_as_string(hide_password=False)


def reset_postgres_schema(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def make_app(database_url: str, instance: Path, **overrides: Any) -> Flask:
    config = {
        "ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-0123456789",
        "STORAGE_URL": (instance / "blobs").as_uri(),
        "LOG_JSON": False,
        "AUDIT_LOG_KEY": str(instance / "audit-log-key.pem"),
        # long tasks in the request, like the others: a thread could not see a test's rolled-back
        # transaction (the browser tests' app, which commits for real, uses threads)
        "TASK_THREADS": 0,
        # The suite signs in thousands of times from 127.0.0.1: limits far above it, so no test is
        # throttled by accident. tests/test_rate_limits.py builds apps with the real limits.
        **{name: "100000 per minute" for name in TEST_LIMITS},
        "RATELIMIT_KEY_PREFIX": f"enforce-test-{uuid.uuid4().hex[:12]}",
    }
    config.update(overrides)
    os.environ.setdefault("ENFORCE_INSTANCE_PATH", str(instance))
    return create_app(config)


def migrate(app: Flask) -> None:
    """Alembic upgrade to head: the only way the schema is made, in tests too."""
    from flask_migrate import upgrade

    from server.extensions import init_migrations

    init_migrations(app)
    with app.app_context():
        upgrade()


def fresh_app(tmp: Path | None = None, name: str = "", **overrides: Any) -> Flask:
    """An app on its own new, migrated database (for tests that need real commits)."""
    tmp = tmp or Path(tempfile.mkdtemp(prefix="enforce-test-"))
    app = make_app(scratch_database_url(tmp, name), tmp, **overrides)
    migrate(app)
    return app
