"""Evidence operations: announcing signed capture manifests, linking bytes, custody events, flags.

Every custody event is written together with an audit entry in the same transaction
(STYLE rule 4); operations flush, the caller commits.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa
from flask import has_request_context
from sqlalchemy.orm import Session, selectinload

from server.core import errors
from server.core.access import current_principal
from server.core.calendar import to_local_date
from server.core.canonical import canonical_json, signed_forms
from server.core.db import insert_rows, new_uuid, utcnow
from server.modules.audit import operations as audit
from server.modules.devices.models import Device
from server.modules.devices.operations import SignatureBad, verify_signature, verify_with_history
from server.modules.evidence.models import (Blob, CustodyAction, CustodyEvent, DeviceReconnect, EvidenceFlag, EvidenceItem,
                                            EvidenceKind, EvidenceStatus, Upload, UploadStatus)
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionMember
from server.modules.users.models import User

EvidenceNotFound = errors.error_code("evidence.not_found", 404, "证据不存在", "No such evidence item")
ManifestInvalid = errors.error_code("evidence.manifest_invalid", 422, "采集清单字段缺失或格式错误",
                                    "The capture manifest is missing fields or malformed")
ClientIdConflict = errors.error_code("evidence.client_id_conflict", 409, "该采集编号已登记为内容不同的采集清单（或由其他设备登记）",
                                     "This capture id is already registered with a different manifest (or by another device)")
DeviceMismatch = errors.error_code("evidence.device_mismatch", 422, "采集清单由其他设备采集或签名，不能由本设备提交",
                                   "The manifest was captured or signed by another device and cannot be sent by this one")
OutOfScope = errors.error_code("evidence.out_of_scope", 403, "无权访问该证据（不在您的检查任务或职责范围内）",
                               "This evidence is outside your scope (not your inspection or responsibility)")

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


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
    # The item's row lock orders its appends: without it two transactions (a reviewer's view, the
    # upload that verifies the item, the processing task) read the same max(seq) and one fails on
    # the unique (item_id, seq). Held to COMMIT; taken before the audit head (locked at commit).
    # SQLite ignores FOR UPDATE; its one writer at a time gives the same order.
    session.execute(sa.select(EvidenceItem.id).where(EvidenceItem.id == item.id).with_for_update())
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


# ---- the capture manifest: one signed form, announced by sync or directly ----------------------

MANIFEST_REQUIRED = ("id", "sha256", "size", "media_type", "kind")
# Optional text fields and the column each is stored in (its length is checked, never cut).
_MANIFEST_TEXT = {"media_type": 80, "captured_at": 40, "inspection_id": 36, "case_id": 36, "device_id": 36,
                  "step": 60, "certificate_number": 40, "app_version": 40, "acquisition_method": 60}


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


def _validate(manifest: dict[str, Any]) -> str:
    """Check the fields' types and ranges; returns the capture id in its canonical UUID spelling."""
    missing = [name for name in MANIFEST_REQUIRED if manifest.get(name) in (None, "")]
    if missing:
        raise ManifestInvalid(fields={name: ["必填 / required"] for name in missing})
    try:
        client_id = str(uuid.UUID(str(manifest["id"])))
    except ValueError:
        raise ManifestInvalid(fields={"id": ["UUID"]}) from None
    if not isinstance(manifest["sha256"], str) or not SHA256_HEX.match(manifest["sha256"]):
        raise ManifestInvalid(fields={"sha256": ["64 位小写十六进制 / 64 lower-case hex digits"]})
    if not isinstance(manifest["size"], int) or isinstance(manifest["size"], bool) or manifest["size"] < 0:
        raise ManifestInvalid(fields={"size": ["非负整数 / non-negative integer"]})
    if manifest["kind"] not in {k.value for k in EvidenceKind} | {"bodycam"}:
        raise ManifestInvalid(fields={"kind": [", ".join([*(k.value for k in EvidenceKind), "bodycam"])]})
    bad = [name for name, limit in _MANIFEST_TEXT.items()
           if manifest.get(name) is not None and not (isinstance(manifest[name], str) and len(manifest[name]) <= limit)]
    if bad:
        raise ManifestInvalid(fields={name: [f"≤ {_MANIFEST_TEXT[name]} 字符 / characters"] for name in bad})
    second = manifest.get("second_inspector_id")
    if second is not None and (isinstance(second, bool) or not isinstance(second, int) or second <= 0):
        raise ManifestInvalid(fields={"second_inspector_id": ["正整数 / positive integer"]})
    if manifest.get("witness") is not None and not isinstance(manifest["witness"], dict):
        raise ManifestInvalid(fields={"witness": ["JSON 对象 / JSON object"]})
    return client_id


def _kind(value: str) -> EvidenceKind:
    """The sync protocol's ``bodycam`` (执法记录仪) is a video registered by hash before its bytes."""
    return EvidenceKind.VIDEO if value == "bodycam" else EvidenceKind(value)


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """The bytes the device signs: canonical JSON of the manifest without its ``signature`` field."""
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"})


