"""Issue 15 items 13-17: what is read from the bytes is shown on the item, read from the whole file
(HEIC/HEIF too), thumbnails upright, decoding memory bounded, impossible GPS and missing times
called what they are."""
from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from server.core import geo
from server.core.storage import get_store
from server.modules.evidence.models import Derivation
from tests.evidence.helpers import staff_auth
from tests.evidence.media import exif_block, heif_bytes, jpeg_bytes, jpeg_with_late_exif, mp4_bytes
from tests.evidence.test_pipeline import _codes, _process, _store, team  # noqa: F401 - the fixture
from tests.evidence.test_tus_clients import s3_endpoint  # noqa: F401 - the fixture (moto server)

NOW_CN = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))


def _exif_now(zone: dt.timezone | None = None) -> str:
    return dt.datetime.now(zone or dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")


def _thumbnail(item) -> Image.Image:
    thumbs = [d for d in item.derivatives if d.derivation is Derivation.THUMBNAIL]
    assert len(thumbs) == 1, _codes(item)
    with get_store().open(thumbs[0].blob_sha256) as fh:
        image = Image.open(io.BytesIO(fh.read()))
        image.load()
    return image


# ---- 13: what was read is on the item (API and console) -----------------------------------------

def test_metadata_is_on_the_item_in_the_api(client, db_session, team):
    exif = exif_block(when=_exif_now(), offset="+08:00", lat=33.87, lon=109.94, altitude=612.5, make="HUAWEI",
                      model="Mate 60", orientation=1)
    item = _process(db_session, team, jpeg_bytes((96, 64), exif=exif))
    meta = item.media_metadata
    assert meta["capture_time_source"] == "exif_with_offset" and meta["capture_time"].endswith("+08:00")
    assert (meta["make"], meta["model"], meta["orientation"], meta["width"], meta["height"]) == (
        "HUAWEI", "Mate 60", 1, 96, 64)
    gps = meta["gps"]
    assert gps["status"] == "ok" and gps["altitude_m"] == 612.5
    assert gps["wgs84"]["lat"] == pytest.approx(33.87, abs=1e-5)
    gcj = geo.wgs84_to_gcj02(gps["wgs84"]["lat"], gps["wgs84"]["lon"])
    assert (gps["gcj02"]["lat"], gps["gcj02"]["lon"]) == pytest.approx(gcj, abs=1e-6)
    assert meta["device_location"]["accuracy_m"] == 8.0
    detail = client.get(f"/api/v1/evidence/{item.id}", headers=staff_auth(team.member))
    assert detail.status_code == 200
    assert detail.json["media_metadata"]["model"] == "Mate 60"
    assert detail.json["media_metadata"]["gps"]["gcj02"]["lat"] == gps["gcj02"]["lat"]
    listed = client.get(f"/api/v1/evidence?inspection_id={team.inspection.id}", headers=staff_auth(team.member))
    assert listed.json[0]["media_metadata"]["make"] == "HUAWEI"


def test_the_console_shows_what_was_read_and_why_a_file_was_refused(client, db_session, team):
    """Items 11 and 13 in the console: "my work" lists a refused file as refused, with the reason
    (not as "upload not started"), and a flagged photo with its camera, time source and GPS."""
    import base64
    import hashlib

    from tests import factories
    from tests.web.conftest import HTML, sign_in

    exif = exif_block(when=_exif_now(), lat=0.0, lon=0.0, make="HUAWEI", model="Mate 60")  # no fix: a flag
    photo = _process(db_session, team, jpeg_bytes((97, 64), exif=exif))
    page = b"<!doctype html><html>not a photo</html>" * 3
    from server.modules.evidence import operations as ops
    from tests.evidence.helpers import device_auth, manifest

    refused = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                           manifest=manifest(team, page))
    db_session.commit()
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in {"sha256": hashlib.sha256(page).hexdigest(), "filename": "a.jpg"}.items())
    answer = client.post("/mobile/v1/uploads/", data=page, headers={
        "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Length": str(len(page)),
        "Upload-Metadata": meta, **device_auth(team.device)})
    assert answer.json["code"] == "evidence.unsupported_type"

    signed_in = sign_in(client, team.lead.username, factories.PASSWORD)
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)[:500]
    html = client.get("/console/my-work", headers=HTML).get_data(as_text=True)
    assert 'id="my-flagged"' in html, html[:3000]
    awaiting = html[html.index('id="my-awaiting"'):html.index('id="my-flagged"')]
    flagged = html[html.index('id="my-flagged"'):]
    flagged = flagged[:flagged.index("</table>")]
    assert refused.id not in awaiting  # no longer "upload not started"
    assert refused.id in flagged and "原件被拒收" in flagged and "文件内容不是允许的证据格式" in flagged
    assert 'data-rejection="evidence.unsupported_type"' in flagged
    assert photo.id in flagged and "HUAWEI Mate 60" in flagged and "未定位（0/0）" in flagged
    assert 'data-time-source="exif_zone_assumed"' in flagged and "按北京时间" in flagged


