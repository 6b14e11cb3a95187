"""What the bytes are, from their magic numbers: never trust the file name or the declared type."""
from __future__ import annotations

# (offset, magic, media type); ISO BMFF (MP4/MOV/HEIC) is decided by its brand below.
_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"#!AMR", "audio/amr"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
]
_BRANDS = {
    b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif",
    b"avif": "image/avif",
    b"qt  ": "video/quicktime",
    b"isom": "video/mp4", b"iso2": "video/mp4", b"mp41": "video/mp4", b"mp42": "video/mp4",
    b"avc1": "video/mp4", b"dash": "video/mp4", b"3gp4": "video/3gpp", b"3gp5": "video/3gpp",
    b"M4A ": "audio/mp4", b"M4V ": "video/mp4",
}
ACCEPTED = frozenset({"image/jpeg", "image/png", "image/heic", "image/heif", "image/avif", "video/mp4",
                      "video/quicktime", "video/3gpp", "audio/mp4", "audio/amr", "audio/mpeg", "audio/ogg",
                      "audio/wav", "application/pdf"})
HEADER_BYTES = 64


def sniff(head: bytes) -> str:
    """Media type from the first bytes, or ``application/octet-stream`` when unknown."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _BRANDS.get(head[8:12], "application/octet-stream")
    if len(head) >= 12 and head[:4] == b"RIFF":
        return {b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo", b"WEBP": "image/webp"}.get(
            head[8:12], "application/octet-stream")
    for offset, magic, media_type in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return media_type
    return "application/octet-stream"