@dataclass
class Capture:
    """A capture manifest that passed validation: what an announced evidence item is made from."""

    client_id: str
    manifest: dict[str, Any]  # every field but ``signature``: exactly what the device signed
    signature: bytes | None
    signature_sent: bool
    signature_valid: bool
    inspection_id: str | None
    kind: EvidenceKind
    captured_at: dt.datetime | None
    clock_flags: list[str] | None = None  # the sync push's device-clock findings (sync ``time_flags``)
    clock_offset_ms: int | None = None  # the offset they were corrected by (sync hello)

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    def same_as(self, item: Any) -> bool:
        """Is a stored item this very capture (a replay), rather than another one reusing its id?"""
        return canonical_json(item.manifest) == canonical_json(self.manifest)


def parse_manifest(manifest: Any, *, device: Device, inspection_id: str | None = None,
                   require_signature: bool = False) -> Capture:
    """Validate a capture manifest (see ``announce``) and check its signature; writes nothing.

    ``require_signature``: the sync push refuses a manifest whose signature is missing or does not
    verify (``device.signature_invalid``), since the pushing device holds the key; the direct
    announce keeps such an item and flags it instead.
    """
    if not isinstance(manifest, dict):
        raise ManifestInvalid("the manifest must be a JSON object")
    client_id = _validate(manifest)
    if manifest.get("device_id") not in (None, device.id):
        raise DeviceMismatch(device_id=manifest.get("device_id"))
    inspection_id = inspection_id or manifest.get("inspection_id")
    if manifest.get("inspection_id") not in (None, inspection_id):
        raise ManifestInvalid(fields={"inspection_id": ["与同步记录不一致 / differs from the synced record"]})
    if not inspection_id and not manifest.get("case_id"):
        raise ManifestInvalid(fields={"inspection_id": ["检查任务或案件必填其一 / an inspection or a case is required"]})
    for field, low, high in (("lat", -90, 90), ("lon", -180, 180), ("accuracy_m", 0, 1e7),
                             ("clock_offset_s", -1e9, 1e9)):
        _number(manifest, field, low, high)
    captured_at = _parse_time(manifest.get("captured_at"), "captured_at")
    raw_sig = manifest.get("signature")
    signature: bytes | None = None
    if raw_sig:
        try:
            signature = base64.b64decode(str(raw_sig), validate=True)
        except (binascii.Error, ValueError):
            signature = None
        if signature is not None and len(signature) != 64:
            signature = None
    # RFC 8785 bytes; the legacy form protocol-v1 apps signed is accepted until LEGACY_SIGNATURES_END
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    # a key retired by a re-enrolment still verifies what was captured while it was the device's
    valid = signature is not None and any(verify_with_history(device, form, signature, signed_at=captured_at)
                                          for form in signed_forms(unsigned, at=utcnow()))
    if require_signature and not valid:
        if raw_sig is None:
            raise ManifestInvalid(fields={"signature": ["必填 / required"]})
        raise SignatureBad(device=device.id)
    return Capture(client_id=client_id, manifest={k: v for k, v in manifest.items() if k != "signature"},
                   signature=signature, signature_sent=raw_sig is not None, signature_valid=valid,
                   inspection_id=inspection_id, kind=_kind(manifest["kind"]), captured_at=captured_at)


def announced(session: Session, client_ids: Iterable[str]) -> dict[str, EvidenceItem]:
    """The items already announced under these capture ids (one query)."""
    wanted = list(dict.fromkeys(client_ids))
    if not wanted:
        return {}
    return {i.client_id: i for i in session.scalars(sa.select(EvidenceItem).where(EvidenceItem.client_id.in_(wanted)))}


