"""A media manifest pushed through sync is the evidence item's announcement: one signed form for
the sync operation and the direct announce, one item per capture, replays are duplicates."""
import base64
import datetime as dt
import hashlib
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.core.canonical import canonical_json
from server.core.storage import get_store
from server.modules.audit.models import AuditEntry, AuditSubject
from server.modules.evidence import operations as evidence
from server.modules.evidence.models import Blob, CustodyEvent, EvidenceFlag, EvidenceItem, EvidenceStatus
from server.modules.sync.models import MediaManifest
from tests.evidence.media import jpeg_bytes


def signed(key, body):
    return {**body, "signature": base64.b64encode(key.sign(canonical_json(body))).decode()}


def capture(field, data=b"photo bytes", *, key=None, **extra):
    """The one signed form: every field but ``signature`` is signed."""
    body = {"id": str(uuid.uuid4()), "inspection_id": field.inspection.id, "kind": "photo",
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "media_type": "image/jpeg",
            "captured_at": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(),
            "lat": 33.87, "lon": 109.94, "accuracy_m": 6.5, "second_inspector_id": field.b.id, "step": "on_site",
            **extra}
    return signed(key or field.phone_a.key, body)


def push(client, phone, *ops):
    response = client.post("/mobile/v1/sync/push", json={"ops": list(ops)}, headers=phone.headers)
    assert response.status_code == 200, response.json
    return response.json


def count(db_session, model):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def chain(db_session, item_id):
    return [(e.seq, e.action.value, e.actor_kind) for e in db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.item_id == item_id).order_by(CustodyEvent.seq))]


def tags_about(db_session, item_id):
    return sorted(db_session.scalars(sa.select(AuditEntry.tag).join(
        AuditSubject, AuditSubject.entry_idx == AuditEntry.idx).where(
        AuditSubject.subject_type == "evidence", AuditSubject.subject_id == item_id)))


def test_pushed_manifest_announces_the_evidence_item_as_the_direct_path_does(client, db_session, field):
    body = capture(field)
    result = push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))["results"][0]
    assert result["status"] == "applied" and result["id"] == body["id"]
    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    assert item.status is EvidenceStatus.ANNOUNCED and item.signature_valid
    assert (item.device_id, item.captured_by, item.second_inspector_id) == (field.phone_a.device.id, field.a.id,
                                                                             field.b.id)
    assert item.certificate_number and item.inspection_id == field.inspection.id
    assert (item.lat, item.accuracy_m, item.step) == (33.87, 6.5, "on_site")
    assert item.manifest == {k: v for k, v in body.items() if k != "signature"}
    assert [f.code for f in item.flags] == []
    assert db_session.get(MediaManifest, body["id"]).sha256 == item.sha256  # the team's view of it

    direct = evidence.announce(db_session, device=field.phone_a.device, user=field.a,
                               inspection_id=field.inspection.id, manifest=capture(field, b"another photo"))
    db_session.commit()
    assert chain(db_session, item.id) == chain(db_session, direct.id) == [(1, "captured", "device"),
                                                                           (2, "announced", "device")]
    assert tags_about(db_session, item.id) == tags_about(db_session, direct.id) == [
        "evidence:item:announced", "evidence:item:captured"]
    sync_tags = db_session.scalars(sa.select(AuditEntry.tag).where(AuditEntry.tag.like("sync:media_manifest:%")))
    assert list(sync_tags) == ["sync:media_manifest:appended"]


