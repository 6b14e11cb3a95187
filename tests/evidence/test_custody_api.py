"""Staff API: scope, every access recorded, originals streamed, hand-overs signed by both sides."""
import base64
import datetime as dt
import hashlib
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.core.storage import get_store
from server.modules.audit.models import AuditEntry
from server.modules.evidence import operations as ops
from server.modules.evidence.models import (Blob, CustodyEvent, DeviceReconnect, EvidenceItem, EvidenceStatus,
                                            FixityAlert)
from tests import factories
from tests.evidence.helpers import device_auth, make_device, make_team, manifest, staff_auth
from tests.evidence.media import jpeg_bytes


@pytest.fixture()
def team(db_session):
    return make_team()


def _verified(db_session, team, data=None, **fields):
    data = data or jpeg_bytes((40, 30), color="white")
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(data)
        tmp.flush()
        get_store().put_file(digest, Path(tmp.name))
    if db_session.get(Blob, digest) is None:
        db_session.add(Blob(sha256=digest, size=len(data), media_type="image/jpeg"))
        db_session.flush()
    item = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                        manifest=manifest(team, data, **fields))
    db_session.commit()
    return item, data


def _actions(db_session, item):
    return [e.action.value for e in db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.item_id == item.id).order_by(CustodyEvent.seq))]


def test_team_member_lists_views_and_downloads_and_each_access_is_recorded(client, db_session, team):
    item, data = _verified(db_session, team)
    listed = client.get(f"/api/v1/evidence?inspection_id={team.inspection.id}", headers=staff_auth(team.member))
    assert listed.status_code == 200 and [i["id"] for i in listed.json] == [item.id]
    detail = client.get(f"/api/v1/evidence/{item.id}?purpose=review", headers=staff_auth(team.member))
    assert detail.status_code == 200, detail.json
    assert detail.json["status"] == "verified" and detail.json["signature_valid"] is True
    assert [e["action"] for e in detail.json["custody"]][:4] == ["captured", "announced", "received", "verified"]
    original = client.get(f"/api/v1/evidence/{item.id}/original", headers=staff_auth(team.member))
    assert original.status_code == 200 and original.data == data
    assert original.headers["ETag"] == f'"{item.sha256}"'
    # saved, never rendered on this origin: an attachment named with the type's extension (issue 14 #6)
    assert original.headers["Content-Disposition"] == f'attachment; filename="{item.sha256}.jpg"'
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    thumb = client.get(f"/api/v1/evidence/{item.id}/thumbnail", headers=staff_auth(team.member))
    assert thumb.status_code == 200 and thumb.data[:3] == b"\xff\xd8\xff"
    actions = _actions(db_session, item)
    assert "viewed" in actions and "downloaded" in actions
    tags = db_session.scalars(sa.select(AuditEntry.tag)).all()
    assert "evidence:item:viewed" in tags and "evidence:item:downloaded" in tags


def test_supervisor_and_legal_reviewer_see_it_outsiders_and_prosecutors_do_not(client, db_session, team):
    item, _ = _verified(db_session, team)
    reviewer = factories.UserFactory(role=Role.LEGAL_REVIEWER)
    prosecutor = factories.UserFactory(role=Role.PROSECUTOR)
    other_supervisor = factories.UserFactory(role=Role.SUPERVISOR)
    db_session.commit()
    for user, status in ((team.supervisor, 200), (reviewer, 200), (team.outsider, 403), (other_supervisor, 403)):
        response = client.get(f"/api/v1/evidence/{item.id}", headers=staff_auth(user))
        assert response.status_code == status, (user.role, response.json)
    refused = client.get(f"/api/v1/evidence/{item.id}/original", headers=staff_auth(team.outsider))
    assert refused.status_code == 403 and refused.json["code"] == "evidence.out_of_scope"
    assert client.get(f"/api/v1/evidence/{item.id}", headers=staff_auth(prosecutor)).status_code == 403


def test_handover_with_both_device_signatures(client, db_session, team):
    item, _ = _verified(db_session, team)
    receiver_device, receiver_key = make_device(team.member)
    db_session.commit()
    at = dt.datetime.now(dt.UTC).isoformat()
    statement = ops.handover_statement(item, from_user_id=team.lead.id, to_user_id=team.member.id,
                                       purpose="移交法制审核", location="商州大队证物室", physical_media="SD-0042", at=at)
    signatures = {"at": at, "from_device_id": team.device.id,
                  "from_signature": base64.b64encode(team.key.sign(statement)).decode(),
                  "to_device_id": receiver_device.id,
                  "to_signature": base64.b64encode(receiver_key.sign(statement)).decode()}
    body = {"to_user_id": team.member.id, "from_user_id": team.lead.id, "purpose": "移交法制审核",
            "location": "商州大队证物室", "physical_media": "SD-0042", "signatures": signatures}
    response = client.post(f"/api/v1/evidence/{item.id}/handovers", json=body, headers=staff_auth(team.lead))
    assert response.status_code == 201, response.json
    assert response.json["status"] == "confirmed"
    assert db_session.get(EvidenceItem, item.id).custodian_id == team.member.id
    forged = dict(body, signatures=dict(signatures, to_signature=signatures["from_signature"]))
    response = client.post(f"/api/v1/evidence/{item.id}/handovers", json=forged, headers=staff_auth(team.lead))
    assert response.status_code == 422 and response.json["code"] == "evidence.handover_invalid"


