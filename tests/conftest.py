"""Fixtures: one migrated database per run, rolled back after every test.

The database is PostgreSQL when ``ENFORCE_DATABASE_URL`` points at it (as in ``.ci/run``),
otherwise a SQLite file. Either way it is built by the Alembic migrations.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import db as testdb

# Hypothesis's per-example deadline and its "input generation is slow" check are timing assertions:
# on a busy CI machine (or under the faked clock) they fail for reasons that are not the code's.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

_INSTANCE = Path(tempfile.mkdtemp(prefix="enforce-test-instance-"))
os.environ["ENFORCE_INSTANCE_PATH"] = str(_INSTANCE)


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    url = testdb.postgres_url()
    if url:
        testdb.reset_postgres_schema(url)
    else:
        url = f"sqlite:///{_INSTANCE / 'test.db'}"
    broker = os.environ.get("ENFORCE_BROKER_URL", "memory://")
    app = testdb.make_app(url, _INSTANCE, BROKER_URL="memory://")
    app.config["SUITE_BROKER_URL"] = broker
    testdb.migrate(app)
    from server.extensions import db

    with app.app_context():
        db.session.remove()
        db.session.configure(join_transaction_mode="create_savepoint")
    yield app
    # Close the pool's connections now: left to the garbage collector, psycopg warns
    # "connection deleted while still open" at some later test (an error under -W error).
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture()
def db_session(app: Flask) -> Iterator[Any]:
    """Every test runs in a transaction that is rolled back at the end; commits become savepoints."""
    from server.extensions import db

    with app.app_context():
        engine = db.engine
        connection = engine.connect()
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # pysqlite only emits BEGIN before DML, so a SAVEPOINT issued first would open the
            # transaction itself and its RELEASE would commit for real: begin explicitly instead.
            connection.connection.driver_connection.isolation_level = None  # type: ignore[union-attr]
        outer = connection.begin()
        if sqlite:
            connection.exec_driver_sql("BEGIN")
        engines = db._app_engines[app]  # noqa: SLF001 - bind every session of the test to one connection
        engines[None] = connection  # type: ignore[assignment]
        try:
            yield db.session
        finally:
            db.session.remove()
            engines[None] = engine
            outer.rollback()
            if sqlite:
                connection.connection.driver_connection.isolation_level = ""  # type: ignore[union-attr]
            connection.close()


@pytest.fixture()
def client(app: Flask, db_session: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def fresh_app(tmp_path: Path) -> Iterator[Any]:
    """``fresh_app(name, **config)``: an app on its own new migrated database, for tests that need
    real commits or other processes. Its connections are closed after the test."""
    from server.extensions import db

    made: list[Flask] = []

    def make(name: str = "", **overrides: Any) -> Flask:
        made.append(testdb.fresh_app(tmp_path, name, **overrides))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


_EXIT: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Under libfaketime (.ci/run's faked-clock pass) a gunicorn the tests started may not stop, and
    threads waiting on it never end their timed waits: the results are in and printed, so leave
    without joining them, with pytest's exit status."""
    if os.environ.get("FAKETIME") and "status" in _EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])
