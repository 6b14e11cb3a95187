"""Evidence operations: announcing signed capture manifests, linking bytes, custody events, flags.

Every custody event is written together with an audit entry in the same transaction
(STYLE rule 4); operations flush, the caller commits.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from flask import has_request_context
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import current_principal
from server.core.canonical import canonical_json
from server.core.db import utcnow
from server.modules.audit import operations as audit
from server.modules.devices.models import Device
from server.modules.devices.operations import verify_signature
from server.modules.evidence.models import (Blob, CustodyAction, CustodyEvent, DeviceReconnect, EvidenceFlag, EvidenceItem,
                                            EvidenceKind, EvidenceStatus)
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionMember
from server.modules.users.models import User

EvidenceNotFound = errors.error_code("evidence.not_found", 404, "证据不存在", "No such evidence item")
ManifestInvalid = errors.error_code("evidence.manifest_invalid", 422, "采集清单字段缺失或格式错误",
                                    "The capture manifest is missing fields or malformed")
ClientIdConflict = errors.error_code("evidence.client_id_conflict", 409, "该采集编号已登记为不同的文件（哈希不同）",
                                     "This capture id is already registered with different bytes (another hash)")
DeviceMismatch = errors.error_code("evidence.device_mismatch", 422, "采集清单由其他设备采集或签名，不能由本设备提交",
                                   "The manifest was captured or signed by another device and cannot be sent by this one")
OutOfScope = errors.error_code("evidence.out_of_scope", 403, "无权访问该证据（不在您的检查任务或职责范围内）",
                               "This evidence is outside your scope (not your inspection or responsibility)")

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MANIFEST_REQUIRED = ("client_id", "sha256", "size", "media_type", "kind")


# ---- custody and flags -------------------------------------------------------------------------

def _actor() -> audit.Actor:
    if has_request_context():
        return audit.Actor.of(current_principal())
    return audit.system("evidence")


def custody(session: Session, item: EvidenceItem, action: CustodyAction, *, detail: dict[str, Any] | None = None,
            sha256: str | None = None, actor: audit.Actor | None = None, at: dt.datetime | None = None,
            ) -> CustodyEvent:
    """Append one custody event to the item's chain and the matching audit entry (same transaction)."""
    actor = actor or _actor()
    session.flush()
    last = session.scalar(sa.select(sa.func.max(CustodyEvent.seq)).where(CustodyEvent.item_id == item.id)) or 0
    event = CustodyEvent(item_id=item.id, seq=last + 1, action=action, at=at or utcnow(), actor_kind=actor.kind,
                         actor_id=actor.id, sha256=sha256 or item.sha256, detail=detail or {})
    session.add(event)
    session.flush()
    subjects: list[tuple[str, Any]] = [("evidence", item.id)]
    if item.inspection_id:
        subjects.append(("inspection", item.inspection_id))
    if item.case_id:
        subjects.append(("case", item.case_id))
    audit.record(session, f"evidence:item:{action.value}", subjects=subjects, actor=actor,
                 payload={"seq": event.seq, "sha256": event.sha256, **(detail or {})})
    return event


def flag(session: Session, item: EvidenceItem, code: str, **detail: Any) -> EvidenceFlag | None:
    """Raise a finding on an item (once per code). Flags are shown, never hidden or cleared."""
    existing = session.scalar(sa.select(EvidenceFlag).where(EvidenceFlag.item_id == item.id, EvidenceFlag.code == code))
    if existing is not None:
        return None
    row = EvidenceFlag(item_id=item.id, code=code, detail=_jsonable(detail))
    session.add(row)
    session.flush()
    audit.record(session, "evidence:item:flagged", subjects={"evidence": item.id}, payload={"code": code, **row.detail})
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


# ---- announce ----------------------------------------------------------------------------------

