"""Small real media files made with Pillow (JPEG with EXIF, PNG) for the evidence tests."""
from __future__ import annotations

import io

from PIL import Image


def jpeg_bytes(size: tuple[int, int] = (64, 48), exif: Image.Exif | None = None, color: str = "green") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", exif=exif or Image.Exif())
    return out.getvalue()


def png_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, "PNG")
    return out.getvalue()


def dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    return float(degrees), float(minutes), round((minutes_full - minutes) * 60, 4)


def photo_with_exif(when: str | None, lat: float | None = None, lon: float | None = None,
                    size: tuple[int, int] = (64, 48), datum: str | None = None) -> bytes:
    """A JPEG whose EXIF says when (``YYYY:MM:DD HH:MM:SS``, local time) and where (WGS-84)."""
    exif = Image.Exif()
    exif[0x0110] = "QinlingCam"
    if when:
        exif[0x8769] = {36867: when}
    if lat is not None and lon is not None:
        gps: dict[int, object] = {1: "N", 2: dms(lat), 3: "E", 4: dms(lon)}
        if datum:
            gps[18] = datum
        exif[0x8825] = gps
    return jpeg_bytes(size, exif=exif)


def exif_block(*, when: str | None = None, offset: str | None = None, lat: float | None = None,
               lon: float | None = None, make: str | None = None, model: str | None = None,
               orientation: int | None = None, modified: str | None = None, altitude: float | None = None,
               raw_gps: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None) -> Image.Exif:
    """EXIF as a camera writes it: DateTimeOriginal (+ OffsetTimeOriginal), GPS, Make, Model, Orientation."""
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if orientation:
        exif[0x0112] = orientation
    if modified:
        exif[0x0132] = modified  # DateTime: when the file was last changed, not a capture time
    sub: dict[int, object] = {}
    if when:
        sub[36867] = when
    if offset:
        sub[0x9011] = offset
    if sub:
        exif[0x8769] = sub
    if raw_gps is not None or (lat is not None and lon is not None):
        lat_dms, lon_dms = raw_gps or (dms(abs(lat)), dms(abs(lon)))  # type: ignore[arg-type]
        gps: dict[int, object] = {1: "S" if (lat or 0) < 0 else "N", 2: lat_dms,
                                  3: "W" if (lon or 0) < 0 else "E", 4: lon_dms}
        if altitude is not None:
            gps.update({5: b"\x00", 6: altitude})
        exif[0x8825] = gps
    return exif


def heif_bytes(size: tuple[int, int] = (64, 48), exif: Image.Exif | None = None, noise: bool = False,
               thumbnail_box: int | None = None) -> bytes:
    """A HEIC written by libheif (pillow-heif); with ``noise`` the pixels do not compress, so the
    EXIF item (written after the image data) lies far into the file, as in phone photos."""
    import os

    import pillow_heif

    pillow_heif.register_heif_opener()
    image = (Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)) if noise
             else Image.new("RGB", size, "green"))
    if thumbnail_box:
        image.info["thumbnails"] = [thumbnail_box]  # stored in the file, as phones do
    out = io.BytesIO()
    image.save(out, "HEIF", exif=(exif or Image.Exif()).tobytes(), quality=90)
    return out.getvalue()


def jpeg_with_late_exif(exif: Image.Exif, padding: int = 300 * 1024, size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG whose EXIF (APP1) comes after ``padding`` bytes of comment segments."""
    data = jpeg_bytes(size, exif=exif)
    segment = b"\xff\xfe" + (65533 + 2).to_bytes(2, "big") + b"c" * 65533
    pad = segment * (padding // len(segment) + 1)
    return data[:2] + pad + data[2:]


def mp4_bytes(duration_s: float, timescale: int = 600, moov_last: bool = True) -> bytes:
    """A minimal MP4: ftyp, mdat, and moov with its movie header (mvhd, version 0)."""
    import struct

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    mvhd = box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 3_800_000_000, 3_800_000_000, timescale,
                                                          int(duration_s * timescale)) + b"\x00" * 80)
    parts = [box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41"), box(b"mdat", bytes(range(256)) * 64)]
    moov = box(b"moov", mvhd)
    return b"".join([*parts, moov] if moov_last else [parts[0], moov, parts[1]])
