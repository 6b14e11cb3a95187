"""A SHA-256 whose state can be saved between HTTP requests and server restarts.

hashlib objects cannot be pickled, and an upload's PATCHes may reach different gunicorn
workers, days apart. OpenSSL's low-level ``SHA256_CTX`` is a plain public struct
(``openssl/sha.h``: eight state words, the bit count, the 64-byte block buffer, its fill and
the digest length; 112 bytes), so its bytes *are* the resumable state: we drive
``SHA256_Init/Update/Final`` from libcrypto (the same library and SHA-NI speed as ``hashlib``)
and store those bytes with each acknowledged offset. If libcrypto cannot be loaded the caller
falls back to re-hashing the already received prefix once (``from_prefix``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from typing import BinaryIO

_CTX_SIZE = 112


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.SHA256_Init.argtypes = [ctypes.c_void_p]
        lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load()
AVAILABLE = _LIB is not None


class ResumableSha256:
    """``update()``/``hexdigest()`` like hashlib, plus ``state()`` bytes to resume from."""

    def __init__(self, state: bytes | None = None) -> None:
        if _LIB is None:
            raise RuntimeError("libcrypto is not available")
        if state is None:
            self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
            _LIB.SHA256_Init(self._ctx)
        else:
            if len(state) != _CTX_SIZE:
                raise ValueError("not a SHA256_CTX state")
            self._ctx = ctypes.create_string_buffer(bytes(state), _CTX_SIZE)

    def update(self, data: bytes) -> None:
        _LIB.SHA256_Update(self._ctx, bytes(data) if not isinstance(data, bytes) else data, len(data))  # type: ignore[union-attr]

    def state(self) -> bytes:
        return self._ctx.raw

    def hexdigest(self) -> str:
        ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)  # finalising must not spoil our state
        out = ctypes.create_string_buffer(32)
        _LIB.SHA256_Final(out, ctx)  # type: ignore[union-attr]
        return out.raw.hex()


class PrefixSha256:
    """Fallback without libcrypto: hashlib, rebuilt by re-reading the received prefix once."""

    def __init__(self, fh: BinaryIO | None = None, length: int = 0) -> None:
        self._h = hashlib.sha256()
        if fh is not None:
            fh.seek(0)
            remaining = length
            while remaining:
                block = fh.read(min(remaining, 1 << 20))
                if not block:
                    raise ValueError("partial file is shorter than its acknowledged offset")
                self._h.update(block)
                remaining -= len(block)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def state(self) -> bytes | None:
        return None

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def resume(state: bytes | None, fh: BinaryIO, offset: int) -> ResumableSha256 | PrefixSha256:
    """The hash of the first ``offset`` bytes, from the saved state or (fallback) by re-reading them."""
    if AVAILABLE and (state is not None or offset == 0):
        return ResumableSha256(state)
    return PrefixSha256(fh, offset)
