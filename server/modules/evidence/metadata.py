"""What the bytes say about themselves: capture time, place, camera, pixel size, video duration.

Who reads what (README "Evidence pipeline"):

* **exifread** reads the EXIF of JPEG, HEIC/HEIF and PNG from the whole file (it seeks to where
  the EXIF lies: in a HEIF that can be far past the first megabyte): DateTimeOriginal,
  OffsetTimeOriginal, GPS, Make, Model, Orientation. The bureau asked for it.
* **Pillow** (with pillow-heif for HEIF) reads DateTimeOriginal a second time, independently, so
  that ``exif_readers_disagree`` can be raised, and gives the pixel size (``imaging``).
* **MP4/MOV**: the duration comes from the movie header box (``mvhd``), read here.

Times: DateTimeOriginal is the capture time; a file without it has an *unknown* EXIF time (the
modification time ``DateTime`` is not a capture time). OffsetTimeOriginal gives its zone; without
it the zone is *assumed* to be China time and the item says so.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import struct
from pathlib import Path
from typing import IO, Any

from server.core import geo
from server.core.calendar import CHINA

MP4_EPOCH = dt.datetime(1904, 1, 1, tzinfo=dt.UTC)
# exifread logs every oddity of a hostile file at WARNING; the facts and flags say what matters.
logging.getLogger("exifread").setLevel(logging.CRITICAL)


def _ratio(value: Any) -> float:
    num, den = (value.num, value.den) if hasattr(value, "num") else (value.numerator, value.denominator)
    return float(num) / float(den) if den else float("nan")


def _dms(values: Any, ref: str) -> float | None:
    try:
        d, m, s = (_ratio(v) for v in list(values)[:3])
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None
    result = d + m / 60 + s / 3600
    if not math.isfinite(result):
        return None
    return -result if ref.strip().upper() in ("S", "W") else result


def parse_offset(text: Any) -> dt.timezone | None:
    """``+08:00`` / ``-05:00`` (EXIF OffsetTime*) → a fixed zone; None if absent or malformed."""
    value = str(text or "").strip().rstrip("\x00")
    if len(value) < 6 or value[0] not in "+-" or value[3] != ":":
        return None
    try:
        hours, minutes = int(value[1:3]), int(value[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes > 59:
        return None
    sign = -1 if value[0] == "-" else 1
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def parse_exif_time(text: Any, offset: Any = None) -> tuple[dt.datetime | None, bool]:
    """(aware time, zone assumed?). Without a valid offset the zone is assumed to be China time."""
    try:
        naive = dt.datetime.strptime(str(text).strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, False
    zone = parse_offset(offset)
    if zone is None:
        return naive.replace(tzinfo=CHINA), True
    return naive.replace(tzinfo=zone), False


def gps_status(lat: float | None, lon: float | None) -> str:
    """ok | invalid (out of range, not a number) | no_fix (0/0: what a camera writes without a fix)
    | missing."""
    if lat is None or lon is None:
        return "missing"
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return "invalid"
    if lat == 0 and lon == 0:
        return "no_fix"
    return "ok"


def exif_facts(fh: IO[bytes]) -> dict[str, Any]:
    """Capture time, GPS and camera from the whole file's EXIF (exifread). Never raises."""
    import exifread

    facts: dict[str, Any] = {"readable": True}
    try:
        tags = exifread.process_file(fh, details=False, strict=False)
    except Exception as exc:  # noqa: BLE001 - hostile EXIF must not crash anything
        facts.update(readable=False, error=type(exc).__name__)
        tags = {}
    facts["tag_count"] = len(tags)
    original = tags.get("EXIF DateTimeOriginal")
    offset = tags.get("EXIF OffsetTimeOriginal")
    facts["raw_time"] = str(original) if original is not None else None
    facts["raw_offset"] = str(offset) if offset is not None else None
    facts["modified"] = str(tags["Image DateTime"]) if "Image DateTime" in tags else None
    facts["time"], facts["zone_assumed"] = parse_exif_time(original, offset) if original is not None else (None, False)
    lat, lon = tags.get("GPS GPSLatitude"), tags.get("GPS GPSLongitude")
    if lat is not None and lon is not None:
        facts["lat"] = _dms(getattr(lat, "values", lat), str(tags.get("GPS GPSLatitudeRef", "N")))
        facts["lon"] = _dms(getattr(lon, "values", lon), str(tags.get("GPS GPSLongitudeRef", "E")))
        facts["datum"] = str(tags.get("GPS GPSMapDatum", "WGS-84")).strip().rstrip("\x00").upper() or "WGS-84"
    facts["gps_status"] = gps_status(facts.get("lat"), facts.get("lon"))
    facts["altitude_m"] = _altitude(tags)
    facts["gps_accuracy_m"] = _first_ratio(tags.get("GPS GPSHPositioningError"))
    for key, tag in (("make", "Image Make"), ("model", "Image Model")):
        facts[key] = str(tags[tag]).strip().rstrip("\x00") or None if tag in tags else None
    orientation = tags.get("Image Orientation")
    values = getattr(orientation, "values", None)
    facts["orientation"] = int(values[0]) if values and isinstance(values[0], int) else None
    return facts