def announce(session: Session, *, device: Device, user: User, inspection_id: str | None,
             manifest: dict[str, Any]) -> EvidenceItem:
    """Register a signed capture manifest as an "announced" evidence item (idempotent on its ``id``).

    This is the direct entry point; a device normally sends the same manifest as the sync
    operation ``media_manifest/append`` (``sync/PROTOCOL.md``), which records it through
    ``record_captures`` in the push's transaction. Both take the one signed form:

    The manifest is a JSON object; the device signs ``canonical_json`` (``server.core.canonical``:
    keys sorted, no whitespace, UTF-8) of **all its fields but** ``signature``, so location,
    second inspector and witness are signed too. Fields:

    ``id``              UUID, required: the device's id for the capture; the idempotency key
    ``sha256``          str, required: lower-case hex SHA-256 of the original bytes
    ``size``            int, required: bytes
    ``media_type``      str ≤80, required: declared type (the server sniffs the bytes itself on arrival)
    ``kind``            str, required: photo | video | audio | signature | document (``bodycam`` = video)
    ``inspection_id``   str: the inspection (required unless ``case_id``); must equal the argument
    ``captured_at``     ISO 8601 with offset: capture time by the device clock
    ``clock_offset_s``  number: device clock minus reference time (NTP/server), if the device knows it
    ``lat`` ``lon``     numbers, WGS-84 (as reported by the OS location API); ``accuracy_m`` metres
    ``certificate_number``   capturing inspector's 执法证号 (defaults to the one on the inspection team)
    ``second_inspector_id``  int: the second inspector present (行政处罚法 第42条)
    ``witness``         object: 见证人 (name, id_number, phone…) if any
    ``app_version``     str; ``acquisition_method`` str (app_camera | bodycam_dock | scan | import…)
    ``step``            str: procedure step (check_in, on_site, record…); ``case_id`` str
    ``device_id``       str: optional, the capturing device; must be ``device`` (a relayed manifest is refused)
    ``signature``       base64 Ed25519 signature by ``device``'s registered key

    The same manifest again returns the item already announced; the same ``id`` with any other
    content (or from another device) is ``evidence.client_id_conflict``. A signature that is
    missing or does not verify is not refused here: the item is kept and flagged
    (``signature_missing`` / ``signature_invalid``) so reviewers see it (nothing is hidden).
    Rule: DOMAIN-RULES rule 16 (hash at capture, signed by the device key; linked to case and step).
    """
    capture = parse_manifest(manifest, device=device, inspection_id=inspection_id)
    existing = announced(session, [capture.client_id]).get(capture.client_id)
    if existing is not None:
        if existing.device_id != device.id or not capture.same_as(existing):
            raise ClientIdConflict(client_id=capture.client_id)
        return existing
    if capture.inspection_id:
        inspections.get(session, capture.inspection_id)
    (item_id,) = record_captures(session, device=device, user=user, captures=[capture])
    return get(session, item_id)


# The sync push's ``time_flags`` (``sync.operations.time_flags``) as the item's flags.
CLOCK_FLAGS = {"before_window": "device_time_before_window", "future": "device_time_in_future",
               "before_registration": "device_time_before_registration"}


