"""Devices: registration with an Ed25519 key, device tokens, refresh rotation, revocation of a lost phone."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.core.db import utcnow
from server.extensions import db
from server.modules.devices.models import Device, DeviceRefreshToken
from tests import factories
from tests.helpers import assert_contract, audit_entries, bearer, login, staff_headers


def register(client, user, public_key: str | None = None, **extra):
    public_key = public_key or factories.device_key()[1]
    body = {"public_key": public_key, "label": "执法平板", "platform": "android", "app_version": "1.0.0", **extra}
    return client.post("/mobile/v1/devices", json=body, headers=bearer(login(client, user.username)))


@pytest.fixture()
def inspector(db_session):
    return factories.inspector()


@pytest.fixture()
def registered(client, inspector):
    response = register(client, inspector)
    assert response.status_code == 201, response.json
    return response.json


def test_registration_returns_access_and_refresh_tokens(client, inspector):
    _, key = factories.device_key()
    response = register(client, inspector, key)
    assert response.status_code == 201
    tokens = response.json
    assert tokens["token_type"] == "Bearer"
    assert tokens["access_token"] and tokens["refresh_token"]
    assert tokens["expires_in"] == client.application.config["DEVICE_TOKEN_TTL_S"]
    expires = dt.datetime.fromisoformat(tokens["refresh_expires_at"])
    grace = dt.timedelta(days=client.application.config["DEVICE_OFFLINE_GRACE_DAYS"])
    assert abs(expires - (utcnow() + grace)) < dt.timedelta(minutes=1)

    device = db.session.get(Device, tokens["device_id"])
    assert device.user_id == inspector.id and device.public_key == base64.b64decode(key)
    # Only the hash of the refresh token is stored.
    stored = db.session.scalars(sa.select(DeviceRefreshToken.token_hash)
                                .where(DeviceRefreshToken.device_id == device.id)).all()
    assert len(stored) == 1 and tokens["refresh_token"] not in stored[0]
    [entry] = audit_entries("mobile:device:registered", device=device.id)
    assert entry["payload"]["public_key"] == key


def test_device_me_with_the_device_token(client, inspector, registered):
    response = client.get("/mobile/v1/me", headers=bearer(registered["access_token"]))
    assert response.status_code == 200
    me = response.json
    assert me["device"]["id"] == registered["device_id"]
    assert me["user_id"] == inspector.id and me["role"] == "inspector"
    assert me["certified_today"] is True and len(me["certificates"]) == 1
    assert me["device"]["last_seen_at"] is not None
    # The device token is a device principal on /auth/me too.
    who = client.get("/api/v1/auth/me", headers=bearer(registered["access_token"])).json
    assert (who["kind"], who["device_id"], who["user_id"]) == ("device", registered["device_id"], inspector.id)


def test_a_staff_token_is_not_a_device_token(client, inspector):
    assert_contract(client.get("/mobile/v1/me", headers=bearer(login(client, inspector.username))),
                    403, "auth.forbidden")


def test_refresh_rotates_and_the_old_refresh_token_is_refused(client, registered):
    first = registered["refresh_token"]
    response = client.post("/mobile/v1/auth/refresh", json={"refresh_token": first})
    assert response.status_code == 200
    second = response.json
    assert second["refresh_token"] != first and second["device_id"] == registered["device_id"]
    assert client.get("/mobile/v1/me", headers=bearer(second["access_token"])).status_code == 200

    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": first}),
                    401, "device.refresh_invalid")


def test_reusing_a_refresh_token_ends_the_access_tokens_already_issued(client, registered):
    """Issue 14 item 9: whoever holds a copy of a spent refresh token may also hold the access tokens
    issued with it; reuse ends those at their next request, not an hour later."""
    first = registered["refresh_token"]
    rotated = client.post("/mobile/v1/auth/refresh", json={"refresh_token": first}).json
    tokens = [registered["access_token"], rotated["access_token"]]
    for token in tokens:
        assert client.get("/mobile/v1/me", headers=bearer(token)).status_code == 200
    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": first}),
                    401, "device.refresh_invalid")
    for token in tokens:
        assert_contract(client.get("/mobile/v1/me", headers=bearer(token)), 401, "auth.token_invalid")
    device = db.session.get(Device, registered["device_id"])
    assert device.revoked_at is None and device.token_generation == 2  # the device itself is not revoked
    assert audit_entries("mobile:device:refresh_reused", device=device.id)


def test_reusing_a_refresh_token_revokes_the_whole_family(client, registered):
    """A used refresh token presented again may have been stolen: its successor stops working too."""
    first = registered["refresh_token"]
    second = client.post("/mobile/v1/auth/refresh", json={"refresh_token": first}).json["refresh_token"]
    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": first}),
                    401, "device.refresh_invalid")
    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": second}),
                    401, "device.refresh_invalid")
    assert audit_entries("mobile:device:refresh_reused", device=registered["device_id"])
    # The device itself is not revoked: the inspector signs in again and registers nothing new.
    assert db.session.get(Device, registered["device_id"]).revoked_at is None


def test_refresh_after_the_offline_grace_period_is_refused(client, registered):
    db.session.execute(sa.update(DeviceRefreshToken)
                       .where(DeviceRefreshToken.device_id == registered["device_id"])
                       .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]}),
                    401, "device.refresh_invalid")


def test_unknown_refresh_token_is_refused(client, db_session):
    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": "x" * 43}),
                    401, "device.refresh_invalid")


@pytest.mark.parametrize("revoker", ["supervisor", "admin", "owner"])
def test_revocation_cuts_the_device_off_at_the_next_request(client, inspector, registered, revoker):
    if revoker == "owner":
        by = inspector
    else:
        by = factories.UserFactory(role=Role(revoker), unit=inspector.unit)
    device_headers = bearer(registered["access_token"])
    assert client.get("/mobile/v1/me", headers=device_headers).status_code == 200

    response = client.post(f"/api/v1/devices/{registered['device_id']}/revoke", json={"reason": "手机遗失"},
                           headers=staff_headers(by))
    assert response.status_code == 200
    assert response.json["revoked_at"] and response.json["revoked_reason"] == "手机遗失"

    assert_contract(client.get("/mobile/v1/me", headers=device_headers), 401, "device.revoked")
    assert_contract(client.post("/mobile/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]}),
                    401, "device.revoked")
    [entry] = audit_entries("admin:device:revoked", device=registered["device_id"])
    assert entry["actor"] == {"kind": "user", "id": str(by.id)}
    # Revoking again is harmless and writes nothing new.
    again = client.post(f"/api/v1/devices/{registered['device_id']}/revoke", json={"reason": "再次注销"},
                        headers=staff_headers(by))
    assert again.status_code == 200 and again.json["revoked_reason"] == "手机遗失"
    assert len(audit_entries("admin:device:revoked", device=registered["device_id"])) == 1


def test_supervisor_of_another_unit_cannot_revoke(client, registered):
    stranger = factories.UserFactory(role=Role.SUPERVISOR)
    body = assert_contract(client.post(f"/api/v1/devices/{registered['device_id']}/revoke",
                                       json={"reason": "不是我的"}, headers=staff_headers(stranger)),
                           403, "auth.forbidden")
    assert body["detail"] == "device outside your unit"
    colleague = factories.inspector(unit=db.session.get(Device, registered["device_id"]).user.unit)
    assert_contract(client.post(f"/api/v1/devices/{registered['device_id']}/revoke",
                                json={"reason": "同事的"}, headers=staff_headers(colleague)),
                    403, "auth.forbidden")
    assert client.get("/mobile/v1/me", headers=bearer(registered["access_token"])).status_code == 200


def test_revoking_an_unknown_device_is_404(client, db_session):
    admin = factories.UserFactory(role=Role.ADMIN)
    assert_contract(client.post("/api/v1/devices/no-such-device/revoke", json={"reason": "遗失"},
                                headers=staff_headers(admin)), 404, "device.not_found")


@pytest.mark.parametrize("public_key", [
    "this is not base64!",
    base64.b64encode(b"\x01" * 16).decode(),  # too short
    base64.b64encode(b"\x01" * 33).decode(),  # too long
    "",
    "公钥",
])
def test_bad_keys_are_422(client, inspector, public_key):
    body = assert_contract(_register_raw(client, inspector, public_key), 422, "device.key_invalid")
    assert "public_key" in body["fields"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 0


def _register_raw(client, user, public_key: str):
    return client.post("/mobile/v1/devices", json={"public_key": public_key, "label": "平板"},
                       headers=bearer(login(client, user.username)))


def test_duplicate_key_is_409(client, inspector):
    _, key = factories.device_key()
    assert register(client, inspector, key).status_code == 201
    other = factories.inspector()
    assert_contract(register(client, other, key), 409, "device.key_taken")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 1


def test_only_field_staff_register_devices(client, db_session):
    reviewer = factories.UserFactory(role=Role.LEGAL_REVIEWER)
    assert_contract(register(client, reviewer), 403, "auth.forbidden")
    auxiliary = factories.UserFactory(role=Role.AUXILIARY)
    assert register(client, auxiliary).status_code == 201


def test_device_of_a_deactivated_user_stops(client, inspector, registered):
    admin = factories.UserFactory(role=Role.ADMIN)
    assert client.patch(f"/api/v1/users/{inspector.id}", json={"active": False},
                        headers=staff_headers(admin)).status_code == 200
    assert_contract(client.get("/mobile/v1/me", headers=bearer(registered["access_token"])),
                    403, "auth.account_inactive")


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_two_concurrent_exchanges_of_one_refresh_token_let_only_one_win(fresh_app):
    """Both requests read the token as unused; the row lock held here makes both reach the update,
    then only one may rotate it (PostgreSQL: real concurrency on one row)."""
    import threading
    import time

    from tests.db import postgres_url

    if postgres_url() is None:
        pytest.skip("needs PostgreSQL (ENFORCE_DATABASE_URL), as in .ci/run")
    app = fresh_app("refresh_race")
    with app.app_context():
        user = factories.inspector()
        device = factories.DeviceFactory(user=user)
        db.session.commit()
        from server.modules.devices.operations import issue_tokens

        token = str(issue_tokens(db.session, device)["refresh_token"])
        db.session.commit()
        engine = db.engine

    results: list[int] = []

    def exchange() -> None:
        response = app.test_client().post("/mobile/v1/auth/refresh", json={"refresh_token": token})
        results.append(response.status_code)

    with engine.connect() as holder:
        holder.execute(sa.text("SELECT 1 FROM device_refresh_token FOR UPDATE"))
        threads = [threading.Thread(target=exchange) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until both requests are blocked on the row
            with engine.connect() as probe:
                waiting = probe.scalar(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))
            if waiting == 2:
                break
            time.sleep(0.05)
        holder.rollback()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results) == [200, 401]


def test_a_deactivated_inspectors_device_cannot_refresh(client, db_session):
    from server.modules.devices import operations as device_ops

    user = factories.inspector()
    device = factories.DeviceFactory(user=user)
    issued = device_ops.issue_tokens(db_session, device)
    user.active = False
    db_session.commit()
    response = client.post("/mobile/v1/auth/refresh", json={"refresh_token": issued["refresh_token"]})
    assert response.status_code == 403
    assert response.json["code"] == "auth.account_inactive"
