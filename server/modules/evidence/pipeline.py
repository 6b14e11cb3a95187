"""Work on stored bytes after an upload: EXIF and plausibility flags, thumbnails, video chunk trees.

Called by ``tasks.process_blob``. Flag, never hide: every finding is an ``EvidenceFlag`` row that
reviewers see. No file may crash the pipeline: hostile or corrupt EXIF, truncated files and
decompression bombs become flags, never exceptions.

Datums: targets and our stored coordinates are WGS-84. EXIF GPS is WGS-84 unless
``GPSMapDatum`` says GCJ-02; a device location is WGS-84 unless the manifest says
``"coord_system": "gcj02"`` (Chinese map SDKs). Everything is converted to WGS-84 before
distances are compared (``server.core.geo``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from server.core import geo
from server.core.calendar import CHINA
from server.core.storage import get_store
from server.extensions import db
from server.modules.evidence import chunks
from server.modules.evidence import operations as ops
from server.modules.evidence.models import Blob, Derivation, EvidenceItem, EvidenceStatus

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 320)
EXIF_READ_LIMIT = 256 * 1024  # EXIF lives in the first 64 KiB of a JPEG (APP1); a little margin
TIME_TOLERANCE = dt.timedelta(minutes=10)
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
SERVER_TIME_FAR = dt.timedelta(days=60)
GPS_FAR_FROM_TARGET_M = 1000.0
GPS_FAR_FROM_DEVICE_M = 200.0
DEFAULT_CAMERA_DATES = {dt.datetime(2000, 1, 1), dt.datetime(1980, 1, 1), dt.datetime(1970, 1, 1)}


def process_blob(digest: str) -> None:
    """Everything to do once new bytes are stored; idempotent. Commits once."""
    session: Session = db.session
    blob = session.get(Blob, digest)
    if blob is None:
        return
    items = session.scalars(sa.select(EvidenceItem).where(
        EvidenceItem.blob_sha256 == digest, EvidenceItem.status == EvidenceStatus.VERIFIED,
        EvidenceItem.parent_id.is_(None))).all()
    if blob.media_type.startswith("video/") and blob.merkle_root is None:
        leaf_hashes = chunks.leaves(get_store().iter_chunks(digest, chunks.CHUNK_SIZE), chunks.CHUNK_SIZE)
        from server.modules.audit import merkle

        blob.merkle_chunk_size = chunks.CHUNK_SIZE
        blob.merkle_root = merkle.root(leaf_hashes).hex()
    if blob.media_type.startswith("image/") and items:
        head = _read_head(digest, EXIF_READ_LIMIT)
        facts = exif_facts(head, blob.media_type)
        image_result = inspect_image(digest, blob.size)
        for item in items:
            for code, detail in plausibility(item, facts, image_result):
                ops.flag(session, item, code, **detail)
            if image_result.get("thumbnail") is not None:
                _make_thumbnail(session, item, image_result["thumbnail"])
    session.commit()


def _read_head(digest: str, limit: int) -> bytes:
    with get_store().open(digest) as fh:
        return fh.read(limit)


# ---- EXIF --------------------------------------------------------------------------------------

def _ratio(value: Any) -> float:
    num, den = (value.num, value.den) if hasattr(value, "num") else (value.numerator, value.denominator)
    return float(num) / float(den) if den else float("nan")


def _dms(values: Any, ref: str) -> float | None:
    try:
        d, m, s = (_ratio(v) for v in list(values)[:3])
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None
    result = d + m / 60 + s / 3600
    if result != result:  # NaN
        return None
    return -result if ref.strip().upper() in ("S", "W") else result


def _parse_exif_time(text: Any, offset: Any = None) -> dt.datetime | None:
    try:
        naive = dt.datetime.strptime(str(text).strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    tz: dt.tzinfo = CHINA  # cameras write local time without a zone; ours are in China
    if offset:
        try:
            sign = -1 if str(offset).startswith("-") else 1
            hours, minutes = str(offset).lstrip("+-")[:5].split(":")
            tz = dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes)))
        except ValueError:
            pass
    return naive.replace(tzinfo=tz)


def exif_facts(head: bytes, media_type: str) -> dict[str, Any]:
    """Capture time, GPS and camera from EXIF, read with exifread and cross-checked with Pillow."""
    import exifread

    facts: dict[str, Any] = {"readable": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("exifread").setLevel(logging.CRITICAL)
            tags = exifread.process_file(io.BytesIO(head), details=False, strict=False)
    except Exception as exc:  # noqa: BLE001 - hostile EXIF must not crash anything
        facts["readable"] = False
        facts["error"] = type(exc).__name__
        tags = {}
    facts["tag_count"] = len(tags)
    time_tag = tags.get("EXIF DateTimeOriginal") or tags.get("Image DateTime")
    facts["raw_time"] = str(time_tag) if time_tag is not None else None
    facts["time"] = _parse_exif_time(time_tag, tags.get("EXIF OffsetTimeOriginal")) if time_tag else None
    lat, lon = tags.get("GPS GPSLatitude"), tags.get("GPS GPSLongitude")
    if lat is not None and lon is not None:
        facts["lat"] = _dms(getattr(lat, "values", lat), str(tags.get("GPS GPSLatitudeRef", "N")))
        facts["lon"] = _dms(getattr(lon, "values", lon), str(tags.get("GPS GPSLongitudeRef", "E")))
        facts["datum"] = str(tags.get("GPS GPSMapDatum", "WGS-84")).strip().upper()
    facts["camera"] = " ".join(str(tags[k]) for k in ("Image Make", "Image Model") if k in tags) or None
    facts["pillow_time"] = _pillow_time(head) if media_type in ("image/jpeg", "image/png") else None
    return facts


def _pillow_time(head: bytes) -> str | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(head)) as image:
                exif = image.getexif()
                value = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    except Exception:  # noqa: BLE001
        return None
    return str(value).strip().rstrip("\x00") if value else None


# ---- decoding and thumbnails --------------------------------------------------------------------

def inspect_image(digest: str, size: int) -> dict[str, Any]:
    """Decode safely: pixel limit first (decompression bombs), then a reduced decode for the thumbnail."""
    from PIL import Image

    limit = current_app.config["EVIDENCE_MAX_IMAGE_PIXELS"]
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "original"
        with open(path, "wb") as out:
            for block in get_store().iter_chunks(digest):
                out.write(block)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = limit
                try:
                    with Image.open(path) as image:
                        result["pixels"] = image.width * image.height
                        image.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a reduced scale
                        image.thumbnail(THUMBNAIL_SIZE)
                        out = io.BytesIO()
                        image.convert("RGB").save(out, "JPEG", quality=80)
                        result["thumbnail"] = out.getvalue()
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            result["problem"] = ("image_too_large", {"error": str(exc)[:200], "limit": limit})
        except Image.UnidentifiedImageError:
            result["problem"] = ("image_undecodable", {"size": size})
        except (OSError, SyntaxError, ValueError) as exc:
            code = "image_truncated" if "truncated" in str(exc) else "image_corrupt"
            result["problem"] = (code, {"error": str(exc)[:200]})
        except Exception as exc:  # noqa: BLE001 - nothing in a file may crash the pipeline
            result["problem"] = ("image_corrupt", {"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return result


def _make_thumbnail(session: Session, item: EvidenceItem, data: bytes) -> None:
    from PIL import __version__ as pillow_version

    digest = hashlib.sha256(data).hexdigest()
    if session.get(Blob, digest) is None:
        with tempfile.NamedTemporaryFile(prefix="thumb-") as tmp:
            tmp.write(data)
            tmp.flush()
            get_store().put_file(digest, Path(tmp.name))
        session.add(Blob(sha256=digest, size=len(data), media_type="image/jpeg"))
        session.flush()
    ops.derive(session, item, session.get(Blob, digest), Derivation.THUMBNAIL, tool=f"Pillow {pillow_version}",
               detail={"max_size": list(THUMBNAIL_SIZE)})


# ---- plausibility -------------------------------------------------------------------------------

def plausibility(item: EvidenceItem, facts: dict[str, Any], image: dict[str, Any]) -> list[tuple[str, dict]]:
    """Findings for one photo. Pure given its inputs (the target location comes from the item)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if image.get("problem"):
        found.append(image["problem"])
    if not facts.get("readable"):
        found.append(("exif_corrupt", {"error": facts.get("error")}))
    exif_time: dt.datetime | None = facts.get("time")
    if exif_time is None:
        found.append(("exif_time_missing", {"raw": facts.get("raw_time")}))
    else:
        naive = exif_time.replace(tzinfo=None)
        if exif_time.year < 2000 or naive in DEFAULT_CAMERA_DATES:
            found.append(("camera_clock_unset", {"exif_time": facts.get("raw_time")}))
        if exif_time > item.received_at + FUTURE_TOLERANCE:
            found.append(("exif_time_in_future", {"exif_time": exif_time, "received_at": item.received_at}))
        elif item.received_at - exif_time > SERVER_TIME_FAR:
            found.append(("exif_time_far_from_server", {"exif_time": exif_time, "received_at": item.received_at}))
        if item.captured_at_device and abs(exif_time - item.captured_at_device) > TIME_TOLERANCE:
            found.append(("exif_time_differs_from_device", {
                "exif_time": exif_time, "device_time": item.captured_at_device,
                "difference_s": (exif_time - item.captured_at_device).total_seconds()}))
        pillow_time = facts.get("pillow_time")
        if pillow_time and facts.get("raw_time") and pillow_time[:19] != str(facts["raw_time"])[:19]:
            found.append(("exif_readers_disagree", {"exifread": facts.get("raw_time"), "pillow": pillow_time}))
    if item.captured_at_device and item.captured_at_device > item.received_at + FUTURE_TOLERANCE:
        found.append(("device_time_in_future", {"device_time": item.captured_at_device,
                                                "received_at": item.received_at}))
    found.extend(_location_findings(item, facts))
    return found


