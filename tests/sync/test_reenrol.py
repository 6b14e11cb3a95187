"""Issue 15 item 22: a device past its 14-day offline grace period is re-enrolled by a supervisor
(staff API, console, ``enforce devices reenrol``); it keeps its id and outbox, and what its old key
signed while valid still verifies."""
import base64
import datetime as dt

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.core.access import Role
from server.modules.audit.models import AuditEntry
from server.modules.auth.operations import staff_token
from server.modules.devices.models import DeviceRefreshToken
from server.modules.devices.operations import issue_tokens
from tests import factories
from tests.sync.test_evidence_bridge import capture, push


def _expire_grace(db_session, phone):
    refresh = issue_tokens(db_session, phone.device)["refresh_token"]
    db_session.execute(sa.update(DeviceRefreshToken).where(DeviceRefreshToken.device_id == phone.device.id)
                       .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    db_session.commit()
    return refresh


def _b64(key):
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def test_a_supervisor_re_enrols_a_device_past_its_grace_and_old_signatures_stay_valid(client, db_session, field):
    phone = field.phone_a
    old_key = phone.key
    captured_offline = capture(field, b"photo taken on day 13",
                               captured_at=(dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat())
    refresh = _expire_grace(db_session, phone)
    refused = client.post("/mobile/v1/auth/refresh", json={"refresh_token": refresh})
    assert refused.status_code == 401 and refused.json["code"] == "device.refresh_invalid"
    again = client.post("/mobile/v1/devices", json={"public_key": _b64(old_key), "label": "同一部手机"},
                        headers={"Authorization": f"Bearer {staff_token(field.a)['access_token']}"})
    assert again.status_code == 409 and again.json["code"] == "device.key_taken"

    # another unit's supervisor cannot; the device's own inspector cannot
    stranger = factories.UserFactory(role=Role.SUPERVISOR)
    for user in (stranger, field.a):
        other = client.post(f"/api/v1/devices/{phone.device.id}/reenrol", json={"reason": "越权"},
                            headers={"Authorization": f"Bearer {staff_token(user)['access_token']}"})
        assert other.status_code in (403, 404), other.json

    new_key = Ed25519PrivateKey.generate()
    enrolled = client.post(f"/api/v1/devices/{phone.device.id}/reenrol", headers=field.staff,
                           json={"reason": "超过离线宽限期，本人持机到队部重新登记", "public_key": _b64(new_key)})
    assert enrolled.status_code == 201, enrolled.json
    assert enrolled.json["device_id"] == phone.device.id and enrolled.json["key_changed"] is True
    tokens = client.post("/mobile/v1/auth/refresh", json={"refresh_token": enrolled.json["enrolment_token"]})
    assert tokens.status_code == 200, tokens.json
    phone.headers = {"Authorization": f"Bearer {tokens.json['access_token']}"}

    # the outbox goes on: the manifest signed offline with the old key is accepted ...
    assert push(client, phone, phone.op("media_manifest", "append", captured_offline))["results"][0][
        "status"] == "applied"
    # ... a manifest the old key signs for a capture after the re-enrolment is not ...
    late = capture(field, b"after", key=old_key,
                   captured_at=(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat())
    result = push(client, phone, phone.op("media_manifest", "append", late))["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "device.signature_invalid"
    # ... and the new key signs from now on
    fresh = capture(field, b"new key", key=new_key)
    assert push(client, phone, phone.op("media_manifest", "append", fresh))["results"][0]["status"] == "applied"
    entry = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.tag == "admin:device:reenrolled")).one()
    assert entry.body
    # the enrolment token is single-use, like any refresh token: presented again it is taken for a
    # stolen copy, and every token of the device ends, the access token in use included
    reused = client.post("/mobile/v1/auth/refresh", json={"refresh_token": enrolled.json["enrolment_token"]})
    assert reused.status_code == 401
    assert client.post("/mobile/v1/sync/hello", json={}, headers=phone.headers).status_code == 401


def test_re_enrolment_keeps_the_key_by_default_and_works_from_the_cli(app, client, db_session, field):
    phone = field.phone_b
    _expire_grace(db_session, phone)
    from server.modules.devices.cli import devices_cli

    result = app.test_cli_runner().invoke(devices_cli, ["reenrol", phone.device.id, "--reason", "宽限期已过",
                                                        "--by", field.supervisor.username])
    assert result.exit_code == 0, result.output
    token = result.output.strip().rsplit(" ", 1)[-1]
    tokens = client.post("/mobile/v1/auth/refresh", json={"refresh_token": token})
    assert tokens.status_code == 200, tokens.json
    phone.headers = {"Authorization": f"Bearer {tokens.json['access_token']}"}
    body = capture(field, b"same key", key=phone.key)
    body["inspection_id"] = field.inspection.id
    assert push(client, phone, phone.op("media_manifest", "append", body))["results"][0]["status"] == "applied"
