"""Work done on stored bytes after an upload (called by ``tasks``); filled in by later slices."""
from __future__ import annotations


def process_blob(digest: str) -> None:
    return None