def _location_findings(item: EvidenceItem, facts: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    device = None
    if item.lat is not None and item.lon is not None:
        device = (item.lat, item.lon)
        if str(item.manifest.get("coord_system", "wgs84")).lower() == "gcj02":
            device = geo.gcj02_to_wgs84(*device)
    photo = None
    if facts.get("lat") is not None and facts.get("lon") is not None:
        photo = (facts["lat"], facts["lon"])
        if "GCJ" in str(facts.get("datum")):
            photo = geo.gcj02_to_wgs84(*photo)
    if photo is None:
        found.append(("exif_gps_missing", {}))
    elif device is not None:
        distance = geo.distance_m(*photo, *device)
        allowed = max(GPS_FAR_FROM_DEVICE_M, 3 * (item.accuracy_m or 0))
        if distance > allowed:
            # Same place in the other datum? Then the error is a datum mix-up, not a different place.
            shifted = min(geo.distance_m(*geo.gcj02_to_wgs84(*photo), *device),
                          geo.distance_m(*geo.wgs84_to_gcj02(*photo), *device))
            code = "gps_datum_mismatch" if shifted <= allowed else "gps_far_from_device"
            found.append((code, {"distance_m": distance, "allowed_m": allowed, "photo": photo, "device": device}))
    if device is None:
        found.append(("device_location_missing", {}))
    target = _target_location(item)
    where = photo or device
    if target is not None and where is not None:
        distance = geo.distance_m(*where, *target)
        if distance > GPS_FAR_FROM_TARGET_M:
            found.append(("gps_far_from_target", {"distance_m": distance, "target": target,
                                                  "source": "exif" if photo else "device"}))
    return found


def _target_location(item: EvidenceItem) -> tuple[float, float] | None:
    if not item.inspection_id:
        return None
    from server.modules.inspections.models import Inspection

    inspection = db.session.get(Inspection, item.inspection_id)
    target = inspection.target if inspection else None
    if target is None or target.lat is None or target.lon is None:
        return None
    return target.lat, target.lon
