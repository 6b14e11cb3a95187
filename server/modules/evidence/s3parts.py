"""With S3 storage, an upload's bytes go on to the object store as they arrive (as tusd's S3 store
does): each acknowledged ``UPLOAD_S3_PART_BYTES`` becomes one part of a multipart upload to the
blob's final key, so completion only sends what is left and joins the parts.

The parts sent so far are listed in a small file beside the partial upload
(``<partial>.parts.json``), written under the upload's lock. Only acknowledged bytes are ever
sent, and parts past the acknowledged offset are dropped from the list before a PATCH writes,
so a re-sent chunk replaces its part. The whole-file SHA-256 is checked before the parts are
joined; a rejected, terminated or expired upload aborts its multipart upload.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from flask import current_app

from server.core.storage import S3Store, get_store

log = logging.getLogger(__name__)
MIN_PART = 5 * 1024 * 1024  # S3's smallest part but the last


def _state_path(partial: Path) -> Path:
    return partial.with_suffix(".parts.json")


def _load(partial: Path) -> dict[str, Any] | None:
    try:
        return json.loads(_state_path(partial).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _save(partial: Path, state: dict[str, Any]) -> None:
    tmp = _state_path(partial).with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, _state_path(partial))


def _store() -> S3Store | None:
    store = get_store()
    return store if isinstance(store, S3Store) else None


def part_size() -> int:
    return max(MIN_PART, int(current_app.config["UPLOAD_S3_PART_BYTES"]))


def forget_beyond(partial: Path, acknowledged: int) -> None:
    """Before a PATCH writes at ``acknowledged``: parts past it will be sent again from new bytes."""
    state = _load(partial)
    if state is None:
        return
    size = state["part_size"]
    kept = [p for p in state["parts"] if p["PartNumber"] * size <= acknowledged]
    if len(kept) != len(state["parts"]):
        state["parts"] = kept
        _save(partial, state)


def send_acknowledged(partial: Path, fh: IO[bytes], digest: str, acknowledged: int) -> None:
    """Send every whole part of the acknowledged bytes not sent yet. A failure is logged and left
    for the next PATCH or the completion to retry: the bytes are safe on local disk."""
    store = _store()
    if store is None:
        return
    try:
        _send(store, partial, fh, digest, acknowledged, final=False)
    except Exception:  # noqa: BLE001 - the object store may be down; completion retries
        log.warning("sending parts of %s to S3 failed; completion will retry", partial.name, exc_info=True)


def _send(store: S3Store, partial: Path, fh: IO[bytes], digest: str, end: int, *, final: bool) -> dict[str, Any] | None:
    size = part_size()
    state = _load(partial)
    if state is None:
        if end < size:
            return None  # a small file goes up in one request at completion
        state = {"upload_id": store.begin_parts(digest), "part_size": size, "parts": []}
        _save(partial, state)
    size = state["part_size"]
    while True:
        number = len(state["parts"]) + 1
        start = (number - 1) * size
        stop = min(start + size, end)
        if start >= end or (stop - start < size and not final):
            return state
        state["parts"].append(store.put_part(digest, state["upload_id"], number, fh, start, stop - start))
        _save(partial, state)


def finish(partial: Path, fh: IO[bytes], digest: str, length: int) -> bool:
    """At completion (hash already checked): send the rest and join the parts. False when there
    are no parts (not S3, or a small file): the caller stores the file in one piece."""
    store = _store()
    if store is None or _load(partial) is None and length < part_size():
        return False
    state = _send(store, partial, fh, digest, length, final=True)
    assert state is not None
    store.finish_parts(digest, state["upload_id"], state["parts"])
    _state_path(partial).unlink(missing_ok=True)
    partial.unlink(missing_ok=True)
    return True


def abort(partial: Path, digest: str) -> None:
    """The upload will never complete: drop its parts from the object store."""
    state = _load(partial)
    if state is None:
        return
    store = _store()
    try:
        if store is not None:
            store.abort_parts(digest, state["upload_id"])
    except Exception:  # noqa: BLE001 - a lifecycle rule removes what is left
        log.warning("aborting the S3 parts of %s failed", partial.name, exc_info=True)
    _state_path(partial).unlink(missing_ok=True)
