"""``Content-Disposition`` of evidence and document downloads: always an attachment, named with the
extension of its media type, so a browser saves the file instead of rendering it on this origin."""
from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath
from urllib.parse import quote

# Types whose usual extension mimetypes gets wrong or lacks on some systems.
EXTENSIONS = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/heic": ".heic", "image/heif": ".heif", "image/webp": ".webp",
    "image/gif": ".gif", "image/tiff": ".tif", "video/mp4": ".mp4", "video/quicktime": ".mov", "video/3gpp": ".3gp",
    "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/aac": ".aac", "audio/amr": ".amr", "audio/wav": ".wav",
    "audio/x-wav": ".wav", "application/pdf": ".pdf", "application/zip": ".zip", "application/json": ".json",
    "text/plain": ".txt", "text/csv": ".csv", "text/x-python": ".py",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/octet-stream": ".bin",
}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/;]')


def extension(media_type: str) -> str:
    base = media_type.split(";")[0].strip().lower()
    return EXTENSIONS.get(base) or mimetypes.guess_extension(base) or ".bin"


def attachment(name: str, media_type: str) -> str:
    """``attachment; filename="…"`` for ``name``: its extension replaced by the one of ``media_type``
    when it lacks it, an ASCII fallback and the UTF-8 name (RFC 6266) for Chinese file names."""
    ext = extension(media_type)
    name = _UNSAFE.sub("_", PurePosixPath(name.replace("\\", "/")).name) or "download"
    if not name.lower().endswith(ext) and not (ext == ".jpg" and name.lower().endswith(".jpeg")):
        name += ext
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    if ascii_name == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