def test_video_duration_is_read_from_the_movie_header(db_session, team):
    data = mp4_bytes(12.5)
    _store(db_session, data, "video/mp4")
    from server.modules.evidence import operations as ops
    from server.modules.evidence.models import EvidenceItem
    from tests.evidence.helpers import manifest

    item = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                        manifest=manifest(team, data, kind="video", media_type="video/mp4"))
    db_session.commit()
    db_session.expire_all()
    item = db_session.get(EvidenceItem, item.id)
    assert item.media_metadata["duration_s"] == 12.5
    assert item.media_metadata["capture_time_source"] == "device"


# ---- 14: EXIF read from the whole file; HEIC/HEIF decoded ------------------------------------------

def test_exif_after_the_first_256_kib_is_read(db_session, team):
    exif = exif_block(when=_exif_now(), offset="+08:00", lat=33.87, lon=109.94, make="Canon")
    data = jpeg_with_late_exif(exif)
    assert data.find(b"Exif\x00\x00") > 256 * 1024
    item = _process(db_session, team, data)
    assert not _codes(item) & {"exif_time_missing", "exif_gps_missing", "exif_corrupt"}
    assert item.media_metadata["make"] == "Canon"


def test_heic_is_decoded_and_its_far_exif_read(db_session, team):
    exif = exif_block(when=_exif_now(), offset="+08:00", lat=33.87, lon=109.94, make="Apple", model="iPhone 15 Pro",
                      orientation=6)
    data = heif_bytes((1024, 768), exif=exif, noise=True)
    assert data[4:12] == b"ftypheic" and data.find(b"MM\x00*") > 256 * 1024  # EXIF far into the file
    item = _process(db_session, team, data, media_type="image/heic")
    assert not _codes(item) & {"image_undecodable", "exif_corrupt", "exif_time_missing", "exif_gps_missing"}
    meta = item.media_metadata
    assert (meta["make"], meta["model"], meta["orientation"], meta["format"]) == ("Apple", "iPhone 15 Pro", 6, "HEIF")
    assert meta["gps"]["wgs84"]["lat"] == pytest.approx(33.87, abs=1e-5)
    thumb = _thumbnail(item)
    assert thumb.format == "JPEG" and max(thumb.size) == 320


def test_a_heif_over_the_decode_budget_uses_its_stored_thumbnail(app, db_session, team, monkeypatch):
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_DECODE_BYTES", 1_000_000)  # 1200 x 900 needs ≈ 8 MB
    exif = exif_block(when=_exif_now(), offset="+08:00", lat=33.87, lon=109.94)
    item = _process(db_session, team, heif_bytes((1200, 900), exif=exif, thumbnail_box=320), media_type="image/heic")
    assert "image_not_decoded" not in _codes(item)
    thumbs = [d for d in item.derivatives if d.derivation is Derivation.THUMBNAIL]
    assert thumbs[0].manifest["source"] == "embedded" and _thumbnail(item).size == (320, 240)
    bare = _process(db_session, team, heif_bytes((1201, 900), exif=exif), media_type="image/heic")
    assert "image_not_decoded" in _codes(bare)
    assert (bare.media_metadata["width"], bare.media_metadata["height"]) == (1201, 900)


# ---- 15: thumbnails follow the EXIF orientation ----------------------------------------------------

# What a camera stores for an upright scene, per Orientation: the inverse of the turn that
# ImageOps.exif_transpose applies (its table, EXIF 2.32 §4.6.4.1).
STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
QUADRANTS = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (255, 255, 255)}


def _upright_scene() -> Image.Image:
    scene = Image.new("RGB", (160, 80))
    for (qx, qy), color in QUADRANTS.items():
        scene.paste(color, (qx * 80, qy * 40, qx * 80 + 80, qy * 40 + 40))
    return scene


@pytest.mark.parametrize("orientation", range(1, 9))
def test_thumbnail_is_upright_for_every_exif_orientation(db_session, team, orientation):
    stored = _upright_scene() if STORED[orientation] is None else _upright_scene().transpose(STORED[orientation])
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif_block(orientation=orientation, when=_exif_now()))
    item = _process(db_session, team, out.getvalue())
    thumb = _thumbnail(item).convert("RGB")
    assert thumb.size == (160, 80)
    for (qx, qy), color in QUADRANTS.items():
        pixel = thumb.getpixel((qx * 80 + 40, qy * 40 + 20))
        assert all(abs(a - b) < 40 for a, b in zip(pixel, color)), (orientation, (qx, qy), pixel)


# ---- 16: decoding memory is bounded -----------------------------------------------------------------

