"""Rate limits with their real mechanics (issue 14 #7): the suite's apps have limits far above what
it sends (tests/db.py); these tests set low ones, each from its own client address."""
from __future__ import annotations

import re
from pathlib import Path
import uuid

import pytest
import redis

from server.core import ratelimit
from server.extensions import db
from tests import db as testdb
from tests import factories
from tests.helpers import assert_contract, audit_entries, bearer, login

HTML = {"Accept": "text/html"}
REDIS = "redis://127.0.0.1:6379/2"


def _address() -> dict[str, str]:
    """A client address of this test alone (documentation range 198.51.100.0/24 and others)."""
    n = uuid.uuid4().int
    return {"REMOTE_ADDR": f"203.0.{n % 250}.{(n >> 8) % 250 + 1}"}


def _login(client, username: str, password: str, address: dict[str, str]):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password},
                       environ_base=address)


def _throttled(response) -> dict:
    body = assert_contract(response, 429, "request.rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert body["context"]["retry_after_s"] == int(response.headers["Retry-After"])
    return body


@pytest.fixture()
def limits(app, monkeypatch):
    """Set real limits on the suite's app for one test."""
    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setitem(app.config, name, value)
    return set_


def test_failed_sign_ins_are_limited_per_address(client, db_session, limits):
    limits(LOGIN_LIMIT_PER_ADDRESS="3 per minute")
    user = factories.inspector()
    here, elsewhere = _address(), _address()
    for name in ("a.one", "b.two", user.username):
        assert_contract(_login(client, name, "wrong guess", here), 401, "auth.invalid_credentials")
    _throttled(_login(client, "c.three", "wrong guess", here))
    # from that address even the right password waits; from another one it works
    _throttled(_login(client, user.username, factories.PASSWORD, here))
    assert _login(client, user.username, factories.PASSWORD, elsewhere).status_code == 200


def test_successful_sign_ins_do_not_use_up_the_limit(client, db_session, limits):
    limits(LOGIN_LIMIT_PER_ADDRESS="2 per minute", LOGIN_LIMIT_PER_ACCOUNT="2 per minute")
    user = factories.inspector()
    here = _address()
    for _ in range(5):  # an office behind one address, everyone signing in in the morning
        assert _login(client, user.username, factories.PASSWORD, here).status_code == 200


def test_failed_sign_ins_are_limited_per_account_from_any_address_and_case(client, db_session, limits):
    limits(LOGIN_LIMIT_PER_ACCOUNT="3 per minute", LOGIN_MAX_FAILURES=100)
    user = factories.inspector()
    for name in (user.username, user.username.upper(), user.username.title()):
        assert_contract(_login(client, name, "wrong guess", _address()), 401, "auth.invalid_credentials")
    _throttled(_login(client, user.username, factories.PASSWORD, _address()))
    # another account is not affected
    other = factories.inspector()
    assert _login(client, other.username, factories.PASSWORD, _address()).status_code == 200


def test_console_sign_in_shares_the_counters_and_answers_with_a_page(client, db_session, limits):
    limits(LOGIN_LIMIT_PER_ADDRESS="2 per minute")
    here = _address()
    for name in ("x.one", "x.two"):
        _login(client, name, "wrong guess", here)
    page = client.get("/console/login", headers=HTML, environ_base=here).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = client.post("/console/login", headers=HTML, environ_base=here,
                          data={"username": "x.three", "password": "wrong guess", "csrf_token": token})
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert int(refused.headers["Retry-After"]) > 0
    assert "request.rate_limited" in refused.get_data(as_text=True)


def test_refresh_and_device_registration_are_limited(client, db_session, limits):
    limits(REFRESH_LIMIT_PER_ADDRESS="2 per minute", DEVICE_REGISTRATION_LIMIT="2 per hour")
    here = _address()
    for _ in range(2):
        response = client.post("/mobile/v1/auth/refresh", json={"refresh_token": "r" * 40}, environ_base=here)
        assert response.status_code == 401
    _throttled(client.post("/mobile/v1/auth/refresh", json={"refresh_token": "r" * 40}, environ_base=here))

    user = factories.inspector()
    token = login(client, user.username)

    def register():
        body = {"public_key": factories.device_key()[1], "label": "执法平板", "platform": "android",
                "app_version": "1.0.0"}
        return client.post("/mobile/v1/devices", json=body, headers=bearer(token), environ_base=_address())

    assert [register().status_code for _ in range(2)] == [201, 201]
    _throttled(register())  # per account, whatever the address


def test_public_pages_and_api_are_limited_per_address_static_files_are_not(client, db_session, limits):
    limits(PUBLIC_LIMIT_PER_ADDRESS="3 per minute")
    here = _address()
    assert [client.get("/public/staff", headers=HTML, environ_base=here).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/public/staff", headers=HTML, environ_base=here)
    assert refused.status_code == 429 and refused.mimetype == "text/html" and refused.headers["Retry-After"]
    _throttled(client.get("/api/v1/public/audit/checkpoint", environ_base=here))
    static = client.get("/web-static/console.js", environ_base=here)
    static.close()
    assert static.status_code == 200
    # staff pages and the staff API are not public limits' business
    assert client.get("/console/login", headers=HTML, environ_base=here).status_code == 200


def test_unknown_names_are_counted_not_written_down(client, db_session):
    """A flood of made-up names from one address leaves entries at the 1st, 10th, 100th, … failure of
    the hour, with the count and the address and without anything typed."""
    here = _address()
    for n in range(12):
        assert _login(client, f"guess.{n}", f"secret-{n}", here).status_code == 401
    entries = [e for e in audit_entries("web:login:unknown_names")
               if e["payload"]["remote_addr"] == here["REMOTE_ADDR"]]
    assert [e["payload"]["failures_in_window"] for e in entries] == [1, 10]
    assert not audit_entries("web:login:failed")
    assert "guess." not in str(entries) and "secret-" not in str(entries)
    assert [ratelimit.worth_recording(n) for n in (1, 2, 9, 10, 11, 100, 110, 1000)] == \
        [True, False, False, True, False, True, False, True]


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.redis
def test_workers_share_their_counts_through_redis(fresh_app):
    """Two app instances (two gunicorn workers, or two hosts) with a Redis broker count together."""
    if not _redis_up():
        pytest.skip(f"Redis is not reachable at {REDIS}")
    prefix = f"enforce-test-{uuid.uuid4().hex[:12]}"
    config = {"BROKER_URL": REDIS, "LOGIN_LIMIT_PER_ADDRESS": "3 per minute", "RATELIMIT_KEY_PREFIX": prefix}
    first = fresh_app("limits", **config)
    second = testdb.make_app(first.config["DATABASE_URL"], Path(first.instance_path), **config)
    try:
        assert first.config["RATELIMIT_STORAGE_URI"] == REDIS
        here = _address()
        assert [_login(first.test_client(), f"n{i}", "wrong guess", here).status_code for i in range(2)] == [401] * 2
        assert _login(second.test_client(), "n3", "wrong guess", here).status_code == 401
        _throttled(_login(second.test_client(), "n4", "wrong guess", here))
        _throttled(_login(first.test_client(), "n5", "wrong guess", here))
        keys = redis.Redis.from_url(REDIS).keys(f"*{prefix}*")
        assert keys, "the counters are in Redis"
    finally:
        with second.app_context():
            db.engine.dispose()
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
