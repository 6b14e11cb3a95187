"""Peak memory of decoding one evidence image (issue 15 item 16: a worker stays under 250 MB).

Each file is inspected in a fresh interpreter that first imports the evidence pipeline (Flask,
SQLAlchemy, Pillow, pillow-heif: what a worker holds), so the peak (VmHWM) is that image's alone
on top of a worker's base. ``..._full_decode`` decodes the same PNG the way the pipeline did
before (no size check before ``load``) for comparison.

    .venv/bin/python bench/evidence_decode_bench.py
"""
from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from PIL import Image

CHILD = """
import re, sys
from pathlib import Path
import server.modules.evidence.pipeline  # noqa: F401 - a worker's imports
from server.modules.evidence import imaging

def hwm():
    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024

base = hwm()
path = Path(sys.argv[1])
if sys.argv[2] == 'full':
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as image:
        image.thumbnail(imaging.THUMBNAIL_SIZE)
    problem = 'decoded'
else:
    result = imaging.inspect_image(path)
    problem = (result.get('problem') or ('thumbnail' if result.get('thumbnail') else 'none',))[0]
print(f'{base:.0f} {hwm():.0f} {problem}')
"""


def png_of(width: int, height: int, path: Path) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    squeeze, row = zlib.compressobj(9), b"\x00" * (1 + 3 * width)
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def measure(path: Path, mode: str = "pipeline") -> tuple[float, float, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True,
                         check=True, timeout=600).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def main() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {"png_120mp": png_of(10_950, 10_950, folder / "a.png"),
                 "png_24mp": png_of(4_900, 4_900, folder / "d.png")}  # the largest PNG decoded (≈ 92 MiB)
        jpeg = folder / "b.jpg"
        Image.new("RGB", (8000, 6000), "gray").save(jpeg, "JPEG", quality=85)  # 48 MP phone photo
        files["jpeg_48mp"] = jpeg
        heic = folder / "c.heic"
        Image.linear_gradient("L").resize((4032, 3024)).convert("RGB").save(heic, "HEIF", quality=80)  # 12 MP
        files["heic_12mp"] = heic
        bases = []
        for name, path in files.items():
            base, peak, outcome = measure(path)
            bases.append(base)
            print(f"evidence_decode_peak_rss_mib_{name}: {peak:.0f} MiB ({outcome}, +{peak - base:.0f} over base)")
        base, peak, _ = measure(files["png_120mp"], "full")
        print(f"evidence_decode_peak_rss_mib_png_120mp_full_decode: {peak:.0f} MiB (+{peak - base:.0f} over base)")
        print(f"evidence_worker_base_rss_mib: {min(bases):.0f} MiB")


if __name__ == "__main__":
    main()
