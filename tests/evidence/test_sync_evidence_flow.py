"""From the device to the court file over real HTTP: the reference sync client pushes a signed
capture manifest, tuspy uploads the bytes days later, the evidence item is verified with its chain
of custody starting on the device, and a transfer package holding it verifies offline."""
from __future__ import annotations

import hashlib
import io
import shutil

import sqlalchemy as sa
from tusclient import client as tus_client

from server.extensions import db
from server.modules.cases import operations as cases
from server.modules.cases.models import CaseEvidence
from server.modules.evidence.models import CustodyEvent, EvidenceItem, EvidenceStatus
from server.modules.inspections.models import Inspection
from server.modules.transfers import package as package_ops
from server.modules.transfers import verify as package_verify
from server.modules.users.models import User
from sync.client import HttpTransport, SyncClient
from tests.evidence.media import photo_with_exif


def test_synced_manifest_then_tus_bytes_become_verified_evidence_in_a_verifying_package(live, tmp_path):
    app, base, values = live
    team = values["team"]
    token = values["auth"]["Authorization"].split()[1]
    phone = SyncClient(str(tmp_path / "phone.db"), HttpTransport(base), token, values["device_id"],
                       private_key=team.key.private_bytes_raw(), sleep=lambda s: None)
    data = photo_with_exif("2026:08:04 10:00:00", 33.87, 109.94, size=(320, 240))
    digest = hashlib.sha256(data).hexdigest()

    # In the mountains: the photo is hashed and signed at capture; the manifest is synced first.
    phone.full_resync()
    op = phone.manifest(values["inspection_id"], kind="photo", sha256=digest, size=len(data),
                        media_type="image/jpeg", lat=33.87, lon=109.94, accuracy_m=5.0,
                        second_inspector_id=values["member_id"], step="on_site", app_version="1.4.2")
    phone.sync()
    assert phone.results()[op["op_id"]]["status"] == "applied"
    phone.db.execute("UPDATE outbox SET state = 'pending', result = NULL")  # every response was lost
    phone.push()
    assert phone.results()[op["op_id"]]["status"] == "applied"  # the first result, again
    capture_id = op["data"]["id"]
    with app.app_context():
        item = db.session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == capture_id)).one()
        assert item.status is EvidenceStatus.ANNOUNCED and item.signature_valid
        item_id = item.id
        db.session.remove()

    # Back in signal: the bytes by tus, in chunks with checksums.
    uploader = tus_client.TusClient(f"{base}/mobile/v1/uploads/", headers=dict(values["auth"])).uploader(
        file_stream=io.BytesIO(data), chunk_size=4096, upload_checksum=True,
        metadata={"sha256": digest, "filename": "photo.jpg"})
    uploader.upload()

    with app.app_context():
        item = db.session.get(EvidenceItem, item_id)
        assert item.status is EvidenceStatus.VERIFIED and item.blob_sha256 == digest
        events = db.session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == item_id)
                                    .order_by(CustodyEvent.seq)).all()
        assert [e.action.value for e in events][:4] == ["captured", "announced", "received", "verified"]
        assert (events[0].actor_kind, events[0].actor_id) == ("device", values["device_id"])
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EvidenceItem).where(
            EvidenceItem.client_id == capture_id)) == 1

        # The case file: a case against the inspected target, the photo linked, a package built.
        inspection = db.session.get(Inspection, values["inspection_id"])
        lead = db.session.get(User, values["lead_id"])
        case = cases.create_lead(db.session, by=lead, title="现场发现超标排放", target_id=inspection.target_id,
                                 source_inspection_id=inspection.id)
        db.session.add(CaseEvidence(case_id=case.id, evidence_id=item_id, linked_by=lead.id, purpose="证明排放口现场"))
        db.session.commit()
        package = package_ops.request(db.session, case_id=case.id, transfer_id=None, by_user_id=lead.id)
        db.session.commit()
        package = package_ops.build(db.session, package.id, app.config, commit=db.session.commit)
        volume = package_ops.package_dir() / package.id / package.volumes[0]["name"]
        try:
            report = package_verify.verify(package_verify.open_source([str(volume)]))
        finally:
            shutil.rmtree(volume.parent, ignore_errors=True)
        db.session.remove()
    assert report.failures == []
    assert any("1 evidence items" in en and "device signatures valid" in en for _, en in report.passed)
    assert not any("capture signature" in en for _, en in report.warnings)  # signed on the device, and checked