def test_handover_by_staff_confirmation_needs_the_receiver(client, db_session, team):
    item, _ = _verified(db_session, team)
    body = {"to_user_id": team.member.id, "purpose": "交接"}
    created = client.post(f"/api/v1/evidence/{item.id}/handovers", json=body, headers=staff_auth(team.lead))
    assert created.status_code == 201 and created.json["status"] == "pending"
    assert "handed_over" not in _actions(db_session, item)
    url = f"/api/v1/evidence/handovers/{created.json['id']}/confirm"
    assert client.post(url, headers=staff_auth(team.lead)).status_code == 403
    confirmed = client.post(url, headers=staff_auth(team.member))
    assert confirmed.status_code == 200 and confirmed.json["status"] == "confirmed"
    assert _actions(db_session, item)[-1] == "handed_over"


def test_custody_sequence_is_unique_per_item(db_session, team):
    item, _ = _verified(db_session, team)
    db_session.add(CustodyEvent(item_id=item.id, seq=1, action="viewed", actor_kind="user", detail={}))
    with pytest.raises(sa.exc.IntegrityError):
        db_session.flush()
    db_session.rollback()


def test_media_missing_lists_what_to_upload_in_order(client, db_session, team):
    _verified(db_session, team)
    have = db_session.scalars(sa.select(Blob.sha256)).first()
    video = manifest(team, b"v" * 100, kind="video", media_type="video/mp4")
    photo = manifest(team, b"p" * 10)
    for body in (video, photo):
        ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id, manifest=body)
    db_session.commit()
    response = client.post("/mobile/v1/media/missing", json={"hashes": [video["sha256"], have, photo["sha256"]]},
                           headers=device_auth(team.device))
    assert response.status_code == 200, response.json
    assert response.json["missing"] == [photo["sha256"], video["sha256"]]
    assert response.json["order"][-1] == "video"


def test_overdue_after_one_working_day_from_reconnect(client, db_session, team):
    body = manifest(team, b"never uploaded")
    item = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                        manifest=body)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    item.captured_at_device = long_ago - dt.timedelta(days=3)
    item.received_at = long_ago
    db_session.add(DeviceReconnect(device_id=team.device.id, at=long_ago, source="request"))
    db_session.commit()
    response = client.get("/api/v1/evidence/overdue", headers=staff_auth(team.supervisor))
    assert response.status_code == 200
    assert [row["item"]["id"] for row in response.json] == [item.id]
    assert client.get("/api/v1/evidence/overdue", headers=staff_auth(team.lead)).status_code == 403


def test_reconnect_after_silence_is_recorded(client, app, db_session, team):
    team.device.last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=app.config["RECONNECT_GAP_HOURS"] + 1)
    db_session.commit()
    client.post("/mobile/v1/media/missing", json={"hashes": []}, headers=device_auth(team.device))
    client.post("/mobile/v1/media/missing", json={"hashes": []}, headers=device_auth(team.device))
    rows = db_session.scalars(sa.select(DeviceReconnect).where(DeviceReconnect.device_id == team.device.id)).all()
    assert len(rows) == 1 and rows[0].gap_s > 0
    assert client.post("/mobile/v1/media/online", json={}, headers=device_auth(team.device)).status_code == 204


def test_fixity_detects_a_changed_and_a_missing_blob(db_session, team):
    item, _ = _verified(db_session, team)
    blob = db_session.get(Blob, item.sha256)
    assert ops.fixity_check(db_session, blob) is True
    path = get_store()._path(blob.sha256)  # noqa: SLF001 - simulate bit rot on disk
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert ops.fixity_check(db_session, blob) is False
    path.unlink()
    assert ops.fixity_check(db_session, blob) is False
    problems = db_session.scalars(sa.select(FixityAlert.problem).where(FixityAlert.sha256 == blob.sha256)).all()
    assert problems == ["mismatch", "missing"]
    db_session.commit()
    tags = db_session.scalars(sa.select(AuditEntry.tag).where(AuditEntry.tag == "system:evidence:fixity_failed")).all()
    assert len(tags) == 2


def test_deletion_only_after_retention_and_with_a_second_approver(client, app, db_session, team):
    item, _ = _verified(db_session, team, jpeg_bytes((41, 30)))
    admin = factories.UserFactory(role=Role.ADMIN)
    db_session.commit()
    created = client.post(f"/api/v1/evidence/{item.id}/deletion-requests", json={"reason": "保存期满"},
                          headers=staff_auth(team.supervisor))
    assert created.status_code == 201, created.json
    url = f"/api/v1/evidence/deletion-requests/{created.json['id']}/approve"
    early = client.post(url, headers=staff_auth(admin))
    assert early.status_code == 409 and early.json["code"] == "evidence.deletion_refused"
    request = ops.approve_deletion(db_session, created.json["id"], by=admin,
                                   today=ops.retention_until(item) + dt.timedelta(days=1))
    db_session.commit()
    assert request.approved_by == admin.id
    assert db_session.get(EvidenceItem, item.id).status is EvidenceStatus.DELETED
    assert _actions(db_session, item)[-1] == "deleted"
    assert not get_store().exists(item.sha256)


def test_periodic_tasks_are_in_the_beat_schedule_and_run(app, db_session, team):
    from server.modules.evidence import tasks

    schedule = app.extensions["celery"].conf.beat_schedule
    assert schedule["evidence-fixity"]["task"] == tasks.FIXITY
    assert schedule["evidence-expire-uploads"]["task"] == tasks.EXPIRE
    item, _ = _verified(db_session, team, jpeg_bytes((42, 30)))
    assert tasks.fixity_sweep.delay().get() >= 1
    assert db_session.get(Blob, item.sha256).fixity_ok is True