def record_captures(session: Session, *, device: Device, user: User, captures: list[Capture]) -> list[str]:
    """Announce validated, new captures: the items, their first two custody events (captured on the
    device, announced to the server), their flags and the audit entries, in a few statements for
    a whole sync batch. Returns the new item ids in order. Operations flush; the caller commits.

    The capturing inspector must be on each inspection's team (``evidence.out_of_scope``). A second
    inspector who is not on the team, or who is no known user, is flagged, not refused.
    """
    if not captures:
        return []
    now = utcnow()
    teams: dict[str, list[InspectionMember]] = {}
    inspection_ids = {c.inspection_id for c in captures if c.inspection_id}
    if inspection_ids:
        for member in session.scalars(sa.select(InspectionMember).where(
                InspectionMember.inspection_id.in_(inspection_ids), InspectionMember.removed_at.is_(None))):
            teams.setdefault(member.inspection_id, []).append(member)
    for capture in captures:
        if capture.inspection_id and not any(m.user_id == user.id for m in teams.get(capture.inspection_id, [])):
            raise OutOfScope("the capturing inspector is not on this inspection's team",
                             inspection_id=capture.inspection_id)
    seconds = {c.manifest["second_inspector_id"] for c in captures if c.manifest.get("second_inspector_id")}
    known = set(session.scalars(sa.select(User.id).where(User.id.in_(seconds)))) if seconds else set()

    device_actor = audit.Actor("device", device.id)
    items: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for capture in captures:
        m = capture.manifest
        team = teams.get(capture.inspection_id or "", [])
        member = next((t for t in team if t.user_id == user.id), None)
        second = m.get("second_inspector_id")
        acquisition = m.get("acquisition_method") or ("bodycam_dock" if m["kind"] == "bodycam" else "app_camera")
        item = {
            "id": new_uuid(), "client_id": capture.client_id, "sha256": capture.sha256, "size": m["size"],
            "media_type": m["media_type"], "kind": capture.kind, "status": EvidenceStatus.ANNOUNCED,
            "blob_sha256": None, "inspection_id": capture.inspection_id, "case_id": m.get("case_id"),
            "step": m.get("step"), "captured_by": user.id,
            "certificate_number": m.get("certificate_number") or (member.certificate_number if member else None),
            "second_inspector_id": second if second in known else None, "witness": m.get("witness"),
            "device_id": device.id, "app_version": m.get("app_version") or device.app_version,
            "acquisition_method": acquisition, "captured_at_device": capture.captured_at,
            "device_clock_offset_s": _number(m, "clock_offset_s", -1e9, 1e9), "received_at": now,
            "verified_at": None, "lat": _number(m, "lat", -90, 90), "lon": _number(m, "lon", -180, 180),
            "accuracy_m": _number(m, "accuracy_m", 0, 1e7), "manifest": m, "signature": capture.signature,
            "signature_valid": capture.signature_valid, "parent_id": None, "derivation": None,
            "custodian_id": user.id, "retention_until": None}
        items.append(item)
        subjects: list[tuple[str, Any]] = [("evidence", item["id"])]
        subjects += [("inspection", capture.inspection_id)] if capture.inspection_id else []
        subjects += [("case", m["case_id"])] if m.get("case_id") else []
        captured_at = capture.captured_at if capture.captured_at and capture.captured_at <= now else now
        for seq, (action, at, detail) in enumerate((
                (CustodyAction.CAPTURED, captured_at, {
                    "claimed_time": m.get("captured_at"), "inspector": user.id,
                    "second_inspector": item["second_inspector_id"], "device": device.id,
                    "acquisition_method": acquisition}),
                (CustodyAction.ANNOUNCED, now, {
                    "signature_valid": capture.signature_valid, "client_id": capture.client_id,
                    "kind": capture.kind.value})), start=1):
            events.append({"item_id": item["id"], "seq": seq, "action": action.value, "at": at,
                           "actor_kind": device_actor.kind, "actor_id": device_actor.id, "sha256": capture.sha256,
                           "detail": detail})
            audit.record(session, f"evidence:item:{action.value}", subjects=subjects, actor=device_actor,
                         payload={"seq": seq, "sha256": capture.sha256, **detail})
        found: list[tuple[str, dict[str, Any]]] = []
        if not capture.signature_sent:
            found.append(("signature_missing", {}))
        elif not capture.signature_valid:
            found.append(("signature_invalid", {"device": device.id}))
        if second is None and capture.kind is not EvidenceKind.SIGNATURE:
            found.append(("second_inspector_missing", {}))
        elif second is not None and second not in known:
            found.append(("second_inspector_unknown", {"second_inspector": second}))
        elif second is not None and capture.inspection_id and not any(t.user_id == second for t in team):
            found.append(("second_inspector_not_on_team", {"second_inspector": second}))
        for clock_flag in capture.clock_flags or ():
            found.append((CLOCK_FLAGS.get(clock_flag, f"device_time_{clock_flag}"), {
                "sync_flag": clock_flag, "device_time": m.get("captured_at"),
                "clock_offset_ms": capture.clock_offset_ms}))
        for code, detail in found:
            flags.append({"item_id": item["id"], "code": code, "detail": detail, "raised_at": now})
            audit.record(session, "evidence:item:flagged", subjects={"evidence": item["id"]}, actor=device_actor,
                         payload={"code": code, **detail})
    session.flush()  # the ORM's pending rows (the inspection, the user) go first
    session.execute(EvidenceItem.__table__.insert(), items)
    insert_rows(session, CustodyEvent.__table__, events)
    insert_rows(session, EvidenceFlag.__table__, flags)

    blobs = {b.sha256: b for b in session.scalars(sa.select(Blob).where(
        Blob.sha256.in_({c.sha256 for c in captures})))}
    for row in items:
        if row["sha256"] in blobs:  # the bytes came first
            link_blob(session, get(session, row["id"]), blobs[row["sha256"]])
    return [row["id"] for row in items]


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
    from server.core.tasks import send_after_commit
    from server.modules.evidence import tasks

    send_after_commit(session, tasks.process_blob, blob.sha256)


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

LAST_SEEN_RESOLUTION = dt.timedelta(minutes=1)

def note_contact(session: Session, device: Device, *, source: str = "request", at: dt.datetime | None = None,
                 ) -> DeviceReconnect | None:
    """A request from ``device``: after ``RECONNECT_GAP_HOURS`` of silence (or an explicit client
    report of regained connectivity) it starts the 1-working-day upload clock of rule 16."""
    from flask import current_app

    at = at or utcnow()
    gap = dt.timedelta(hours=current_app.config["RECONNECT_GAP_HOURS"])
    previous = device.last_seen_at
    if source != "client_report" and previous is not None and at - previous < gap:
        if at - previous >= LAST_SEEN_RESOLUTION:
            device.last_seen_at = at
        return None  # within a minute: no write at all, so a run of PATCHes costs no extra commits
    device.last_seen_at = at
    row = DeviceReconnect(device_id=device.id, at=at, source=source,
                          gap_s=int((at - previous).total_seconds()) if previous else None)
    session.add(row)
    session.flush()
    return row


# ---- access by role and scope; every access is a custody event ------------------------------------

def require_access(session: Session, principal: Any, item: EvidenceItem) -> None:
    """Who may see an original: the inspection's team and the capturer, supervisors of the
    responsible unit, legal reviewers and admins (DOMAIN-RULES rule 16: "superiors and the
    justice bureau may retrieve recordings"; access is permission-scoped and logged).
    Prosecutors and police get access only through a transferred case (a later issue)."""
    role = principal.role
    if role in ("admin", "legal_reviewer"):
        return
    if principal.kind == "user" and role in ("inspector", "auxiliary", "supervisor"):
        if item.captured_by == principal.user_id:
            return
        if item.inspection_id:
            inspection = inspections.get(session, item.inspection_id)
            if role == "supervisor" and inspection.unit_id == principal.unit_id:
                return
            if inspections.is_member(inspection, principal.user_id):
                return
    raise OutOfScope(evidence=item.id)