def test_replays_are_duplicates_and_a_reused_capture_id_is_a_conflict(client, db_session, field):
    phone = field.phone_a
    body = capture(field)
    first = phone.op("media_manifest", "append", body)
    applied = push(client, phone, first)["results"][0]
    replay = push(client, phone, first)  # the response was lost: the same operation again
    assert replay["replayed"] == 1 and replay["results"][0] == applied
    again = push(client, phone, phone.op("media_manifest", "append", dict(body)))["results"][0]
    assert again["status"] == "duplicate" and again["id"] == body["id"]

    other_bytes = capture(field, b"other bytes", id=body["id"])
    moved = capture(field, id=body["id"], sha256=body["sha256"], captured_at=body["captured_at"], lat=33.9)
    for reused in (other_bytes, moved):
        result = push(client, phone, phone.op("media_manifest", "append", reused))["results"][0]
        assert result["status"] == "rejected" and result["error"]["code"] == "evidence.client_id_conflict"
    # the teammate cannot announce the same capture id either, even with the same content re-signed
    theirs = signed(field.phone_b.key, {k: v for k, v in body.items() if k != "signature"})
    result = push(client, field.phone_b, field.phone_b.op("media_manifest", "append", theirs))["results"][0]
    assert result["error"]["code"] == "evidence.client_id_conflict"
    # two operations of one batch carrying the same id: the second is a duplicate or a conflict
    twin = capture(field, b"twin")
    results = push(client, phone, phone.op("media_manifest", "append", twin),
                   phone.op("media_manifest", "append", dict(twin)),
                   phone.op("media_manifest", "append", capture(field, b"twin?", id=twin["id"])))["results"]
    assert [r["status"] for r in results] == ["applied", "duplicate", "rejected"]
    assert count(db_session, EvidenceItem) == count(db_session, MediaManifest) == 2
    assert count(db_session, CustodyEvent) == 4


def test_a_manifest_whose_signature_does_not_verify_is_refused_and_leaves_nothing(client, db_session, field):
    phone = field.phone_a
    stranger = Ed25519PrivateKey.generate()
    old_form = capture(field)  # signed over the seven fields of the old sync form only
    old_form["signature"] = base64.b64encode(phone.key.sign(canonical_json({k: old_form[k] for k in (
        "id", "inspection_id", "kind", "sha256", "size", "media_type", "captured_at")}))).decode()
    unsigned = capture(field)
    del unsigned["signature"]
    cases = [(capture(field, key=stranger), "device.signature_invalid"),
             (old_form, "device.signature_invalid"),
             ({**capture(field), "signature": "not base64!"}, "device.signature_invalid"),
             (unsigned, "evidence.manifest_invalid"),
             (capture(field, sha256="ABC"), "evidence.manifest_invalid"),
             (capture(field, id="photo-1"), "evidence.manifest_invalid"),
             (capture(field, step="x" * 61), "evidence.manifest_invalid"),
             (capture(field, device_id=field.phone_b.device.id), "evidence.device_mismatch")]
    results = push(client, phone, *(phone.op("media_manifest", "append", body) for body, _ in cases))["results"]
    assert [(r["status"], r["error"]["code"]) for r in results] == [("rejected", code) for _, code in cases]
    assert count(db_session, EvidenceItem) == count(db_session, MediaManifest) == count(db_session, CustodyEvent) == 0


def test_bytes_that_arrived_first_verify_the_item_at_once(client, db_session, field):
    data = jpeg_bytes((48, 32), color="red")
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile() as tmp:
        Path(tmp.name).write_bytes(data)
        get_store().put_file(digest, Path(tmp.name))
    db_session.add(Blob(sha256=digest, size=len(data), media_type="image/jpeg"))
    db_session.commit()
    bodies = [capture(field, data), capture(field, b"not here yet")]
    push(client, field.phone_a, *(field.phone_a.op("media_manifest", "append", b) for b in bodies))
    here, later = (db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == b["id"])).one()
                   for b in bodies)
    assert here.status is EvidenceStatus.VERIFIED and here.blob_sha256 == digest
    assert [a for _, a, _ in chain(db_session, here.id)][:4] == ["captured", "announced", "received", "verified"]
    assert later.status is EvidenceStatus.ANNOUNCED


def test_the_direct_announce_and_the_sync_push_of_one_manifest_make_one_item(client, db_session, field):
    body = capture(field, second_inspector_id=None)
    del body["second_inspector_id"]
    body = signed(field.phone_a.key, {k: v for k, v in body.items() if k != "signature"})
    item = evidence.announce(db_session, device=field.phone_a.device, user=field.a,
                             inspection_id=field.inspection.id, manifest=body)
    db_session.commit()
    result = push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))["results"][0]
    assert result["status"] == "duplicate"
    assert evidence.announce(db_session, device=field.phone_a.device, user=field.a,
                             inspection_id=field.inspection.id, manifest=dict(body)).id == item.id
    assert count(db_session, EvidenceItem) == 1
    # no second inspector named: flagged for reviewers (行政处罚法 第42条), not refused
    assert db_session.scalars(sa.select(EvidenceFlag.code).where(EvidenceFlag.item_id == item.id)).all() == [
        "second_inspector_missing"]
