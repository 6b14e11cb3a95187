"""Decoding evidence images with bounded memory, and their thumbnails the right way up.

Pillow decodes JPEG and PNG; pillow-heif (libheif) adds HEIC/HEIF to ``Image.open``. Nothing here
touches process-global state per call: tasks run on several threads, so the pixel limit is
checked against the lazily opened header (``Image.open`` reads no pixels) instead of setting
``Image.MAX_IMAGE_PIXELS``, and no warnings filter is changed. Pillow's own hard ceiling
(``DecompressionBombError`` beyond twice its default limit, about 179 MP) still applies first.

Memory: a decoded image costs width × height × bytes per pixel. JPEG is decoded at a reduced
scale (``draft``: 1/2 … 1/8 in the decoder itself); a HEIF too large is replaced by the
thumbnail stored in the file (pillow-heif's ``draft``; noted on the derivative); any other image whose decoded size exceeds
``EVIDENCE_MAX_DECODE_BYTES`` (96 MiB by default) is not decoded at all and is flagged
``image_not_decoded`` (its metadata is still read). So one image adds at most about that much to
a worker (``bench/evidence_decode_rss.py`` measures it).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context
from PIL import Image, ImageOps

try:  # HEIC/HEIF (iPhones, many Android phones); registering the opener once is idempotent
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - a declared dependency; without it HEIF is undecodable
    pass

THUMBNAIL_SIZE = (320, 320)
DEFAULT_MAX_DECODE_BYTES = 96 * 1024 * 1024
# libheif holds the decoded YCbCr planes and its interleaved copy beside Pillow's buffer: a 12 MP
# HEIC measured 7.2 bytes per pixel at peak (bench/evidence_decode_bench.py).
HEIF_EXTRA_BYTES_PER_PIXEL = 3.5
DEFAULT_MAX_PIXELS = 120_000_000


def _config(name: str, default: int) -> int:
    return int(current_app.config.get(name, default)) if has_app_context() else default


def bytes_per_pixel(mode: str, image_format: str | None = None) -> float:
    """Bytes a decode holds per pixel: Pillow's buffer (1, 2 or 4 bytes), plus libheif's for HEIF."""
    extra = HEIF_EXTRA_BYTES_PER_PIXEL if image_format in ("HEIF", "AVIF") else 0
    if mode in ("1", "L", "P"):
        return 1 + extra
    if mode.startswith("I;16"):
        return 2 + extra
    return 4 + extra  # RGB is stored as RGBX; RGBA, CMYK, YCbCr, LA, I, F are 4 bytes too


def inspect_image(path: Path) -> dict[str, Any]:
    """Pixel size, format and a JPEG thumbnail (EXIF orientation applied), or the problem as a flag.

    Returns ``width``, ``height``, ``format``, ``thumbnail`` (bytes) and, when something was
    wrong, ``problem`` = (flag code, detail). Never raises for anything in the file.
    """
    limit = _config("EVIDENCE_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)
    budget = _config("EVIDENCE_MAX_DECODE_BYTES", DEFAULT_MAX_DECODE_BYTES)
    result: dict[str, Any] = {}
    try:
        with Image.open(path) as image:  # lazy: the header only
            result.update(width=image.width, height=image.height, format=image.format)
            pixels = image.width * image.height
            if pixels > limit:
                result["problem"] = ("image_too_large", {"pixels": pixels, "limit": limit})
                return result
            source = _reduced(image, budget)
            if source is None:
                result["problem"] = ("image_not_decoded", {
                    "pixels": pixels, "mode": image.mode,
                    "decoded_bytes": int(pixels * bytes_per_pixel(image.mode, image.format)),
                    "limit_bytes": budget})
                return result
            if source.info.get("thumbnail_source"):
                result["thumbnail_source"] = source.info["thumbnail_source"]
            result["thumbnail"] = _thumbnail(source)
    except Image.DecompressionBombError as exc:
        result["problem"] = ("image_too_large", {"error": str(exc)[:200], "limit": limit})
    except Image.UnidentifiedImageError:
        result["problem"] = ("image_undecodable", {"size": path.stat().st_size})
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        code = "image_truncated" if "truncated" in str(exc) else "image_corrupt"
        result["problem"] = (code, {"error": str(exc)[:200]})
    except Exception as exc:  # noqa: BLE001 - nothing in a file may crash the pipeline
        result["problem"] = ("image_corrupt", {"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return result


def _reduced(image: Image.Image, budget: int) -> Image.Image | None:
    """The image to decode for a thumbnail within ``budget`` bytes, or None if there is none."""
    if image.format == "JPEG":
        image.draft("RGB", THUMBNAIL_SIZE)  # the decoder itself scales by 1/2, 1/4 or 1/8
    if image.width * image.height * bytes_per_pixel(image.mode, image.format) <= budget:
        return image
    if image.format in ("HEIF", "AVIF"):
        # pillow-heif's draft selects a thumbnail stored in the file, if one is a scaled copy of the
        # image at least as large as the thumbnail we make (phones store one). Only when the image
        # itself is over budget: a stored thumbnail is not proven to show the same pixels.
        if image.draft(image.mode, fitted(image.size, THUMBNAIL_SIZE)) is not None and (
                image.width * image.height * bytes_per_pixel(image.mode, image.format) <= budget):
            image.info["thumbnail_source"] = "embedded"
            return image
    return None


def fitted(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled down to fit in ``box``, as ``Image.thumbnail`` would make it."""
    scale = min(box[0] / size[0], box[1] / size[1], 1.0)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _thumbnail(image: Image.Image) -> bytes:
    """Scale first (cheap on the reduced decode), then turn it upright as its EXIF Orientation says."""
    image.thumbnail(THUMBNAIL_SIZE)
    upright = ImageOps.exif_transpose(image)
    small = upright if upright.mode == "RGB" else upright.convert("RGB")
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()
