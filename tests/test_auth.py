"""Staff sign-in: bearer tokens, lockout, logout, deactivation and expiry."""
from __future__ import annotations

import json

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from server.core.access import Role
from server.extensions import db
from server.modules.users.models import User
from tests import factories
from tests.helpers import assert_contract, audit_entries, bearer, login, staff_headers


def test_login_gives_a_working_bearer_token(client, db_session):
    user = factories.inspector()
    response = client.post("/api/v1/auth/login", json={"username": user.username, "password": factories.PASSWORD})
    assert response.status_code == 200
    assert response.json["token_type"] == "Bearer"
    assert response.json["expires_in"] == client.application.config["STAFF_TOKEN_TTL_S"]
    me = client.get("/api/v1/auth/me", headers=bearer(response.json["access_token"]))
    assert me.status_code == 200
    assert me.json == {"kind": "user", "role": "inspector", "user_id": user.id, "username": user.username,
                       "unit_id": user.unit_id, "region_code": user.region_code, "device_id": None}
    assert [e["subjects"] for e in audit_entries("web:login:succeeded")] == [[f"user:{user.id}"]]


def _same_answer(one, other) -> None:
    """Two refusals a client cannot tell apart: status, headers that matter, body but its request id."""
    assert (one.status_code, one.mimetype) == (other.status_code, other.mimetype)
    first, second = dict(one.json), dict(other.json)
    first.pop("request_id"), second.pop("request_id")
    assert first == second


def test_wrong_password_and_unknown_user_look_the_same(client, db_session):
    user = factories.inspector()
    address = {"REMOTE_ADDR": "198.51.100.14"}  # its own address: unknown names are counted per address
    wrong = client.post("/api/v1/auth/login", json={"username": user.username, "password": "not it"},
                        environ_base=address)
    unknown = client.post("/api/v1/auth/login", json={"username": "nobody.here", "password": "not it"},
                          environ_base=address)
    assert_contract(wrong, 401, "auth.invalid_credentials")
    _same_answer(wrong, unknown)
    assert "token" not in wrong.get_data(as_text=True)
    assert [e["subjects"] for e in audit_entries("web:login:failed")] == [[f"user:{user.id}"]]
    # the unknown name is counted, not written down (issue 14 #7)
    counted = audit_entries("web:login:unknown_names")
    assert [e["payload"]["failures_in_window"] for e in counted] == [1]
    assert counted[0]["payload"]["remote_addr"] == "198.51.100.14"
    assert "nobody.here" not in json.dumps(counted)


def test_an_account_without_a_password_cannot_log_in(client, db_session):
    user = factories.UserFactory(password_hash=None)
    response = client.post("/api/v1/auth/login", json={"username": user.username, "password": ""})
    assert_contract(response, 422, "request.validation_failed")
    response = client.post("/api/v1/auth/login", json={"username": user.username, "password": "anything"})
    assert_contract(response, 401, "auth.invalid_credentials")


def test_lockout_after_max_failures_and_the_count_survives_the_failed_requests(fresh_app):
    """Each failed login is committed although its request fails (a real commit, on its own database)."""
    app = fresh_app("lockout", LOGIN_MAX_FAILURES=3, LOGIN_LOCK_MINUTES=15)
    with app.app_context():
        user = factories.inspector()
        db.session.commit()
        username, user_id = user.username, user.id
    client = app.test_client()

    for attempt in (1, 2):
        assert_contract(client.post("/api/v1/auth/login", json={"username": username, "password": "wrong"}),
                        401, "auth.invalid_credentials")
        with app.app_context():
            assert db.session.get(User, user_id).failed_logins == attempt
    # The third failure locks the account; from then on even the right password is refused.
    assert_contract(client.post("/api/v1/auth/login", json={"username": username, "password": "wrong"}),
                    401, "auth.invalid_credentials")
    # Locked, the right password gets the answer an unknown name gets: nothing tells that the account
    # exists, nor that it is locked (issue 14 #7).
    locked = client.post("/api/v1/auth/login", json={"username": username, "password": factories.PASSWORD})
    unknown = client.post("/api/v1/auth/login", json={"username": "no.such.person", "password": factories.PASSWORD})
    assert_contract(locked, 401, "auth.invalid_credentials")
    _same_answer(locked, unknown)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.locked_until is not None
        assert [e["payload"]["failed_logins"] for e in audit_entries("web:login:failed", user=user_id)] == [1, 2, 3]
        assert len(audit_entries("web:login:refused_locked", user=user_id)) == 1
        # Once the lock has passed, the right password works and the counters are cleared.
        user.locked_until = user.locked_until.replace(year=2000)
        db.session.commit()
    assert login(client, username)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert (user.failed_logins, user.locked_until) == (0, None)