def visible_items(session: Session, principal: Any, inspection_id: str) -> list[EvidenceItem]:
    """Originals of one inspection (derivatives are listed with their parent)."""
    inspection = inspections.get(session, inspection_id)
    if principal.role not in ("admin", "legal_reviewer"):
        inspections.require_visible(session, principal, inspection)
    return list(session.scalars(sa.select(EvidenceItem).where(
        EvidenceItem.inspection_id == inspection_id, EvidenceItem.parent_id.is_(None))
        .order_by(EvidenceItem.received_at, EvidenceItem.id)))


def history(session: Session, item: EvidenceItem) -> list[CustodyEvent]:
    return list(session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == item.id)
                                .order_by(CustodyEvent.seq)))


def derivatives(session: Session, item: EvidenceItem) -> list[EvidenceItem]:
    return list(session.scalars(sa.select(EvidenceItem).where(EvidenceItem.parent_id == item.id)
                                .order_by(EvidenceItem.received_at)))


def record_view(session: Session, item: EvidenceItem, *, purpose: str | None = None) -> CustodyEvent:
    return custody(session, item, CustodyAction.VIEWED, detail={"what": "metadata", "purpose": purpose})


def record_download(session: Session, item: EvidenceItem, *, purpose: str | None = None) -> CustodyEvent:
    """Before the original is streamed: who, when, which bytes (the hash is that of the stored blob)."""
    if item.status is not EvidenceStatus.VERIFIED or item.blob_sha256 is None:
        raise NotArrived(status=item.status.value)
    return custody(session, item, CustodyAction.DOWNLOADED, sha256=item.blob_sha256,
                   detail={"what": "original", "purpose": purpose})


NotArrived = errors.error_code("evidence.not_arrived", 409, "证据文件尚未上传或已删除", "The evidence bytes have not arrived or were deleted")


# ---- derivatives ---------------------------------------------------------------------------------

def derive(session: Session, parent: EvidenceItem, blob: Blob, derivation: Any, *, tool: str,
           detail: dict[str, Any] | None = None) -> EvidenceItem:
    """A working copy (thumbnail, clip, redaction) is a new item pointing to its original, with both
    hashes in the custody events of both; the original is never changed (Berkeley Protocol)."""
    client_id = f"{derivation.value}:{parent.id}:{blob.sha256[:16]}"
    existing = session.scalar(sa.select(EvidenceItem).where(EvidenceItem.client_id == client_id))
    if existing is not None:
        return existing
    info = {"parent": parent.id, "parent_sha256": parent.sha256, "sha256": blob.sha256,
            "operation": derivation.value, "tool": tool, **(detail or {})}
    child = EvidenceItem(
        client_id=client_id, sha256=blob.sha256, size=blob.size, media_type=blob.media_type, kind=parent.kind,
        status=EvidenceStatus.VERIFIED, blob_sha256=blob.sha256, inspection_id=parent.inspection_id,
        case_id=parent.case_id, step=parent.step, captured_by=parent.captured_by,
        certificate_number=parent.certificate_number, second_inspector_id=parent.second_inspector_id,
        device_id=None, acquisition_method=f"derived:{derivation.value}", manifest=info, signature=None,
        signature_valid=False, parent_id=parent.id, derivation=derivation, verified_at=utcnow(),
        custodian_id=parent.custodian_id)
    session.add(child)
    session.flush()
    custody(session, child, CustodyAction.DERIVED, sha256=blob.sha256, detail={"from": parent.id, **info})
    custody(session, parent, CustodyAction.DERIVED, sha256=parent.sha256, detail={"to": child.id, **info})
    return child


# ---- hand-over of custody, signed by both sides ---------------------------------------------------

HandoverInvalid = errors.error_code("evidence.handover_invalid", 422, "移交双方签名或确认无效",
                                    "The hand-over signatures or confirmations are not valid")
HandoverNotFound = errors.error_code("evidence.handover_not_found", 404, "移交记录不存在", "No such hand-over")


def handover_statement(item: EvidenceItem, *, from_user_id: int, to_user_id: int, purpose: str,
                       location: str | None, physical_media: str | None, at: str) -> bytes:
    """The bytes both parties sign for a device-signed hand-over (canonical JSON)."""
    return canonical_json({"evidence": item.id, "sha256": item.sha256, "from": from_user_id, "to": to_user_id,
                           "purpose": purpose, "location": location, "physical_media": physical_media, "at": at,
                           "type": "qinling-field/custody-handover/v1"})


def _party_device(session: Session, device_id: str | None, user_id: int) -> Device:
    device = session.get(Device, device_id) if device_id else None
    if device is None or device.user_id != user_id or device.revoked_at is not None:
        raise HandoverInvalid(f"device {device_id} is not an active device of user {user_id}")
    return device


