"""A SHA-256 whose state can be saved between HTTP requests and server restarts.

hashlib objects cannot be pickled, and an upload's PATCHes may reach different gunicorn
workers, days apart. OpenSSL's low-level ``SHA256_CTX`` is a plain struct (``openssl/sha.h``:
eight state words, the bit count, the 64-byte block buffer, its fill and the digest length;
112 bytes), so its bytes *are* the resumable state: we drive ``SHA256_Init/Update/Final`` from
libcrypto (the same library and SHA-NI speed as ``hashlib``) and store those bytes with each
acknowledged offset.

Guarded, because these functions are deprecated since OpenSSL 3.0 and the struct's layout is
the library build's ABI, not a format:

* the stored state starts with a tag naming the library (``OpenSSL_version_num``, pointer size,
  struct size); a state saved by another libcrypto build is never fed to this one;
* at import, a self-test saves and resumes a state mid-block and compares with ``hashlib``;
  if it fails, or the functions are gone (a libcrypto without the deprecated API), the
  resumable path is off.

Either way the caller falls back to re-hashing the already received prefix once
(``PrefixSha256``): slower for that one PATCH, never wrong. (The ``rehash`` package on PyPI
reads the same kind of memory through CPython's private ``EVP_MD_CTX`` layout, which is no
safer, so it was not taken.)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
from typing import BinaryIO

_CTX_SIZE = 112
_MAGIC = b"QFS2"


def _load() -> tuple[ctypes.CDLL | None, bytes]:
    name = ctypes.util.find_library("crypto")
    if not name:
        return None, b""
    try:
        lib = ctypes.CDLL(name)
        lib.SHA256_Init.argtypes = [ctypes.c_void_p]
        lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        version = int(lib.OpenSSL_version_num())
    except (OSError, AttributeError):
        return None, b""
    tag = _MAGIC + struct.pack(">QBH", version, ctypes.sizeof(ctypes.c_void_p), _CTX_SIZE)
    return lib, tag


_LIB, TAG = _load()


class ResumableSha256:
    """``update()``/``hexdigest()`` like hashlib, plus ``state()`` bytes to resume from."""

    def __init__(self, state: bytes | None = None) -> None:
        if _LIB is None:
            raise RuntimeError("libcrypto's SHA-256 is not available")
        if state is None:
            self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
            _LIB.SHA256_Init(self._ctx)
        else:
            if not compatible(state):
                raise ValueError("not a SHA256_CTX state of this libcrypto")
            self._ctx = ctypes.create_string_buffer(bytes(state[len(TAG):]), _CTX_SIZE)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, bytes):
            _LIB.SHA256_Update(self._ctx, data, len(data))  # type: ignore[union-attr]
            return
        view = memoryview(data)
        if not view.nbytes:
            return
        if view.readonly:
            self.update(view.tobytes())
            return
        buffer = (ctypes.c_char * view.nbytes).from_buffer(view)
        _LIB.SHA256_Update(self._ctx, buffer, view.nbytes)  # type: ignore[union-attr]

    def state(self) -> bytes:
        return TAG + self._ctx.raw

    def hexdigest(self) -> str:
        ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)  # finalising must not spoil our state
        out = ctypes.create_string_buffer(32)
        _LIB.SHA256_Final(out, ctx)  # type: ignore[union-attr]
        return out.raw.hex()


def compatible(state: bytes | None) -> bool:
    """Was this state saved by this very libcrypto build (and is the resumable path on)?"""
    return (AVAILABLE and state is not None and len(state) == len(TAG) + _CTX_SIZE
            and bytes(state[:len(TAG)]) == TAG)


def _self_test() -> bool:
    if _LIB is None:
        return False
    data = bytes(range(256)) * 3 + b"tail"
    try:
        first = ResumableSha256.__new__(ResumableSha256)
        first._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        _LIB.SHA256_Init(first._ctx)
        first.update(data[:101])
        second = ResumableSha256.__new__(ResumableSha256)
        second._ctx = ctypes.create_string_buffer(first._ctx.raw, _CTX_SIZE)
        second.update(bytearray(data[101:]))
        return second.hexdigest() == hashlib.sha256(data).hexdigest()
    except Exception:  # noqa: BLE001 - any surprise switches the resumable path off
        return False


AVAILABLE = _self_test()


class PrefixSha256:
    """Fallback: hashlib, rebuilt by re-reading the received prefix once."""

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

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def state(self) -> bytes | None:
        return None

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def resume(state: bytes | None, fh: BinaryIO, offset: int) -> ResumableSha256 | PrefixSha256:
    """The hash of the first ``offset`` bytes, from the saved state or (fallback) by re-reading them."""
    if AVAILABLE and (offset == 0 or compatible(state)):
        return ResumableSha256(state if offset else None)
    return PrefixSha256(fh, offset)
