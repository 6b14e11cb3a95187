"""With the database unreachable, requests fail fast with 503 server.database_unavailable, never hang."""
from __future__ import annotations

import time

import pytest

from tests import db as testdb
from tests.helpers import assert_contract


@pytest.fixture()
def down_app(tmp_path):
    # Nothing listens on port 1: the connection is refused at once; DB_CONNECT_TIMEOUT_S bounds the rest.
    return testdb.make_app("postgresql://postgres@127.0.0.1:1/enforce", tmp_path, DB_CONNECT_TIMEOUT_S=2)


@pytest.mark.parametrize("method, url, body", [
    ("GET", "/api/v1/regions", None),
    ("POST", "/api/v1/auth/login", {"username": "someone", "password": "whatever"}),
    ("POST", "/mobile/v1/auth/refresh", {"refresh_token": "x" * 43}),
])
def test_requests_get_503_quickly(down_app, method, url, body):
    started = time.monotonic()
    response = down_app.test_client().open(url, method=method, json=body)
    elapsed = time.monotonic() - started
    assert_contract(response, 503, "server.database_unavailable")
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert "127.0.0.1" not in response.get_data(as_text=True)  # connection details stay in the log


def test_healthz_reports_the_database_down(down_app):
    started = time.monotonic()
    response = down_app.test_client().get("/healthz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json["status"] == "degraded"
    checks = response.json["checks"]
    assert checks["database"]["ok"] is False and "OperationalError" in checks["database"]["error"]
    assert checks["storage"]["ok"] is True and checks["broker"]["ok"] is True


def test_unopenable_sqlite_file_is_503_too(tmp_path):
    app = testdb.make_app(f"sqlite:///{tmp_path / 'missing-dir' / 'enforce.db'}", tmp_path)
    assert_contract(app.test_client().get("/api/v1/regions"), 503, "server.database_unavailable")
