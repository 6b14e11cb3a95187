"""One live server (real HTTP, own migrated database) shared by the tus client interop tests."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from flask import Flask

from tests import db as testdb
from tests.evidence.live import seed_team, serve


@pytest.fixture(scope="session")
def live(app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, dict[str, Any]]]:
    from server.extensions import db

    live_app = testdb.fresh_app(tmp_path_factory.mktemp("tus-live"), "tuslive")
    app.extensions["celery"].set_current()
    app.extensions["celery"].set_default()  # creating an app made its Celery the default: give it back
    values = seed_team(live_app)
    try:
        with serve(live_app) as base:
            yield live_app, base, values
    finally:
        app.extensions["celery"].set_current()
        app.extensions["celery"].set_default()
        with live_app.app_context():
            db.engine.dispose()  # no PostgreSQL connection may outlive the test session


@pytest.fixture(autouse=True)
def _tasks_run_in_the_suite_app(app: Flask) -> None:
    """Eager tasks run in the app of the default Celery; any test that built another app (fresh_app)
    made that one the default, so give it back before each evidence test."""
    app.extensions["celery"].set_current()
    app.extensions["celery"].set_default()
