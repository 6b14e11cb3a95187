"""Canonical JSON: the exact bytes that are hashed and signed.

Keys sorted by code point, no insignificant whitespace, UTF-8, integers as integers, no NaN or
infinities. For the values we store (strings, integers, booleans, null, decimal floats of
coordinates) this is byte-identical to RFC 8785 (JCS).
"""
from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def canonical_object(members: dict[str, bytes]) -> bytes:
    """canonical_json of an object whose member values are given already as canonical JSON (the
    same bytes, without encoding a large member twice)."""
    return b"{" + b",".join(canonical_json(key) + b":" + members[key] for key in sorted(members)) + b"}"
