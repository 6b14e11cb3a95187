"""Canonical JSON: the exact bytes that are hashed and signed, RFC 8785 (JSON Canonicalization
Scheme, JCS), so that a phone, a browser or a court's verifier in any language reproduces them.

* ``canonical_json`` is RFC 8785 as implemented by the ``rfc8785`` package. Values that hold no
  float, no integer beyond ±(2**53 − 1) and no object key outside the Basic Multilingual Plane
  are encoded by the standard library's C encoder instead: for them JCS and
  ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` give the same bytes
  (same string escapes, code-point key order equals UTF-16 order inside the BMP), which
  ``tests/core/test_canonical.py`` checks against ``rfc8785`` with Hypothesis. A draw document of
  200,000 targets takes 0.3 s this way instead of 2 s.
* ``legacy_canonical_json`` is the form protocol-v1 devices signed before JCS (Python's
  ``json.dumps`` as above): it differs from JCS for floats (``5.0`` against ``5``, ``1e-07``
  against ``1e-7``). Signatures over it are accepted until ``LEGACY_SIGNATURES_END``
  (``signed_forms``); what was accepted before stays verifiable for ever (the package picks the
  form that verifies). It is also the digest of stored sync operations, which must not change.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import rfc8785

# Devices sign RFC 8785 from app 1.5 on; signatures over the legacy form are accepted until this
# instant (a year for every device to update), then refused as not verifying.
LEGACY_SIGNATURES_END = dt.datetime(2027, 12, 31, 16, 0, tzinfo=dt.UTC)  # 2028-01-01 00:00 Beijing time
_SAFE_INT = 2**53 - 1

_legacy = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                           check_circular=False).encode


def _plain(value: Any) -> bool:
    """True if JCS and the sorted standard encoding agree on ``value`` (see the module docstring)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_SAFE_INT <= item <= _SAFE_INT:
                continue
            return False
        if kind is list or kind is tuple:
            stack.extend(item)
        elif kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                    return False
            stack.extend(item.values())
        else:
            return False  # floats, and anything the encoders may treat differently
    return True


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``. Raises ``ValueError`` for what JCS cannot represent (NaN,
    infinities, integers beyond 2**53, non-string keys)."""
    if _plain(value):
        return _legacy(value).encode("utf-8")
    return rfc8785.dumps(value)


def legacy_canonical_json(value: Any) -> bytes:
    """The pre-JCS form (protocol v1 devices; digests of stored sync operations)."""
    return _legacy(value).encode("utf-8")


def signed_forms(value: Any, *, at: dt.datetime | None = None) -> tuple[bytes, ...]:
    """The byte forms a signature over ``value`` is checked against: RFC 8785 first, then the legacy
    form while it is accepted (``at`` before ``LEGACY_SIGNATURES_END``; ``at=None``: a signature
    accepted earlier, checked again, e.g. for a transfer package)."""
    jcs = canonical_json(value)
    if at is not None and at >= LEGACY_SIGNATURES_END:
        return (jcs,)
    legacy = legacy_canonical_json(value)
    return (jcs,) if legacy == jcs else (jcs, legacy)


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


def canonical_object(members: dict[str, bytes]) -> bytes:
    """canonical_json of an object whose member values are given already as canonical JSON (the
    same bytes, without encoding a large member twice). Keys in UTF-16 order, as RFC 8785 sorts."""
    return b"{" + b",".join(canonical_json(key) + b":" + members[key] for key in sorted(members, key=_utf16)) + b"}"
