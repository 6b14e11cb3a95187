"""Refused bytes: the evidence item says why, and the device stops retrying (issue 15 item 11).

A file the upload refuses (its content is not an accepted format, it has too many pixels, or it
is not the file its manifest announced) marks the capturing device's announced item
``rejected`` with the reason: a custody event, a flag and the audit entry in the upload's
transaction. ``media/missing`` then lists it under ``rejected`` instead of asking for it again,
and the team's devices pull the manifest again with the reason (``sync/PROTOCOL.md`` §4.2).
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.db import utcnow
from server.modules.evidence.models import CustodyAction, EvidenceItem, EvidenceStatus
from server.modules.evidence.operations import _jsonable, custody, flag

ManifestHashMismatch = errors.error_code(
    "evidence.manifest_hash_mismatch", 422, "文件的 SHA-256 与该采集清单登记的哈希不符，未形成证据",
    "The file's SHA-256 differs from the hash its capture manifest registered; it is not evidence")


def manifest_for_upload(session: Session, metadata: dict[str, str], device_id: str) -> EvidenceItem | None:
    """The announced item an upload names in ``Upload-Metadata`` (``capture_id``, the manifest's
    ``id``), if it names one of this device's captures."""
    capture_id = (metadata.get("capture_id") or "").strip()
    if not capture_id:
        return None
    item = session.scalar(sa.select(EvidenceItem).where(EvidenceItem.client_id == capture_id))
    return item if item is not None and item.device_id == device_id else None


def reject_upload(session: Session, *, device_id: str, problem: errors.DomainError, sha256: str,
                  upload_id: str | None = None, capture_id: str | None = None) -> list[EvidenceItem]:
    """Bytes sent for this device's announced items (by hash, or named by ``capture_id``) were
    refused: each item becomes ``rejected`` with the reason (custody event, flag, audit entry), so
    ``media/missing`` stops asking for them and the team's devices pull the reason. Only the
    capturing device's own items: another device cannot get someone's capture rejected."""
    query = sa.select(EvidenceItem).where(EvidenceItem.status == EvidenceStatus.ANNOUNCED,
                                          EvidenceItem.device_id == device_id)
    named = EvidenceItem.client_id == capture_id if capture_id else sa.false()
    items = list(session.scalars(query.where(sa.or_(EvidenceItem.sha256 == sha256, named))))
    now = utcnow()
    for item in items:
        item.status = EvidenceStatus.REJECTED
        item.rejection = _jsonable({"code": problem.code, "message_zh": problem.message_zh,
                                    "message_en": problem.message_en, "detail": problem.context,
                                    "upload": upload_id, "at": now})
        session.flush()
        custody(session, item, CustodyAction.REJECTED, detail={"code": problem.code, "upload": upload_id})
        flag(session, item, "upload_rejected", **{"reason": problem.code, **problem.context})
        _tell_team(session, item)
    return items


def _tell_team(session: Session, item: EvidenceItem) -> None:
    """The team's devices pull the rejection as an upsert of the manifest they hold (PROTOCOL §4.1)."""
    from server.modules.sync import changes
    from server.modules.sync.models import MediaManifest

    row = session.get(MediaManifest, item.client_id)
    if row is None or not item.inspection_id:
        return  # announced directly, not synced: the device learns it from media/missing
    from server.modules.sync.operations import iso

    data = {c.key: getattr(row, c.key) for c in MediaManifest.__table__.columns if c.key != "op_id"}
    data = {k: iso(v) if isinstance(v, dt.datetime) else v.value if isinstance(v, enum.Enum) else v
            for k, v in data.items()}  # as the append was pulled
    data.update(status=item.status.value, rejection=item.rejection)
    changes.emit(session, inspection_id=item.inspection_id, entity="media_manifest", entity_id=row.id,
                 op="upsert", data=data)


def refused(session: Session, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The hashes whose bytes were refused, with the reason (those no announced item still awaits)."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return {}
    rows = session.scalars(sa.select(EvidenceItem).where(
        EvidenceItem.sha256.in_(wanted), EvidenceItem.status.in_([EvidenceStatus.REJECTED, EvidenceStatus.ANNOUNCED]))
        .order_by(EvidenceItem.received_at))
    result: dict[str, dict[str, Any]] = {}
    awaited: set[str] = set()
    for item in rows:
        if item.status is EvidenceStatus.ANNOUNCED:
            awaited.add(item.sha256)
        elif item.rejection:
            result[item.sha256] = {"sha256": item.sha256, "capture_id": item.client_id, **item.rejection}
    return {digest: reason for digest, reason in result.items() if digest not in awaited}
