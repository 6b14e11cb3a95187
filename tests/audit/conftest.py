"""A live app on its own migrated database, for tests that need real commits."""
from __future__ import annotations

from typing import Iterator

import pytest
from flask import Flask

from tests import db as testdb


@pytest.fixture()
def live_app(tmp_path) -> Iterator[Flask]:
    app = testdb.fresh_app(tmp_path)
    yield app
    from server.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
