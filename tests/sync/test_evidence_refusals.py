"""Issue 15 items 11, 12 and 18, from the device's side: refused bytes reject their evidence item
with the reason (the upload answer, ``media/missing`` and the pull all say why, so the device
stops retrying); the push's device-clock findings become the item's flags; bytes that match
their ``Upload-Metadata`` but not the manifest they name are refused, not stored."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import struct
import zlib

import pytest
import sqlalchemy as sa
from PIL import Image

from server.modules.evidence.models import Blob, EvidenceItem, EvidenceStatus
from tests.evidence.media import jpeg_bytes
from tests.sync.test_evidence_bridge import capture, push

TUS = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _upload(client, phone, data: bytes, **metadata: str):
    """Creation with upload of the whole file, as tuspy does for a small one."""
    metadata.setdefault("sha256", hashlib.sha256(data).hexdigest())
    return client.post("/mobile/v1/uploads/", data=data, headers={
        **TUS, **phone.headers, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(filename="a.jpg", **metadata)})


def _pull(client, phone, cursor=None):
    url = "/mobile/v1/sync/changes" + (f"?cursor={cursor}" if cursor else "")
    response = client.get(url, headers=phone.headers)
    assert response.status_code == 200, response.json
    return response.json["changes"], response.json["cursor"]


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _tiff() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(out, "TIFF")
    return out.getvalue()


def _zip() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


REFUSED = {
    "tiff": (_tiff, "evidence.unsupported_type"),
    "zip_named_jpg": (_zip, "evidence.unsupported_type"),
    "html_named_jpg": (lambda: b"<!doctype html><html><body>login</body></html>" * 4, "evidence.unsupported_type"),
    "image_bomb": (lambda: _png_header(50_000, 50_000), "evidence.image_too_large"),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_refused_file_rejects_its_item_and_the_device_is_told_why(client, db_session, field, kind):
    make, code = REFUSED[kind]
    data = make()
    body = capture(field, data)
    push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))
    _, cursor = _pull(client, field.phone_b)

    answer = _upload(client, field.phone_a, data)
    assert answer.status_code in (201, 204, 415, 422, 460) and answer.json["code"] == code

    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    db_session.refresh(item)
    assert item.status is EvidenceStatus.REJECTED
    assert item.rejection["code"] == code and item.rejection["message_zh"] and item.rejection["message_en"]
    assert [f.code for f in item.flags if f.code == "upload_rejected"] == ["upload_rejected"]
    assert item.custody[-1].action.value == "rejected"

    # media/missing no longer asks for it, and says why
    missing = client.post("/mobile/v1/media/missing", json={"hashes": [body["sha256"]]}, headers=field.phone_a.headers)
    assert missing.status_code == 200 and missing.json["missing"] == []
    assert [(r["sha256"], r["capture_id"], r["code"]) for r in missing.json["rejected"]] == [
        (body["sha256"], body["id"], code)]

    # the team's devices pull the manifest again, rejected, with the reason
    changes, _ = _pull(client, field.phone_b, cursor)
    rejected = [c for c in changes if c["entity"] == "media_manifest" and c["id"] == body["id"]]
    assert [(c["op"], c["data"]["status"], c["data"]["rejection"]["code"]) for c in rejected] == [
        ("upsert", "rejected", code)]
    assert rejected[0]["data"]["sha256"] == body["sha256"]


def test_bytes_not_matching_their_announced_hash_reject_the_item(client, db_session, field):
    data = jpeg_bytes((30, 20))
    body = capture(field, data)
    push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))
    answer = _upload(client, field.phone_a, data + b"tampered", sha256=body["sha256"])
    assert answer.json["code"] == "evidence.hash_mismatch"
    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    db_session.refresh(item)
    assert item.status is EvidenceStatus.REJECTED and item.rejection["code"] == "evidence.hash_mismatch"


def test_another_devices_refused_upload_does_not_reject_my_item(client, db_session, field):
    body = capture(field, b"<html>" * 30)
    push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))
    _upload(client, field.phone_b, b"<html>" * 30)  # a teammate's phone sends the same hostile bytes
    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    db_session.refresh(item)
    assert item.status is EvidenceStatus.ANNOUNCED


def test_manifest_only_hash_mismatch_is_refused_and_stores_no_blob(client, db_session, field):
    """Item 18: Upload-Metadata carries the true hash of the bytes, but the manifest it names
    (``capture_id``) registered another one: refused, nothing stored, the item rejected."""
    original, edited = jpeg_bytes((30, 20), color="red"), jpeg_bytes((30, 20), color="blue")
    body = capture(field, original)
    push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))
    answer = _upload(client, field.phone_a, edited, capture_id=body["id"])
    assert answer.status_code == 422 and answer.json["code"] == "evidence.manifest_hash_mismatch"
    assert db_session.get(Blob, hashlib.sha256(edited).hexdigest()) is None  # no orphan blob
    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    db_session.refresh(item)
    assert item.status is EvidenceStatus.REJECTED
    assert item.rejection["code"] == "evidence.manifest_hash_mismatch"
    # the right bytes naming the same capture are still not taken for a rejected item; without a
    # capture_id, bytes that match no manifest yet are kept for a manifest still to come (bytes first)
    late = jpeg_bytes((31, 20))
    assert _upload(client, field.phone_a, late).status_code in (201, 204)


def test_clock_flags_of_the_sync_row_reach_the_evidence_item(client, db_session, field):
    """Item 12: a photo taken weeks before the inspection window is flagged on the item."""
    weeks_ago = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) - dt.timedelta(days=21)
    body = capture(field, b"old photo", captured_at=weeks_ago.isoformat())
    push(client, field.phone_a, field.phone_a.op("media_manifest", "append", body))
    item = db_session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id == body["id"])).one()
    codes = {f.code: f.detail for f in item.flags}
    assert "device_time_before_window" in codes
    assert codes["device_time_before_window"]["sync_flag"] == "before_window"