def hand_over(session: Session, item: EvidenceItem, *, from_user: User, to_user: User, purpose: str,
              location: str | None = None, physical_media: str | None = None,
              signatures: dict[str, Any] | None = None) -> Any:
    """Start (staff confirmation) or record (two device signatures) a hand-over of custody.

    Design: a hand-over binds both people. Either both sign ``handover_statement`` with their
    registered device keys (field hand-over of an SD card, offline) and it is recorded at once, or
    the releasing person starts it signed in and it is recorded only when the receiving person
    confirms it signed in (``confirm_handover``). Rule: custody records name releaser and
    receiver with both signatures (NIST chain-of-custody form; 两高一部 电子数据规定 2016).
    """
    from server.modules.evidence.models import Handover

    if from_user.id == to_user.id:
        raise HandoverInvalid("releasing and receiving person must differ")
    handover = Handover(item_id=item.id, from_user_id=from_user.id, to_user_id=to_user.id, purpose=purpose,
                        location=location, physical_media=physical_media,
                        method="device_signatures" if signatures else "staff_confirmation")
    if signatures:
        at = str(signatures.get("at") or "")
        message = handover_statement(item, from_user_id=from_user.id, to_user_id=to_user.id, purpose=purpose,
                                     location=location, physical_media=physical_media, at=at)
        parties = []
        for side, user in (("from", from_user), ("to", to_user)):
            device = _party_device(session, signatures.get(f"{side}_device_id"), user.id)
            try:
                signature = base64.b64decode(str(signatures.get(f"{side}_signature") or ""), validate=True)
            except (binascii.Error, ValueError):
                signature = b""
            if len(signature) != 64 or not verify_signature(device, message, signature):
                raise HandoverInvalid(f"the {side} signature does not verify", side=side)
            parties.append((device, signature))
        handover.from_device_id, handover.from_signature = parties[0][0].id, parties[0][1]
        handover.to_device_id, handover.to_signature = parties[1][0].id, parties[1][1]
        session.add(handover)
        session.flush()
        _complete_handover(session, item, handover, statement_at=at)
        return handover
    session.add(handover)
    session.flush()
    audit.record(session, "evidence:handover:initiated", subjects={"evidence": item.id, "user": to_user.id},
                 payload={"handover": handover.id, "from": from_user.id, "to": to_user.id, "purpose": purpose})
    return handover


def confirm_handover(session: Session, handover_id: str, *, by: User) -> Any:
    from server.modules.evidence.models import Handover, HandoverStatus

    handover = session.get(Handover, handover_id)
    if handover is None:
        raise HandoverNotFound()
    if handover.to_user_id != by.id:
        raise errors.Forbidden("only the receiving person confirms a hand-over")
    if handover.status is HandoverStatus.CONFIRMED:
        return handover
    _complete_handover(session, get(session, handover.item_id), handover, statement_at=None)
    return handover


def _complete_handover(session: Session, item: EvidenceItem, handover: Any, *, statement_at: str | None) -> None:
    from server.modules.evidence.models import HandoverStatus

    handover.status = HandoverStatus.CONFIRMED
    handover.confirmed_at = utcnow()
    item.custodian_id = handover.to_user_id
    session.flush()
    detail = {"handover": handover.id, "from": handover.from_user_id, "to": handover.to_user_id,
              "purpose": handover.purpose, "location": handover.location,
              "physical_media": handover.physical_media, "method": handover.method}
    if handover.method == "device_signatures":
        detail.update({"statement_at": statement_at, "from_device": handover.from_device_id,
                       "to_device": handover.to_device_id,
                       "from_signature": base64.b64encode(handover.from_signature).decode(),
                       "to_signature": base64.b64encode(handover.to_signature).decode()})
    else:
        detail.update({"initiated_at": handover.initiated_at.isoformat(),
                       "confirmed_at": handover.confirmed_at.isoformat()})
    custody(session, item, CustodyAction.HANDED_OVER, sha256=item.blob_sha256 or item.sha256, detail=detail)


# ---- which bytes the server still needs ----------------------------------------------------------

UPLOAD_ORDER = ("signature", "document", "photo", "audio", "unknown", "video")
UPLOAD_ORDER_NOTE = ("Upload in this order: records and their hashes are synced first; then signatures and "
                     "documents, photos, audio, unannounced files, and video last; smaller first within a kind. "
                     "先同步记录与哈希，再传签名与文书、照片、录音，视频最后。")


