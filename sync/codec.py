"""Content-Encoding for sync bodies: gzip and zstd, decompressed incrementally under a cap.

Pure functions (no Flask): the device API and the reference client share them. A compressed
body is never inflated in one call, so a few kilobytes that expand to gigabytes (a zip bomb)
stop at ``limit`` + 1 bytes.
"""
from __future__ import annotations

import io
import zlib

import zstandard

ENCODINGS = ("zstd", "gzip")
MIN_COMPRESS = 1024  # smaller bodies are sent as they are


class BodyTooLarge(ValueError):
    """The decompressed body would exceed the limit."""


class UnknownEncoding(ValueError):
    """A Content-Encoding we do not speak."""


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(data) > limit:
            raise BodyTooLarge(len(data))
        return data
    if encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error as exc:
            raise ValueError(f"bad gzip body: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise BodyTooLarge(limit)
        return out
    if encoding == "zstd":
        try:
            chunks, total = [], 0
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
                while chunk := reader.read(65536):
                    total += len(chunk)
                    if total > limit:
                        raise BodyTooLarge(limit)
                    chunks.append(chunk)
        except zstandard.ZstdError as exc:
            raise ValueError(f"bad zstd body: {exc}") from None
        return b"".join(chunks)
    raise UnknownEncoding(encoding)


def choose(accept_encoding: str) -> str | None:
    """The best encoding the client accepts (zstd, then gzip), honouring q=0."""
    offered: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        offered[name.strip().lower()] = q
    for name in ENCODINGS:
        if offered.get(name, 0) > 0:
            return name
    return None


def compress(data: bytes, encoding: str) -> bytes:
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if encoding == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush()
    raise UnknownEncoding(encoding)
