"""Sync requests note the device's contact, which starts the 1-working-day upload clock after a
silence (DOMAIN-RULES rule 16), without a write per pull page."""
import datetime as dt

import pytest
import sqlalchemy as sa

from server.modules.devices.operations import issue_tokens
from server.modules.evidence.models import DeviceReconnect


def reconnects(db_session, device):
    return db_session.scalars(sa.select(DeviceReconnect).where(DeviceReconnect.device_id == device.id)
                              .order_by(DeviceReconnect.id)).all()


def silent_for(db_session, app, device, extra_hours=1):
    device.last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=app.config["RECONNECT_GAP_HOURS"] + extra_hours)
    db_session.commit()
    return device.last_seen_at


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/mobile/v1/sync/hello", {"client_time": "2026-05-01T08:00:00+08:00"}),
    ("GET", "/mobile/v1/sync/package", None),
    ("GET", "/mobile/v1/sync/changes", None),
    ("POST", "/mobile/v1/sync/push", {"ops": []}),
])
def test_every_sync_endpoint_notes_the_contact_after_a_silence(app, client, db_session, field, method, path, body):
    phone = field.phone_a
    before = silent_for(db_session, app, phone.device)
    response = client.open(path, method=method, json=body, headers=phone.headers)
    assert response.status_code == 200, response.json
    db_session.refresh(phone.device)
    assert phone.device.last_seen_at > before
    (row,) = reconnects(db_session, phone.device)
    assert row.source == "request" and row.gap_s >= app.config["RECONNECT_GAP_HOURS"] * 3600


def test_paging_through_changes_writes_the_contact_once(app, client, db_session, field):
    phone = field.phone_a
    client.post("/mobile/v1/sync/push", json={"ops": [phone.op("note", "append", {
        "id": f"00000000-0000-4000-8000-00000000000{n}", "inspection_id": field.inspection.id, "text": f"记录{n}"})
        for n in range(3)]}, headers=field.phone_b.headers)
    silent_for(db_session, app, phone.device)
    cursor, seen = None, []
    while True:
        page = client.get("/mobile/v1/sync/changes?limit=1" + (f"&cursor={cursor}" if cursor else ""),
                          headers=phone.headers).json
        db_session.refresh(phone.device)
        seen.append(phone.device.last_seen_at)
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert len(seen) >= 4 and len(set(seen)) == 1  # noted by the first page, untouched by the others
    assert len(reconnects(db_session, phone.device)) == 1


def test_a_token_refresh_is_the_first_contact_after_the_silence(app, client, db_session, field):
    phone = field.phone_a
    refresh_token = issue_tokens(db_session, phone.device)["refresh_token"]
    silent_for(db_session, app, phone.device, extra_hours=48)  # three days in the mountains
    refreshed = client.post("/mobile/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 200
    (row,) = reconnects(db_session, phone.device)
    assert row.gap_s >= (app.config["RECONNECT_GAP_HOURS"] + 48) * 3600
    headers = {"Authorization": f"Bearer {refreshed.json['access_token']}"}
    assert client.post("/mobile/v1/sync/push", json={"ops": []}, headers=headers).status_code == 200
    assert client.get("/mobile/v1/me", headers=headers).status_code == 200
    assert len(reconnects(db_session, phone.device)) == 1  # the sync that follows is the same contact