def png_of(width: int, height: int, path: Path) -> Path:
    """A valid all-black RGB PNG of any size, written row by row (never held in memory)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    squeeze = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
        out.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_an_image_too_large_to_decode_in_budget_is_flagged_not_decoded(db_session, team, tmp_path):
    data = png_of(8000, 8000, tmp_path / "big.png").read_bytes()  # 64 MP: 256 MB decoded, 250 KB stored
    item = _process(db_session, team, data, media_type="image/png")
    assert "image_not_decoded" in _codes(item)
    assert not [d for d in item.derivatives if d.derivation is Derivation.THUMBNAIL]
    assert (item.media_metadata["width"], item.media_metadata["height"]) == (8000, 8000)


def test_decoding_a_png_just_under_the_pixel_limit_keeps_the_worker_small(tmp_path):
    """The issue's case (a 350 KB PNG just under 120 MP took a worker from 126 to 596 MB), run in
    a fresh interpreter so that its peak RSS is this image's alone."""
    import subprocess
    import sys

    path = png_of(10_950, 10_950, tmp_path / "under-limit.png")  # 119.9 MP
    # VmHWM: this interpreter's own peak (ru_maxrss would carry the forking pytest's over exec)
    script = ("import re, sys; from pathlib import Path;"
              "from server.modules.evidence import imaging;"
              "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024;"
              "before = hwm(); result = imaging.inspect_image(Path(sys.argv[1]));"
              "print(before, hwm(), result.get('problem', ('',))[0])")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    before_mib, peak_mib, problem = int(out[0]), int(out[1]), out[2]
    assert problem == "image_not_decoded"
    assert peak_mib < 250 and peak_mib - before_mib < 100, (before_mib, peak_mib)


# ---- 17: impossible GPS, 0/0, missing DateTimeOriginal, time zones ---------------------------------

def test_impossible_gps_is_invalid_and_never_used_as_a_position(db_session, team):
    exif = exif_block(when=_exif_now(), offset="+08:00", raw_gps=((133.0, 0.0, 0.0), (409.0, 0.0, 0.0)))
    item = _process(db_session, team, jpeg_bytes((50, 40), exif=exif))
    codes = _codes(item)
    assert "exif_gps_invalid" in codes
    assert not codes & {"gps_far_from_device", "gps_far_from_target", "gps_datum_mismatch", "exif_gps_missing"}
    assert item.media_metadata["gps"]["status"] == "invalid" and "wgs84" not in item.media_metadata["gps"]


def test_zero_zero_is_no_fix_not_the_gulf_of_guinea(db_session, team):
    exif = exif_block(when=_exif_now(), offset="+08:00", raw_gps=((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    item = _process(db_session, team, jpeg_bytes((51, 40), exif=exif))
    codes = _codes(item)
    assert "exif_gps_no_fix" in codes and not codes & {"gps_far_from_device", "gps_far_from_target"}
    assert item.media_metadata["gps"]["status"] == "no_fix"


def test_missing_datetimeoriginal_is_an_unknown_time_not_the_modification_date(db_session, team):
    exif = exif_block(modified=_exif_now(), lat=33.87, lon=109.94)  # only DateTime (file changed)
    item = _process(db_session, team, jpeg_bytes((52, 40), exif=exif), captured_at=None)
    assert "exif_time_missing" in _codes(item)
    assert item.media_metadata["capture_time_source"] == "unknown" and item.media_metadata["capture_time"] is None


def test_offset_time_original_is_used_and_its_absence_marked_as_assumed(db_session, team):
    madrid = dt.timezone(dt.timedelta(hours=1))
    now_madrid = dt.datetime.now(madrid)
    exif = exif_block(when=now_madrid.strftime("%Y:%m:%d %H:%M:%S"), offset="+01:00", lat=33.87, lon=109.94)
    item = _process(db_session, team, jpeg_bytes((53, 40), exif=exif), captured_at=now_madrid.isoformat())
    assert "exif_time_differs_from_device" not in _codes(item)  # 6 h off if read as China time
    assert item.media_metadata["capture_time_source"] == "exif_with_offset"
    assert item.media_metadata["capture_time"].endswith("+01:00")

    plain = exif_block(when=_exif_now(), lat=33.87, lon=109.94)
    assumed = _process(db_session, team, jpeg_bytes((54, 40), exif=plain))
    assert assumed.media_metadata["capture_time_source"] == "exif_zone_assumed"
    assert assumed.media_metadata["zone_assumed"] == "Asia/Shanghai"


def test_video_duration_is_read_from_s3_where_the_body_does_not_seek(app, s3_endpoint, monkeypatch):
    """moov at the end of the file, as phones write it, on a store whose bodies only stream."""
    import hashlib
    import tempfile

    import boto3

    from server.core.storage import S3Store
    from server.modules.evidence import pipeline

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="videos")
    store = S3Store("videos", "q/", endpoint_url=s3_endpoint, region_name="us-east-1")
    monkeypatch.setitem(app.extensions, "blob_store", store)
    data = mp4_bytes(61.25, moov_last=True)
    digest = hashlib.sha256(data).hexdigest()
    with app.app_context(), tempfile.NamedTemporaryFile() as tmp:
        tmp.write(data)
        tmp.flush()
        store.put_file(digest, Path(tmp.name))
        assert pipeline._video_facts(digest, len(data))["duration_s"] == 61.25