def missing(session: Session, hashes: list[str]) -> list[str]:
    """The hashes whose bytes the server does not hold yet, in the order a device should upload them.
    Refused bytes are not asked for again (``refused`` says why)."""
    wanted = list(dict.fromkeys(hashes))
    have = set(session.scalars(sa.select(Blob.sha256).where(Blob.sha256.in_(wanted)))) if wanted else set()
    from server.modules.evidence.refusals import refused

    have |= set(refused(session, [h for h in wanted if h not in have]))  # asking again would be refused again
    needed = [h for h in wanted if h not in have]
    known = {row.sha256: row for row in session.scalars(
        sa.select(EvidenceItem).where(EvidenceItem.sha256.in_(needed)))} if needed else {}

    def rank(digest: str) -> tuple[int, int]:
        item = known.get(digest)
        kind = item.kind.value if item else "unknown"
        return UPLOAD_ORDER.index(kind), item.size if item else 0

    return sorted(needed, key=rank)


# ---- upload clock: overdue evidence (DOMAIN-RULES rule 16) ------------------------------------------

def overdue(session: Session, principal: Any, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Announced items whose bytes did not arrive within 1 working day of the device regaining
    connectivity (rule 16: "upload within 1 working day of storage becoming available"). The clock
    starts at the first reconnect after capture, or at the manifest's arrival, whichever is first."""
    from server.core.calendar import CHINA

    now = now or utcnow()
    query = (sa.select(EvidenceItem).where(EvidenceItem.status == EvidenceStatus.ANNOUNCED,
                                           EvidenceItem.device_id.is_not(None))
             .order_by(EvidenceItem.received_at))
    if principal.role != "admin":
        query = query.join(Inspection, Inspection.id == EvidenceItem.inspection_id).where(
            Inspection.unit_id == principal.unit_id)
    result = []
    for item in session.scalars(query):
        start, due = upload_clock(session, item)
        if now.astimezone(CHINA).date() > due:
            result.append({"item": item, "reconnected_at": start, "due": due})
    return result


def upload_clock(session: Session, item: EvidenceItem) -> tuple[dt.datetime, dt.date]:
    """When an announced item's upload clock started and the day its bytes are due (rule 16: 1
    working day from the first reconnect after capture, or from the manifest's arrival if earlier)."""
    from server.core.calendar import CHINA, get_calendar

    since = item.captured_at_device or item.received_at
    reconnect = session.scalar(sa.select(sa.func.min(DeviceReconnect.at)).where(
        DeviceReconnect.device_id == item.device_id, DeviceReconnect.at >= since)) if item.device_id else None
    start = min(t for t in (reconnect, item.received_at) if t is not None)
    return start, get_calendar().add_working_days(start.astimezone(CHINA).date(), 1)


def awaiting_bytes(user_id: int | None) -> sa.Select[tuple[EvidenceItem]]:
    """Originals the person captured whose bytes have not arrived: announced by their phone, which
    still has to upload them. Oldest first."""
    return (sa.select(EvidenceItem)
            .where(EvidenceItem.captured_by == user_id, EvidenceItem.status == EvidenceStatus.ANNOUNCED,
                   EvidenceItem.parent_id.is_(None))
            .order_by(EvidenceItem.received_at, EvidenceItem.id))


def flagged(user_id: int | None) -> sa.Select[tuple[EvidenceItem]]:
    """The person's captures with at least one plausibility or integrity flag, newest first."""
    return (sa.select(EvidenceItem)
            .where(EvidenceItem.captured_by == user_id, EvidenceItem.status != EvidenceStatus.DELETED,
                   EvidenceItem.parent_id.is_(None), EvidenceItem.id.in_(sa.select(EvidenceFlag.item_id)))
            .options(selectinload(EvidenceItem.flags))
            .order_by(EvidenceItem.received_at.desc(), EvidenceItem.id))


def upload_progress(session: Session, hashes: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(bytes received, bytes in all) of the upload in progress for each of these hashes, if any."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return {}
    rows = session.execute(sa.select(Upload.sha256, Upload.upload_offset, Upload.upload_length).where(
        Upload.sha256.in_(wanted), Upload.status == UploadStatus.ACTIVE).order_by(Upload.created_at))
    return {digest: (offset, length) for digest, offset, length in rows}


# ---- fixity and retention ------------------------------------------------------------------------

def fixity_check(session: Session, blob: Blob) -> bool:
    """Re-hash stored bytes; a mismatch or a missing blob raises an alert (row + audit entry)."""
    import hashlib

    from server.core.storage import get_store
    from server.modules.evidence.models import FixityAlert

    h = hashlib.sha256()
    problem, found = None, None
    try:
        for block in get_store().iter_chunks(blob.sha256):
            h.update(block)
        found = h.hexdigest()
        if found != blob.sha256:
            problem = "mismatch"
    except (FileNotFoundError, KeyError):
        problem = "missing"
    except Exception as exc:  # noqa: BLE001 - S3 NoSuchKey and friends
        if "NoSuchKey" not in repr(exc) and "404" not in repr(exc):
            raise
        problem = "missing"
    blob.last_fixity_at = utcnow()
    blob.fixity_ok = problem is None
    if problem:
        session.add(FixityAlert(sha256=blob.sha256, problem=problem, found_sha256=found))
        audit.record(session, "system:evidence:fixity_failed", subjects={"blob": blob.sha256},
                     payload={"problem": problem, "found_sha256": found}, actor=audit.system("evidence.fixity"))
        # reviewers read the item, not the alert list: every item on these bytes shows it
        for item in session.scalars(sa.select(EvidenceItem).where(EvidenceItem.blob_sha256 == blob.sha256)
                                    .order_by(EvidenceItem.id)):
            flag(session, item, f"fixity_{problem}", stored_as=blob.sha256, found_sha256=found)
    session.flush()
    return problem is None


DeletionRefused = errors.error_code("evidence.deletion_refused", 409, "未到保存期限或审批不合规，不能删除证据",
                                    "The retention period has not ended or the approval is not valid; the evidence cannot be deleted")


def retention_until(item: EvidenceItem) -> dt.date:
    """The last day of the retention period, counted from the Beijing date of capture (or receipt):
    ``EVIDENCE_RETENTION_YEARS``, the bureau's setting, at least as long as the case file is kept."""
    from flask import current_app

    years = current_app.config["EVIDENCE_RETENTION_YEARS"]
    start = to_local_date(item.captured_at_device or item.received_at)
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February
        return start.replace(year=start.year + years, day=28)


def request_deletion(session: Session, item: EvidenceItem, *, by: User, reason: str) -> Any:
    """Retention policy: evidence is kept ``EVIDENCE_RETENTION_YEARS`` after capture (at least as long
    as the case file, rule 16); after that a supervisor may request deletion and an admin other than
    the requester approves it (four eyes). Nothing else deletes evidence."""
    from server.modules.evidence.models import DeletionRequest

    if item.status is EvidenceStatus.DELETED:
        raise DeletionRefused("already deleted")
    request = DeletionRequest(item_id=item.id, requested_by=by.id, reason=reason)
    session.add(request)
    session.flush()
    audit.record(session, "evidence:deletion:requested", subjects={"evidence": item.id},
                 payload={"request": request.id, "reason": reason, "retention_until": retention_until(item).isoformat()})
    return request


def approve_deletion(session: Session, request_id: int, *, by: User, today: dt.date | None = None) -> Any:
    from server.core.calendar import local_today
    from server.core.storage import get_store
    from server.modules.evidence.models import DeletionRequest

    request = session.get(DeletionRequest, request_id)
    if request is None or request.approved_at is not None:
        raise DeletionRefused("no open deletion request with this id")
    if request.requested_by == by.id:
        raise DeletionRefused("the requester cannot approve their own request")
    item = get(session, request.item_id)
    until = retention_until(item)
    if (today or local_today()) < until:
        raise DeletionRefused(f"retention runs until {until.isoformat()}", retention_until=until.isoformat())
    request.approved_by, request.approved_at = by.id, utcnow()
    item.status = EvidenceStatus.DELETED
    session.flush()
    custody(session, item, CustodyAction.DELETED, sha256=item.blob_sha256 or item.sha256,
            detail={"request": request.id, "requested_by": request.requested_by, "approved_by": by.id,
                    "reason": request.reason})
    if item.blob_sha256:
        still_used = session.scalar(sa.select(sa.func.count()).select_from(EvidenceItem).where(
            EvidenceItem.blob_sha256 == item.blob_sha256, EvidenceItem.status != EvidenceStatus.DELETED))
        if not still_used:
            get_store().delete(item.blob_sha256)
    return request


def fixity_alerts(session: Session) -> list[Any]:
    from server.modules.evidence.models import FixityAlert

    return list(session.scalars(sa.select(FixityAlert).order_by(FixityAlert.id.desc()).limit(500)))


def chunk_proof(session: Session, item: EvidenceItem, start: int, end: int) -> dict[str, Any]:
    """Proof for the chunks holding bytes [start, end) of the original. The leaves are recomputed
    from the stored bytes (about 1 s per GiB) and must give the root stored at upload time."""
    from server.core.storage import get_store
    from server.modules.evidence import chunks

    if item.blob is None or item.status is not EvidenceStatus.VERIFIED:
        raise NotArrived(status=item.status.value)
    if end > item.blob.size or start >= end:
        raise errors.ValidationFailed(fields={"end": [f"0 <= start < end <= {item.blob.size}"]})
    size = item.blob.merkle_chunk_size or chunks.CHUNK_SIZE
    leaf_hashes = chunks.leaves(get_store().iter_chunks(item.blob.sha256), size)
    proof = chunks.prove_range(leaf_hashes, start, end, size)
    if item.blob.merkle_root and proof["root"] != item.blob.merkle_root:
        fixity_check(session, item.blob)
        raise NotArrived("stored bytes no longer match their chunk tree; a fixity alert was raised")
    custody(session, item, CustodyAction.EXPORTED, sha256=item.blob.sha256,
            detail={"what": "chunk_proof", "start": start, "end": end})
    return {"sha256": item.blob.sha256, **proof}