def _first_ratio(tag: Any) -> float | None:
    values = getattr(tag, "values", None)
    if not values:
        return None
    try:
        value = _ratio(values[0])
    except (TypeError, AttributeError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def _altitude(tags: dict[str, Any]) -> float | None:
    value = _first_ratio(tags.get("GPS GPSAltitude"))
    if value is None:
        return None
    ref = getattr(tags.get("GPS GPSAltitudeRef"), "values", None)
    return -value if ref and ref[0] == 1 else value


def pillow_time(path: Path) -> str | None:
    """DateTimeOriginal as Pillow reads it (the second reader); None if absent or unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:  # lazy: the header and its EXIF only
            value = image.getexif().get_ifd(0x8769).get(36867)
    except Exception:  # noqa: BLE001 - exifread's facts flag what is wrong
        return None
    return str(value).strip().rstrip("\x00") if value else None


# ---- MP4 / MOV --------------------------------------------------------------------------------

def _boxes(fh: IO[bytes], start: int, end: int) -> Any:
    """(type, payload start, payload end) of the ISO BMFF boxes between start and end."""
    position = start
    while position + 8 <= end:
        fh.seek(position)
        header = fh.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = position + 8
        if size == 1:
            large = fh.read(8)
            if len(large) < 8:
                return
            size, payload = struct.unpack(">Q", large)[0], position + 16
        elif size == 0:
            size = end - position
        if size < payload - position:
            return  # corrupt: a box smaller than its header
        yield kind, payload, min(position + size, end)
        position += size


def video_facts(fh: IO[bytes], size: int) -> dict[str, Any]:
    """Duration and container creation time from the ``moov/mvhd`` box. Never raises."""
    try:
        for kind, start, end in _boxes(fh, 0, size):
            if kind != b"moov":
                continue
            for inner, payload, _ in _boxes(fh, start, end):
                if inner != b"mvhd":
                    continue
                fh.seek(payload)
                version = fh.read(1)[0]
                fh.read(3)
                if version == 1:
                    created, _mod, scale, duration = struct.unpack(">QQIQ", fh.read(28))
                else:
                    created, _mod, scale, duration = struct.unpack(">IIII", fh.read(16))
                facts: dict[str, Any] = {"duration_s": round(duration / scale, 3) if scale else None}
                if created:
                    facts["container_created"] = (MP4_EPOCH + dt.timedelta(seconds=created)).isoformat()
                return facts
    except (struct.error, IndexError, OSError, OverflowError, ValueError):
        return {"readable": False}
    return {}


# ---- what the item shows ----------------------------------------------------------------------

def _position(lat: float, lon: float) -> dict[str, Any]:
    gcj = geo.wgs84_to_gcj02(lat, lon)
    return {"wgs84": {"lat": round(lat, 7), "lon": round(lon, 7)},
            "gcj02": {"lat": round(gcj[0], 7), "lon": round(gcj[1], 7)}}


def exif_position(facts: dict[str, Any]) -> tuple[float, float] | None:
    """The photo's position in WGS-84, only when it is a real fix (never 0/0 or out of range)."""
    if facts.get("gps_status") != "ok":
        return None
    lat, lon = facts["lat"], facts["lon"]
    if "GCJ" in str(facts.get("datum")):
        return geo.gcj02_to_wgs84(lat, lon)
    return lat, lon


def device_position(item: Any) -> tuple[float, float] | None:
    if item.lat is None or item.lon is None:
        return None
    if str(item.manifest.get("coord_system", "wgs84")).lower() == "gcj02":
        return geo.gcj02_to_wgs84(item.lat, item.lon)
    return item.lat, item.lon


def summary(item: Any, facts: dict[str, Any], image: dict[str, Any], video: dict[str, Any]) -> dict[str, Any]:
    """The item's ``media_metadata``: what was read, and where each value came from."""
    exif_time: dt.datetime | None = facts.get("time")
    if exif_time is not None:
        source = "exif_zone_assumed" if facts.get("zone_assumed") else "exif_with_offset"
        capture_time = exif_time
    elif item.captured_at_device is not None:
        source, capture_time = "device", item.captured_at_device
    else:
        source, capture_time = "unknown", None
    gps: dict[str, Any] = {"status": facts.get("gps_status", "missing"), "source": "exif"}
    where = exif_position(facts)
    if where is not None:
        gps.update(_position(*where), datum_in_file=facts.get("datum"), altitude_m=facts.get("altitude_m"),
                   accuracy_m=facts.get("gps_accuracy_m"))
    elif gps["status"] in ("invalid", "no_fix"):
        gps["raw"] = {"lat": facts.get("lat"), "lon": facts.get("lon")}
    device = device_position(item)
    return {
        "capture_time": capture_time.isoformat() if capture_time else None,
        "capture_time_source": source,
        "zone_assumed": "Asia/Shanghai" if source == "exif_zone_assumed" else None,
        "exif_time_raw": facts.get("raw_time"),
        "exif_offset_raw": facts.get("raw_offset"),
        "gps": gps,
        "device_location": ({**_position(*device), "accuracy_m": item.accuracy_m} if device else None),
        "make": facts.get("make"),
        "model": facts.get("model"),
        "orientation": facts.get("orientation"),
        "width": image.get("width"),
        "height": image.get("height"),
        "format": image.get("format"),
        "duration_s": video.get("duration_s"),
    }
