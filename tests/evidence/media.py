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
