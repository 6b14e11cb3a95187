"""Metadata and plausibility: flags, never hidden, never a crash; thumbnails as derivatives."""
import datetime as dt
import hashlib
import struct
import zlib

import pytest

from server.core import geo
from server.core.calendar import CHINA
from server.modules.evidence import operations as ops
from server.modules.evidence.models import Blob, Derivation, EvidenceItem
from server.core.storage import get_store
from tests.evidence.helpers import make_team, manifest
from tests.evidence.media import jpeg_bytes, photo_with_exif


@pytest.fixture()
def team(db_session):
    return make_team()


def _store(db_session, data: bytes, media_type: str = "image/jpeg") -> Blob:
    import tempfile
    from pathlib import Path

    digest = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(data)
        tmp.flush()
        get_store().put_file(digest, Path(tmp.name))
    blob = Blob(sha256=digest, size=len(data), media_type=media_type)
    db_session.add(blob)
    db_session.flush()
    return blob


def _process(db_session, team, data, media_type="image/jpeg", **manifest_fields) -> EvidenceItem:
    _store(db_session, data, media_type)
    item = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                        manifest=manifest(team, data, **manifest_fields))
    db_session.commit()  # the processing task runs after commit (eagerly here)
    db_session.expire_all()
    return db_session.get(EvidenceItem, item.id)


def _codes(item):
    return {f.code for f in item.flags}


def _now_exif(delta=dt.timedelta()):
    return (dt.datetime.now(CHINA) + delta).strftime("%Y:%m:%d %H:%M:%S")


def test_plausible_photo_gets_no_flags_and_a_thumbnail(db_session, team):
    item = _process(db_session, team, photo_with_exif(_now_exif(), 33.87, 109.94))
    assert _codes(item) == set()
    thumbs = [d for d in item.derivatives if d.derivation is Derivation.THUMBNAIL]
    assert len(thumbs) == 1 and thumbs[0].manifest["parent_sha256"] == item.sha256
    actions = [e.action.value for e in item.custody]
    assert actions[-1] == "derived" and "verified" in actions


def test_far_gps_wrong_clock_and_future_times_are_flagged(db_session, team):
    data = photo_with_exif("1999:12:31 23:00:00", 34.50, 108.90)  # Xi'an, camera clock never set
    item = _process(db_session, team, data)
    assert {"gps_far_from_device", "gps_far_from_target", "camera_clock_unset",
            "exif_time_differs_from_device"} <= _codes(item)
    future = _process(db_session, team, photo_with_exif(_now_exif(dt.timedelta(days=2)), 33.871, 109.94))
    assert "exif_time_in_future" in _codes(future)


def test_gcj02_photo_location_is_a_datum_mixup_not_a_far_place(db_session, team):
    lat, lon = geo.wgs84_to_gcj02(33.87, 109.94)  # the EXIF was written in GCJ-02 but says nothing
    item = _process(db_session, team, photo_with_exif(_now_exif(), lat, lon))
    assert "gps_datum_mismatch" in _codes(item) and "gps_far_from_device" not in _codes(item)
    declared = _process(db_session, team, photo_with_exif(_now_exif(), lat, lon, datum="GCJ-02", size=(65, 48)))
    assert "gps_datum_mismatch" not in _codes(declared) and "gps_far_from_device" not in _codes(declared)


def test_missing_metadata_is_flagged(db_session, team):
    item = _process(db_session, team, jpeg_bytes((70, 40)), lat=None, lon=None)
    assert {"exif_time_missing", "exif_gps_missing", "device_location_missing"} <= _codes(item)


def test_truncated_and_corrupt_files_become_flags_not_exceptions(db_session, team):
    whole = photo_with_exif(_now_exif(), 33.87, 109.94, size=(300, 200))
    item = _process(db_session, team, whole[: len(whole) // 2])
    assert "image_truncated" in _codes(item) or "image_corrupt" in _codes(item)
    hostile = b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00MM\x00*\xff\xff\xff\xf0" + b"\xff" * 300
    item = _process(db_session, team, hostile)
    assert _codes(item) & {"image_corrupt", "exif_corrupt", "image_undecodable", "exif_time_missing"}


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_flagged_in_the_pipeline(app, db_session, team, monkeypatch):
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_IMAGE_PIXELS", 1000)
    item = _process(db_session, team, _png_header(50_000, 50_000), media_type="image/png")
    assert "image_too_large" in _codes(item)


def test_video_gets_a_chunk_tree_and_range_proofs_verify(db_session, team, monkeypatch):
    from server.modules.evidence import chunks

    monkeypatch.setattr(chunks, "CHUNK_SIZE", 1024)
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # ~10 KiB "video"
    _store(db_session, data, "video/mp4")
    item = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                        manifest=manifest(team, data, kind="video", media_type="video/mp4"))
    db_session.commit()
    db_session.expire_all()
    blob = db_session.get(Blob, item.sha256)
    assert blob.merkle_root and blob.merkle_chunk_size == 1024
    proof = ops.chunk_proof(db_session, db_session.get(EvidenceItem, item.id), 3000, 5000)
    assert [c["index"] for c in proof["chunks"]] == [2, 3, 4]
    clip = [data[i * 1024:(i + 1) * 1024] for i in (2, 3, 4)]
    assert chunks.verify_chunks(clip, proof)
    clip[1] = clip[1][:-1] + b"!"
    assert not chunks.verify_chunks(clip, proof)