def test_logout_invalidates_every_token_of_the_user(client, db_session):
    user = factories.inspector()
    first, second = login(client, user.username), login(client, user.username)
    assert client.post("/api/v1/auth/logout", headers=bearer(first)).status_code == 204
    for token in (first, second):
        assert_contract(client.get("/api/v1/auth/me", headers=bearer(token)), 401, "auth.token_invalid")
    assert audit_entries("web:login:logged_out", user=user.id)
    assert client.get("/api/v1/auth/me", headers=bearer(login(client, user.username))).status_code == 200


def test_deactivated_users_token_stops_at_once(client, db_session):
    admin = factories.UserFactory(role=Role.ADMIN)
    user = factories.inspector()
    token = login(client, user.username)
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    response = client.patch(f"/api/v1/users/{user.id}", json={"active": False}, headers=staff_headers(admin))
    assert response.status_code == 200 and response.json["active"] is False
    assert_contract(client.get("/api/v1/auth/me", headers=bearer(token)), 401, "auth.token_invalid")
    # and no new token can be had with the password
    response = client.post("/api/v1/auth/login", json={"username": user.username, "password": factories.PASSWORD})
    assert_contract(response, 403, "auth.account_inactive")


def test_password_reset_logs_out_other_sessions(client, db_session):
    admin = factories.UserFactory(role=Role.ADMIN)
    user = factories.inspector()
    token = login(client, user.username)
    response = client.patch(f"/api/v1/users/{user.id}", json={"password": "A brand-new secret"},
                            headers=staff_headers(admin))
    assert response.status_code == 200
    assert_contract(client.get("/api/v1/auth/me", headers=bearer(token)), 401, "auth.token_invalid")
    assert login(client, user.username, "A brand-new secret")
    updated = audit_entries("admin:user:updated", user=user.id)[-1]["payload"]
    assert updated == {"before": {"password": "***"}, "after": {"password": "***"}}


def _aged_token(app, claims: dict, age_s: int) -> str:
    class Aged(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - age_s

    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="qinling-field.bearer", signer=Aged).dumps(claims)


@pytest.mark.parametrize("age_s, ok", [(0, True), (3600, True), (12 * 3600 - 30, True), (12 * 3600 + 30, False)])
def test_staff_token_expires_after_its_ttl(app, client, db_session, age_s, ok):
    assert app.config["STAFF_TOKEN_TTL_S"] == 12 * 3600
    user = factories.inspector()
    token = _aged_token(app, {"k": "s", "u": user.id, "g": user.token_generation}, age_s)
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    if ok:
        assert response.status_code == 200
    else:
        assert_contract(response, 401, "auth.token_expired")


def test_staff_token_ttl_comes_from_configuration(fresh_app):
    app = fresh_app("ttl", STAFF_TOKEN_TTL_S=1)
    with app.app_context():
        user = factories.inspector()
        db.session.commit()
        young = _aged_token(app, {"k": "s", "u": user.id, "g": user.token_generation}, 0)
        old = _aged_token(app, {"k": "s", "u": user.id, "g": user.token_generation}, 5)
    client = app.test_client()
    assert client.get("/api/v1/auth/me", headers=bearer(young)).status_code == 200
    assert_contract(client.get("/api/v1/auth/me", headers=bearer(old)), 401, "auth.token_expired")


def test_token_of_a_deleted_or_unknown_user_is_invalid(app, client, db_session):
    token = _aged_token(app, {"k": "s", "u": 10**9, "g": 1}, 0)
    assert_contract(client.get("/api/v1/auth/me", headers=bearer(token)), 401, "auth.token_invalid")
    token = _aged_token(app, {"k": "x", "u": 1}, 0)
    assert_contract(client.get("/api/v1/auth/me", headers=bearer(token)), 401, "auth.token_invalid")
    token = _aged_token(app, ["not", "a", "dict"], 0)  # type: ignore[arg-type]
    assert_contract(client.get("/api/v1/auth/me", headers=bearer(token)), 401, "auth.token_invalid")


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_parallel_wrong_passwords_each_count(fresh_app):
    """Guessing in parallel must not slip past the lockout: each failure is counted in SQL."""
    import threading
    import time

    import sqlalchemy as sa

    from tests.db import postgres_url

    if postgres_url() is None:
        pytest.skip("needs PostgreSQL (ENFORCE_DATABASE_URL), as in .ci/run")
    app = fresh_app("login_race", LOGIN_MAX_FAILURES=10)
    with app.app_context():
        user = factories.inspector()
        db.session.commit()
        username, user_id, engine = user.username, user.id, db.engine

    def guess() -> None:
        app.test_client().post("/api/v1/auth/login", json={"username": username, "password": "guess"})

    with engine.connect() as holder:  # every guess reads the row, then waits to write it
        holder.execute(sa.text("SELECT 1 FROM user_account WHERE id = :id FOR UPDATE"), {"id": user_id})
        threads = [threading.Thread(target=guess) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with engine.connect() as probe:
                waiting = probe.scalar(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))
            if waiting == 3:
                break
            time.sleep(0.05)
        holder.rollback()
    for thread in threads:
        thread.join(timeout=20)
    with app.app_context():
        assert db.session.get(User, user_id).failed_logins == 3
