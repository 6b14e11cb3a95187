"""Work on stored bytes after an upload: metadata and plausibility flags, thumbnails, video chunk trees.

Called by ``tasks.process_blob`` (the boundary, which commits). Flag, never hide: every finding
is an ``EvidenceFlag`` row that reviewers see, and what was read is the item's
``media_metadata``. No file may crash the pipeline: hostile or corrupt EXIF, truncated files and
decompression bombs become flags, never exceptions. Reading is in ``metadata`` (exifread, the
MP4 movie header), decoding in ``imaging`` (Pillow, pillow-heif).

Datums: targets and our stored coordinates are WGS-84. EXIF GPS is WGS-84 unless
``GPSMapDatum`` says GCJ-02; a device location is WGS-84 unless the manifest says
``"coord_system": "gcj02"`` (Chinese map SDKs). Everything is converted to WGS-84 before
distances are compared (``server.core.geo``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import tempfile
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session, object_session

from server.core import geo
from server.core.storage import get_store
from server.modules.evidence import chunks, imaging, metadata
from server.modules.evidence import operations as ops
from server.modules.evidence.models import Blob, Derivation, EvidenceItem, EvidenceStatus

THUMBNAIL_SIZE = imaging.THUMBNAIL_SIZE
TIME_TOLERANCE = dt.timedelta(minutes=10)
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
SERVER_TIME_FAR = dt.timedelta(days=60)
GPS_FAR_FROM_TARGET_M = 1000.0
GPS_FAR_FROM_DEVICE_M = 200.0
DEFAULT_CAMERA_DATES = {dt.datetime(2000, 1, 1), dt.datetime(1980, 1, 1), dt.datetime(1970, 1, 1)}
HEIF_TYPES = ("image/heic", "image/heif", "image/avif")


def process_blob(session: Session, digest: str) -> None:
    """Everything to do once new bytes are stored; idempotent. Flushes; the task commits."""
    blob = session.get(Blob, digest)
    if blob is None:
        return
    items = session.scalars(sa.select(EvidenceItem).where(
        EvidenceItem.blob_sha256 == digest, EvidenceItem.status == EvidenceStatus.VERIFIED,
        EvidenceItem.parent_id.is_(None))).all()
    is_image, is_video = blob.media_type.startswith("image/"), blob.media_type.startswith("video/")
    needs_tree = is_video and blob.merkle_root is None
    if not needs_tree and not (items and (is_image or is_video)):
        return
    facts: dict[str, Any] = {}
    image: dict[str, Any] = {}
    video: dict[str, Any] = {}
    if is_video:
        if needs_tree:
            from server.modules.audit import merkle

            blob.merkle_chunk_size = chunks.CHUNK_SIZE
            blob.merkle_root = merkle.root(chunks.leaves(get_store().iter_chunks(digest, chunks.CHUNK_SIZE),
                                                         chunks.CHUNK_SIZE)).hex()
        if items:
            video = _video_facts(digest, blob.size)
    elif is_image:
        with _local_copy(digest) as path:  # Pillow and libheif want a seekable file
            facts = image_facts(path, blob.media_type)
            image = imaging.inspect_image(path)
    for item in items:
        item.media_metadata = metadata.summary(item, facts, image, video)
        if is_image:
            for code, detail in plausibility(item, facts, image):
                ops.flag(session, item, code, **detail)
            if image.get("thumbnail") is not None:
                _make_thumbnail(session, item, image["thumbnail"], source=image.get("thumbnail_source", "decoded"))
    session.flush()


@contextlib.contextmanager
def _local_copy(digest: str) -> Iterator[Path]:
    """A temporary local file of the blob (the store may be S3, whose bodies do not seek)."""
    with tempfile.TemporaryDirectory(prefix="evidence-") as tmp:
        path = Path(tmp) / "original"
        with open(path, "wb") as out:
            for block in get_store().iter_chunks(digest):
                out.write(block)
        yield path


def _video_facts(digest: str, size: int) -> dict[str, Any]:
    """The movie header, read in place from a local store; from S3 the video is copied first
    (its ``moov`` box is often at the end)."""
    with contextlib.closing(get_store().open(digest)) as fh:
        if getattr(fh, "seekable", lambda: False)():
            return metadata.video_facts(fh, size)
    with _local_copy(digest) as path, open(path, "rb") as fh:
        return metadata.video_facts(fh, size)


def image_facts(path: Path, media_type: str) -> dict[str, Any]:
    """EXIF facts of an image, from the whole file. Pillow (pillow-heif for HEIF) finds the EXIF
    block wherever the container puts it; exifread reads its tags. exifread alone misses EXIF
    after 4 KB of other JPEG segments and the HEIF items libheif places by base offset; it
    still reads the files Pillow cannot open."""
    raw, orientation = _exif_block(path)
    if raw is not None:
        facts = metadata.exif_facts(io.BytesIO(raw))
    else:
        with open(path, "rb") as fh:
            facts = metadata.exif_facts(fh)
    if orientation and media_type in HEIF_TYPES:  # libheif turned the pixels and reset the tag
        facts["orientation"] = orientation
    facts["pillow_time"] = metadata.pillow_time(path)
    return facts


def _exif_block(path: Path) -> tuple[bytes | None, int | None]:
    """The EXIF block (TIFF bytes) as Pillow found it, and pillow-heif's original orientation."""
    from PIL import Image

    try:
        with Image.open(path) as image:  # lazy: headers and metadata segments only
            raw = image.info.get("exif")
            orientation = image.info.get("original_orientation")
    except Exception:  # noqa: BLE001 - exifread tries the file itself; imaging flags the rest
        return None, None
    if not raw or not isinstance(raw, bytes):
        return None, orientation
    return (raw[6:] if raw.startswith(b"Exif\x00\x00") else raw), orientation


def _make_thumbnail(session: Session, item: EvidenceItem, data: bytes, *, source: str = "decoded") -> None:
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
               detail={"max_size": list(THUMBNAIL_SIZE), "source": source})


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
    device = metadata.device_position(item)
    photo = metadata.exif_position(facts)  # only a real fix: never 0/0 or out of range
    status = facts.get("gps_status")
    if status == "invalid":
        found.append(("exif_gps_invalid", {"lat": facts.get("lat"), "lon": facts.get("lon")}))
    elif status == "no_fix":
        found.append(("exif_gps_no_fix", {"lat": facts.get("lat"), "lon": facts.get("lon")}))
    if status == "missing":
        found.append(("exif_gps_missing", {}))
    if photo is not None and device is not None:
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

    inspection = object_session(item).get(Inspection, item.inspection_id)
    target = inspection.target if inspection else None
    if target is None or target.lat is None or target.lon is None:
        return None
    return target.lat, target.lon