def _parse_time(value: Any, field: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ManifestInvalid(fields={field: ["ISO 8601 时间（含时区）/ ISO 8601 time with offset"]}) from None
    if parsed.tzinfo is None:
        raise ManifestInvalid(fields={field: ["须含时区 / needs a UTC offset"]})
    return parsed.astimezone(dt.UTC)


def _number(manifest: dict[str, Any], field: str, low: float, high: float) -> float | None:
    value = manifest.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ManifestInvalid(fields={field: [f"{low}..{high}"]})
    return float(value)


def _validate(manifest: dict[str, Any]) -> None:
    missing = [name for name in MANIFEST_REQUIRED if manifest.get(name) in (None, "")]
    if missing:
        raise ManifestInvalid(fields={name: ["必填 / required"] for name in missing})
    if not isinstance(manifest["sha256"], str) or not SHA256_HEX.match(manifest["sha256"]):
        raise ManifestInvalid(fields={"sha256": ["64 位小写十六进制 / 64 lower-case hex digits"]})
    if not isinstance(manifest["size"], int) or isinstance(manifest["size"], bool) or manifest["size"] < 0:
        raise ManifestInvalid(fields={"size": ["非负整数 / non-negative integer"]})
    if manifest["kind"] not in {k.value for k in EvidenceKind}:
        raise ManifestInvalid(fields={"kind": [", ".join(k.value for k in EvidenceKind)]})
    if not isinstance(manifest["client_id"], str) or len(manifest["client_id"]) > 64:
        raise ManifestInvalid(fields={"client_id": ["≤ 64 字符 / at most 64 characters"]})


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """The bytes the device signs: canonical JSON of the manifest without its ``signature`` field."""
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"})


def announce(session: Session, *, device: Device, user: User, inspection_id: str | None,
             manifest: dict[str, Any]) -> EvidenceItem:
    """Register a synced capture manifest as an "announced" evidence item (idempotent on ``client_id``).

    Manifest fields (JSON object; the device signs ``canonical_json`` of all fields but ``signature``):

    ``client_id``       str ≤64, required: the device's id for the capture (a UUID); the idempotency key
    ``sha256``          str, required: lower-case hex SHA-256 of the original bytes
    ``size``            int, required: bytes
    ``media_type``      str, required: declared type (the server sniffs the bytes itself on arrival)
    ``kind``            str, required: photo | video | audio | signature | document
    ``captured_at``     ISO 8601 with offset: capture time by the device clock
    ``clock_offset_s``  number: device clock minus reference time (NTP/server), if the device knows it
    ``lat`` ``lon``     numbers, WGS-84 (as reported by the OS location API); ``accuracy_m`` metres
    ``certificate_number``   capturing inspector's 执法证号 (defaults to the one on the inspection team)
    ``second_inspector_id``  int: the second inspector present (行政处罚法 第42条)
    ``witness``         object: 见证人 (name, id_number, phone…) if any
    ``app_version``     str; ``acquisition_method`` str (app_camera | bodycam_dock | scan | import…)
    ``step``            str: procedure step (check_in, on_site, record…); ``case_id`` str (future cases)
    ``inspection_id``   str: optional, must equal the argument when both are given
    ``device_id``       str: optional, the capturing device; must be ``device`` (a relayed manifest is refused)
    ``signature``       base64 Ed25519 signature by ``device``'s registered key

    A signature that is missing or does not verify is not refused: the item is kept and flagged
    (``signature_missing`` / ``signature_invalid``) so reviewers see it (nothing is hidden).
    Rule: DOMAIN-RULES rule 16 (hash at capture, signed by the device key; linked to case and step).
    """
    if not isinstance(manifest, dict):
        raise ManifestInvalid("manifest must be an object")
    _validate(manifest)
    if manifest.get("device_id") not in (None, device.id):
        raise DeviceMismatch(device_id=manifest.get("device_id"))
    inspection_id = inspection_id or manifest.get("inspection_id")
    if manifest.get("inspection_id") not in (None, inspection_id):
        raise ManifestInvalid(fields={"inspection_id": ["与同步记录不一致 / differs from the synced record"]})

    existing = session.scalar(sa.select(EvidenceItem).where(EvidenceItem.client_id == manifest["client_id"]))
    if existing is not None:
        if existing.sha256 != manifest["sha256"] or existing.device_id != device.id:
            raise ClientIdConflict(client_id=manifest["client_id"])
        return existing

    inspection: Inspection | None = None
    member: InspectionMember | None = None
    if inspection_id:
        inspection = inspections.get(session, inspection_id)
        member = next((m for m in inspection.members if m.user_id == user.id), None)
        if member is None:
            raise OutOfScope("the capturing inspector is not on this inspection's team")
    elif not manifest.get("case_id"):
        raise ManifestInvalid(fields={"inspection_id": ["检查任务或案件必填其一 / an inspection or a case is required"]})

    signature: bytes | None = None
    signature_valid = False
    raw_sig = manifest.get("signature")
    if raw_sig:
        try:
            signature = base64.b64decode(str(raw_sig), validate=True)
        except (binascii.Error, ValueError):
            signature = None
        if signature is not None and len(signature) == 64:
            signature_valid = verify_signature(device, signed_bytes(manifest), signature)
        elif signature is not None:
            signature = None

    second = manifest.get("second_inspector_id")
    item = EvidenceItem(
        client_id=manifest["client_id"], sha256=manifest["sha256"], size=manifest["size"],
        media_type=str(manifest["media_type"])[:80], kind=EvidenceKind(manifest["kind"]),
        inspection_id=inspection.id if inspection else None, case_id=manifest.get("case_id"),
        step=manifest.get("step"), captured_by=user.id,
        certificate_number=manifest.get("certificate_number") or (member.certificate_number if member else None),
        second_inspector_id=second if isinstance(second, int) and not isinstance(second, bool) else None,
        witness=manifest.get("witness") if isinstance(manifest.get("witness"), dict) else None,
        device_id=device.id, app_version=manifest.get("app_version") or device.app_version,
        acquisition_method=str(manifest.get("acquisition_method") or "app_camera")[:60],
        captured_at_device=_parse_time(manifest.get("captured_at"), "captured_at"),
        device_clock_offset_s=_number(manifest, "clock_offset_s", -1e9, 1e9),
        lat=_number(manifest, "lat", -90, 90), lon=_number(manifest, "lon", -180, 180),
        accuracy_m=_number(manifest, "accuracy_m", 0, 1e7),
        manifest={k: v for k, v in manifest.items() if k != "signature"},
        signature=signature, signature_valid=signature_valid, custodian_id=user.id,
    )
    session.add(item)
    session.flush()
    device_actor = audit.Actor("device", device.id)
    custody(session, item, CustodyAction.CAPTURED, actor=device_actor,
            at=item.captured_at_device if item.captured_at_device and item.captured_at_device <= utcnow() else None,
            detail={"claimed_time": manifest.get("captured_at"), "inspector": user.id,
                    "second_inspector": item.second_inspector_id, "device": device.id,
                    "acquisition_method": item.acquisition_method})
    custody(session, item, CustodyAction.ANNOUNCED, actor=device_actor,
            detail={"signature_valid": signature_valid, "client_id": item.client_id, "kind": item.kind.value})
    if raw_sig is None:
        flag(session, item, "signature_missing")
    elif not signature_valid:
        flag(session, item, "signature_invalid", device=device.id)
    if item.second_inspector_id is None and item.kind is not EvidenceKind.SIGNATURE:
        flag(session, item, "second_inspector_missing")
    elif inspection is not None and item.second_inspector_id is not None and not any(
            m.user_id == item.second_inspector_id for m in inspection.members):
        flag(session, item, "second_inspector_not_on_team", second_inspector=item.second_inspector_id)

    blob = session.get(Blob, item.sha256)
    if blob is not None:  # the bytes came first
        link_blob(session, item, blob)
    return item


def link_blob(session: Session, item: EvidenceItem, blob: Blob, *, upload_id: str | None = None) -> None:
    """Matching bytes are stored: the announced item becomes verified (receipt + verification events)."""
    if item.status is not EvidenceStatus.ANNOUNCED:
        return
    custody(session, item, CustodyAction.RECEIVED, sha256=blob.sha256,
            detail={"size": blob.size, "media_type": blob.media_type, "upload": upload_id})
    item.blob_sha256 = blob.sha256
    item.status = EvidenceStatus.VERIFIED
    item.verified_at = utcnow()
    session.flush()
    custody(session, item, CustodyAction.VERIFIED, sha256=blob.sha256,
            detail={"manifest_sha256": item.sha256, "match": True})
    if blob.size != item.size:
        flag(session, item, "size_differs_from_manifest", manifest=item.size, stored=blob.size)
    if not _type_matches(item.kind, blob.media_type):
        flag(session, item, "type_differs_from_kind", kind=item.kind.value, sniffed=blob.media_type)


def _type_matches(kind: EvidenceKind, media_type: str) -> bool:
    family = media_type.split("/")[0]
    return {
        EvidenceKind.PHOTO: family == "image",
        EvidenceKind.VIDEO: family == "video",
        EvidenceKind.AUDIO: family == "audio",
        EvidenceKind.SIGNATURE: family == "image" or media_type == "application/pdf",
        EvidenceKind.DOCUMENT: True,
    }[kind]


def get(session: Session, item_id: str) -> EvidenceItem:
    item = session.get(EvidenceItem, item_id)
    if item is None:
        raise EvidenceNotFound()
    return item


# ---- upload clock (DOMAIN-RULES rule 16) ---------------------------------------------------------

def note_contact(session: Session, device: Device, *, source: str = "request", at: dt.datetime | None = None,
                 ) -> DeviceReconnect | None:
    """A request from ``device``: after ``RECONNECT_GAP_HOURS`` of silence (or an explicit client
    report of regained connectivity) it starts the 1-working-day upload clock of rule 16."""
    from flask import current_app

    at = at or utcnow()
    gap = dt.timedelta(hours=current_app.config["RECONNECT_GAP_HOURS"])
    previous = device.last_seen_at
    device.last_seen_at = at
    if source != "client_report" and previous is not None and at - previous < gap:
        return None
    row = DeviceReconnect(device_id=device.id, at=at, source=source,
                          gap_s=int((at - previous).total_seconds()) if previous else None)
    session.add(row)
    session.flush()
    return row
