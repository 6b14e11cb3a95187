"""Offline sync: push (exactly once), pull (scoped cursor), package, handshake, conflicts, health.

The protocol is described in ``sync/PROTOCOL.md``. Operations flush; the view commits once.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from server.core import errors
from server.core.access import Principal, Role
from server.core.calendar import CHINA
from server.core.canonical import canonical_json, legacy_canonical_json
from server.core.db import insert_rows, utcnow
from server.modules.audit import operations as audit
from server.modules.devices.models import Device
from server.modules.cases import operations as cases
from server.modules.directory.models import Target
from server.modules.evidence import operations as evidence
from server.modules.inspections.models import Inspection, InspectionMember, InspectionStatus
from server.modules.inspections.operations import InspectionNotFound, InvalidState
from server.modules.sync import changes
from server.modules.sync.models import (CheckIn, ConflictStatus, DocumentNumber, DocumentNumberCounter,
                                        InspectionNote, InspectionRecord, InspectionRecordVersion,
                                        MediaManifest, SyncChange, SyncConflict, SyncDevice,
                                        SyncHead, SyncOperation)
from server.modules.users.models import Unit, User
from sync import merge

PROTOCOL_VERSION = 1
MAX_OPS = 1000  # per push request
# A device's seq may run at most this far beyond its acknowledged (gap-free) seq: an outbox holds
# far fewer unacknowledged operations, and a number beyond would leave a gap that never closes.
SEQ_WINDOW = 100_000
MAX_PAGE = 5000
DEFAULT_PAGE = 1000
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
DOCUMENT_BLOCK = 10
DOCUMENT_KIND = "on_site_decision"  # 当场行政处罚决定书
RECORD_NAMESPACE = uuid.UUID("6f1c2a4e-5b0d-4c55-9a51-7e2f3c1d9b10")

CursorInvalid = errors.error_code("sync.cursor_invalid", 400, "同步游标无法识别", "The sync cursor is not recognised")
CursorExpired = errors.error_code(
    "sync.cursor_expired", 410, "同步游标已过期，请重新下载离线包（本机未上传的记录会保留）",
    "The cursor is too old to serve; download the offline package again (unpushed local changes are kept)")
DeviceMismatch = errors.error_code("sync.device_mismatch", 403, "请求中的设备编号与令牌不符",
                                   "The device id in the request is not the token's device")
BatchTooLarge = errors.error_code("sync.batch_too_large", 413, "一次上传的操作过多，请分批",
                                  "Too many operations in one push; split the batch")
UnsupportedEncoding = errors.error_code("sync.unsupported_encoding", 415, "不支持的压缩格式（支持 gzip、zstd）",
                                        "Unsupported Content-Encoding (gzip and zstd are supported)")
Malformed = errors.error_code("sync.malformed_operation", 422, "操作格式错误", "The operation is malformed")
UnknownEntity = errors.error_code("sync.unknown_entity", 422, "未知的同步对象类型或动作",
                                  "Unknown entity type or action")
NotAssigned = errors.error_code("sync.not_assigned", 403, "本设备的执法人员未被指派该检查任务",
                                "The device's inspector is not assigned to this inspection")
SequenceReused = errors.error_code("sync.sequence_reused", 409, "设备序号已被另一操作使用",
                                   "This device sequence number was already used by another operation")
OperationReused = errors.error_code("sync.operation_reused", 409, "操作编号已被内容不同的操作使用",
                                    "This operation id was already used with different content")
UnknownField = errors.error_code("sync.unknown_field", 422, "笔录模板中没有该字段",
                                 "The record template has no such field")
FieldType = errors.error_code("sync.field_type", 422, "字段取值类型与笔录模板不符",
                              "A field value does not have the type the record template gives it")
SequenceOutOfRange = errors.error_code(
    "sync.sequence_out_of_range", 422, "设备序号超出允许范围（最多比已确认的序号大 100000）",
    "The device sequence number is more than 100,000 beyond the device's acknowledged one")
UnknownTemplate = errors.error_code("sync.unknown_template", 422, "未知的笔录模板", "Unknown record template")
BaseUnknown = errors.error_code("sync.base_version_unknown", 409, "基准版本在服务器上不存在，请先同步",
                                "The base version does not exist on the server; pull first")
InspectionClosed = errors.error_code("sync.inspection_closed", 409, "检查任务已撤销，不再接受记录",
                                     "The inspection was cancelled and takes no more records")
DocumentNumberUnknown = errors.error_code("sync.document_number_unknown", 404, "该文书编号未分配给本设备",
                                          "This document number was not allocated to this device")
DocumentNumberUsed = errors.error_code("sync.document_number_used", 409, "该文书编号已被使用",
                                       "This document number has already been used")
ItemIdConflict = errors.error_code(
    "sync.item_id_conflict", 409, "该编号已登记为内容不同的记录（或由其他设备登记），新内容未保存",
    "This id is already stored with different content (or by another device); the new content was not stored")


# ---- time -----------------------------------------------------------------------------------

def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(fields={name: ["ISO 8601 时间 / ISO 8601 time"]}) from None
    if parsed.tzinfo is None:
        raise Malformed(fields={name: ["须带时区 / needs a time zone"]})
    return parsed.astimezone(dt.UTC)


def time_flags(device_time: dt.datetime | None, *, now: dt.datetime, offset_ms: int | None,
               window_start: dt.date | None, registered_at: dt.datetime | None) -> list[str] | None:
    """Implausible device times, after correcting by the measured clock offset. Flags only:
    ordering never uses device time."""
    if device_time is None:
        return None
    corrected = device_time - dt.timedelta(milliseconds=offset_ms or 0)
    flags = []
    if corrected > now + FUTURE_TOLERANCE:
        flags.append("future")
    if window_start is not None and corrected < dt.datetime.combine(window_start, dt.time(), CHINA):
        flags.append("before_window")
    if registered_at is not None and corrected < registered_at - FUTURE_TOLERANCE:
        flags.append("before_registration")
    return flags or None


# ---- templates --------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    """Record templates and checklists, shipped as data in the offline package."""
    return json.loads((Path(__file__).parent / "templates.json").read_text(encoding="utf-8"))


def template(code: str) -> dict[str, Any]:
    for item in catalogue()["templates"]:
        if item["code"] == code:
            return item
    raise UnknownTemplate(fields={"template": [code]})


def _check_value(spec: dict[str, Any], value: Any) -> bool:
    if value is None:
        return True  # clearing a field is always allowed
    kind = spec["type"]
    if kind in ("string", "text"):
        return isinstance(value, str) and len(value) <= spec.get("max_length", 20000)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "datetime":
        try:
            return isinstance(value, str) and dt.datetime.fromisoformat(value.replace("Z", "+00:00")) is not None
        except ValueError:
            return False
    if kind == "object":
        return isinstance(value, dict)
    if kind == "sha256":
        return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    return False


def record_id(inspection_id: str, template_code: str) -> str:
    """Deterministic: every device computes the same id offline."""
    return str(uuid.uuid5(RECORD_NAMESPACE, f"{inspection_id}/{template_code}"))


# ---- cursor -----------------------------------------------------------------------------------

def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"v{PROTOCOL_VERSION}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int:
    if not text:
        return 0
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, _, seq = raw.partition(":")
        if version != f"v{PROTOCOL_VERSION}":
            raise ValueError(version)
        value = int(seq)
        if value < 0:
            raise ValueError(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise CursorInvalid() from None
    return value


# ---- device state and handshake -------------------------------------------------------------

def _upsert_ignore(session: Session, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on both databases."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())


def device_state(session: Session, device_id: str, *, lock: bool = False) -> SyncDevice:
    """The device's sync row; ``lock`` serialises pushes of one device (SELECT … FOR UPDATE)."""
    _upsert_ignore(session, SyncDevice.__table__, {"device_id": device_id, "acked_seq": 0, "max_seq": 0})
    query = sa.select(SyncDevice).where(SyncDevice.device_id == device_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one()


def _report(state: SyncDevice, report: dict[str, Any] | None, now: dt.datetime) -> None:
    state.last_contact_at = now
    for key in ("outbox_depth", "pending_media_bytes", "app_version"):
        if report and report.get(key) is not None:
            setattr(state, key, report[key])


def handshake(session: Session, device: Device, *, client_time: dt.datetime, received_at: dt.datetime,
              previous: dict[str, Any] | None = None, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """NTP-style clock exchange. The device sends t0; the server answers t1 (receive) and t2 (send);
    the device computes offset = ((t1 − t0) + (t2 − t3)) / 2 and round trip = (t3 − t0) − (t2 − t1),
    and reports them with its next request (``previous``). Until then the server keeps the one-way
    estimate t0 − t1, which is off by at most the one-way latency."""
    state = device_state(session, device.id)
    _report(state, report, received_at)
    if previous and previous.get("offset_ms") is not None:
        state.clock_offset_ms = int(previous["offset_ms"])
        state.clock_rtt_ms = previous.get("rtt_ms")
    else:
        state.clock_offset_ms = int((client_time - received_at).total_seconds() * 1000)
        state.clock_rtt_ms = None
    state.clock_measured_at = received_at
    session.flush()
    head = session.get(SyncHead, 1)
    assert head is not None
    return {"protocol": PROTOCOL_VERSION, "device_id": device.id, "client_time": iso(client_time),
            "server_receive": iso(received_at), "server_send": iso(utcnow()),
            "offset_estimate_ms": state.clock_offset_ms, "acked_seq": state.acked_seq,
            "max_seq": state.max_seq, "head": encode_cursor(head.last_seq)}


# ---- push -------------------------------------------------------------------------------------

@dataclass
class Item:
    index: int
    raw: dict[str, Any]
    op_id: str = ""
    seq: int = 0
    entity: str = ""
    action: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    inspection_id: str | None = None
    device_time: dt.datetime | None = None
    digest: str = ""
    result: dict[str, Any] | None = None
    store: bool = True  # False when the op id or seq cannot be recorded (malformed, reused)
    replayed: bool = False  # already stored: the first result is returned again
    capture: evidence.Capture | None = None  # a media manifest, validated


@dataclass
class Context:
    session: Session
    device: Device
    user: User
    state: SyncDevice
    now: dt.datetime
    inspections: dict[str, Inspection] = field(default_factory=dict)
    # The records the batch edits, locked once; per record, its versions from ``versions_from`` on.
    records: dict[str, InspectionRecord] = field(default_factory=dict)
    versions: dict[str, dict[int, tuple[dict[str, Any], list[str], str | None]]] = field(default_factory=dict)
    versions_from: dict[str, int] = field(default_factory=dict)


def _rejected(item: Item, error: errors.DomainError) -> dict[str, Any]:
    return {"index": item.index, "op_id": item.op_id or None, "seq": item.seq or None, "status": "rejected",
            "error": error.as_dict()}


def _parse(index: int, raw: Any) -> Item:
    if not isinstance(raw, dict):
        item = Item(index, {}, store=False)
        item.result = _rejected(item, Malformed("an operation is a JSON object"))
        return item
    item = Item(index, raw)
    try:
        item.op_id = str(uuid.UUID(str(raw.get("op_id"))))
    except ValueError:
        item.store = False
        item.result = _rejected(item, Malformed(fields={"op_id": ["UUID"]}))
        return item
    seq = raw.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**62:
        item.store = False
        item.result = _rejected(item, Malformed(fields={"seq": ["正整数 / positive integer"]}))
        return item
    item.seq = seq
    item.entity, item.action = str(raw.get("entity", "")), str(raw.get("action", ""))
    # the digest stored operations were first answered with: a replay must compare equal, so its form never changes
    try:
        item.digest = hashlib.sha256(legacy_canonical_json(raw)).hexdigest()
    except ValueError:  # NaN or Infinity, which Python's JSON parser lets through
        item.store = False
        item.result = _rejected(item, Malformed("NaN and Infinity are not JSON numbers"))
        return item
    data = raw.get("data")
    try:
        if not isinstance(data, dict):
            raise Malformed(fields={"data": ["JSON 对象 / JSON object"]})
        item.data = data
        item.device_time = parse_time(raw.get("device_time"), "device_time")
        if (item.entity, item.action) not in HANDLERS:
            raise UnknownEntity(entity=item.entity, action=item.action)
        inspection_id = data.get("inspection_id")
        if not isinstance(inspection_id, str) or len(inspection_id) > 36:
            raise Malformed(fields={"data.inspection_id": ["必填 / required"]})
        item.inspection_id = inspection_id
    except errors.DomainError as exc:
        item.result = _rejected(item, exc)
    return item


def push(session: Session, device: Device, ops: list[Any], *, report: dict[str, Any] | None = None,
         now: dt.datetime | None = None) -> dict[str, Any]:
    """Apply a batch exactly once. Each item is applied in its own SAVEPOINT, so one bad item
    is rejected alone; every stored item keeps its first result, which a replay gets back."""
    if len(ops) > MAX_OPS:
        raise BatchTooLarge(limit=MAX_OPS, got=len(ops))
    session = changes.real_session(session)
    now = now or utcnow()
    state = device_state(session, device.id, lock=True)
    _report(state, report, now)
    ctx = Context(session, device, device.user, state, now)
    items = [_parse(i, raw) for i, raw in enumerate(ops)]
    # Duplicates within the batch itself: the first occurrence wins, the others replay it.
    first_of: dict[str, Item] = {}
    echoes: list[tuple[Item, Item]] = []
    for item in items:
        if item.store and item.op_id in first_of:
            echoes.append((item, first_of[item.op_id]))
            item.store = False
        elif item.op_id:
            first_of.setdefault(item.op_id, item)

    _replays(ctx, [i for i in items if i.store])
    _seq_reuse(ctx, [i for i in items if i.store])
    _seq_range(ctx, [i for i in items if i.store])
    live = [i for i in items if i.store and i.result is None]
    _load_scope(ctx, live)
    appendable = [i for i in live if HANDLERS[(i.entity, i.action)].bulk]
    _apply_bulk(ctx, appendable)
    _apply_singles(ctx, [i for i in live if i.result is None])

    fresh = [i for i in items if i.store]
    if fresh:
        insert_rows(session, SyncOperation.__table__, [{
            "op_id": i.op_id, "device_id": device.id, "device_seq": i.seq, "entity": i.entity[:40],
            "action": i.action[:20], "inspection_id": i.inspection_id, "digest": i.digest,
            "status": i.result["status"],
            "result": json.dumps(i.result, ensure_ascii=False, separators=(",", ":")),
            "device_time": i.device_time, "received_at": now} for i in fresh])
    for echo, original in echoes:
        if echo.digest != original.digest:
            echo.result = _rejected(echo, OperationReused())
        else:  # a duplicated delivery inside the batch: the first one's result, at this position
            assert original.result is not None
            echo.result = {**original.result, "index": echo.index}
            echo.replayed = True
    gaps = _advance(ctx, [i.seq for i in fresh])
    return {"results": [i.result for i in items], "device": gaps, "server_time": iso(utcnow()),
            "replayed": sum(1 for i in items if i.replayed)}


def _replays(ctx: Context, items: list[Item]) -> None:
    """One query for the whole batch: operations already stored answer with their first result."""
    if not items:
        return
    rows = {op_id: (device_id, digest, result) for op_id, device_id, digest, result in ctx.session.execute(
        sa.select(SyncOperation.op_id, SyncOperation.device_id, SyncOperation.digest, SyncOperation.result)
        .where(SyncOperation.op_id.in_([i.op_id for i in items])))}
    for item in items:
        row = rows.get(item.op_id)
        if row is None:
            continue
        device_id, digest, result = row
        item.store = False
        if device_id != ctx.device.id or digest != item.digest:
            item.result = _rejected(item, OperationReused())
        else:
            item.result = {**json.loads(result), "index": item.index}
            item.replayed = True


def _seq_reuse(ctx: Context, items: list[Item]) -> None:
    if not items:
        return
    taken = set(ctx.session.scalars(sa.select(SyncOperation.device_seq).where(
        SyncOperation.device_id == ctx.device.id, SyncOperation.device_seq.in_([i.seq for i in items]))))
    seen: set[int] = set()
    for item in items:
        if item.seq in taken or item.seq in seen:
            item.store = False
            item.result = _rejected(item, SequenceReused(seq=item.seq))
        seen.add(item.seq)


def _seq_range(ctx: Context, items: list[Item]) -> None:
    """A seq beyond ``acked_seq + SEQ_WINDOW`` is refused and not stored (it would open a gap that
    no device ever closes)."""
    limit = ctx.state.acked_seq + SEQ_WINDOW
    for item in items:
        if item.seq > limit:
            item.store = False
            item.result = _rejected(item, SequenceOutOfRange(seq=item.seq, acked_seq=ctx.state.acked_seq,
                                                             limit=limit, window=SEQ_WINDOW))


def _load_scope(ctx: Context, items: list[Item]) -> None:
    """The inspections the device's inspector is assigned to, among those the batch names."""
    ids = {i.inspection_id for i in items if i.inspection_id}
    if not ids:
        return
    mine = sa.select(InspectionMember.inspection_id).where(
        InspectionMember.user_id == ctx.user.id, InspectionMember.removed_at.is_(None),
        InspectionMember.inspection_id.in_(ids))
    ctx.inspections = {i.id: i for i in ctx.session.scalars(sa.select(Inspection).where(Inspection.id.in_(mine)))}
    for item in items:
        inspection = ctx.inspections.get(item.inspection_id or "")
        if inspection is None:
            item.result = _rejected(item, NotAssigned(inspection_id=item.inspection_id))
        elif inspection.status is InspectionStatus.CANCELLED:
            item.result = _rejected(item, InspectionClosed(inspection_id=item.inspection_id))


def _flags(ctx: Context, item: Item, at: dt.datetime | None = None) -> list[str] | None:
    inspection = ctx.inspections.get(item.inspection_id or "")
    return time_flags(at or item.device_time, now=ctx.now, offset_ms=ctx.state.clock_offset_ms,
                      window_start=inspection.window_start if inspection else None,
                      registered_at=ctx.device.registered_at)


def _audit(ctx: Context, item: Item, action: str, entity_id: str, payload: dict[str, Any] | None = None) -> None:
    audit.record(ctx.session, f"sync:{item.entity}:{action}",
                 subjects={"inspection": item.inspection_id, item.entity: entity_id, "device": ctx.device.id},
                 payload={"op_id": item.op_id, "seq": item.seq, "device_time": iso(item.device_time),
                          **(payload or {})})


def _apply_singles(ctx: Context, items: list[Item]) -> None:
    """Items that are not plain appends, in batch order, inside one SAVEPOINT. Every handler
    raises its domain errors before it writes anything, so a rejected item needs no SAVEPOINT of
    its own, and the writes of the whole group go out in one flush. If the database refuses a
    write (a concurrent push created the same row first), the group is rolled back and applied
    again, one SAVEPOINT per item."""
    if not items:
        return
    _load_records(ctx, items)
    savepoint = ctx.session.begin_nested()
    try:
        for item in items:
            try:
                item.result = HANDLERS[(item.entity, item.action)].apply(ctx, item)
            except errors.DomainError as exc:
                item.result = _rejected(item, exc)
        savepoint.commit()
        return
    except sa.exc.IntegrityError:
        savepoint.rollback()
    ctx.records.clear()
    ctx.versions.clear()
    ctx.versions_from.clear()
    for item in items:
        item.result = None
        _apply_one(ctx, item)


def _apply_one(ctx: Context, item: Item) -> None:
    handler = HANDLERS[(item.entity, item.action)]
    for attempt in (1, 2):
        savepoint = ctx.session.begin_nested()
        try:
            item.result = handler.apply(ctx, item)
            savepoint.commit()
            return
        except errors.DomainError as exc:
            savepoint.rollback()
            item.result = _rejected(item, exc)
            return
        except sa.exc.IntegrityError:
            # A concurrent push created the same row first (PostgreSQL waits, then refuses ours):
            # roll back this item only and apply it again against what is there now.
            savepoint.rollback()
            if attempt == 2:
                item.result = _rejected(item, errors.Conflict("concurrent write; retry"))


def _ok(item: Item, status: str, entity_id: str, **extra: Any) -> dict[str, Any]:
    return {"index": item.index, "op_id": item.op_id, "seq": item.seq, "status": status, "id": entity_id, **extra}


# ---- append-only items (bulk) -------------------------------------------------------------------

def _float(data: dict[str, Any], name: str, low: float, high: float, *, required: bool = True) -> float | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise Malformed(fields={f"data.{name}": [f"{low}..{high}"]})
    return float(value)


def _text(data: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise Malformed(fields={f"data.{name}": [f"1..{limit} 字符 / characters"]})
    return value


def _item_id(data: dict[str, Any]) -> str:
    try:
        return str(uuid.UUID(str(data.get("id"))))
    except ValueError:
        raise Malformed(fields={"data.id": ["UUID"]}) from None


def _base_row(ctx: Context, item: Item, entity_id: str) -> dict[str, Any]:
    return {"id": entity_id, "inspection_id": item.inspection_id, "device_id": ctx.device.id,
            "user_id": ctx.user.id, "op_id": item.op_id, "device_time": item.device_time,
            "received_at": ctx.now, "time_flags": _flags(ctx, item)}


def _check_in_row(ctx: Context, item: Item) -> dict[str, Any]:
    d = item.data
    return {**_base_row(ctx, item, _item_id(d)), "lat": _float(d, "lat", -90, 90), "lon": _float(d, "lon", -180, 180),
            "accuracy_m": _float(d, "accuracy_m", 0, 100000, required=False)}


def _note_row(ctx: Context, item: Item) -> dict[str, Any]:
    return {**_base_row(ctx, item, _item_id(item.data)), "text": _text(item.data, "text", 20000)}


def _manifest_row(ctx: Context, item: Item) -> dict[str, Any]:
    """The team's view of a capture manifest. The manifest itself (the one signed form, see
    ``evidence.announce``) is checked by the evidence module; its signature must verify."""
    d = item.data
    capture = evidence.parse_manifest(d, device=ctx.device, inspection_id=item.inspection_id, require_signature=True)
    item.capture = capture
    row = {**_base_row(ctx, item, capture.client_id), "kind": d["kind"], "sha256": capture.sha256,
           "size": d["size"], "media_type": d["media_type"], "captured_at": capture.captured_at,
           "lat": d.get("lat"), "lon": d.get("lon"), "signature": d["signature"]}
    if capture.captured_at is not None:
        row["time_flags"] = _flags(ctx, item, capture.captured_at)
        # Reviewers read the evidence item, not this row: it carries the same findings as flags.
        capture.clock_flags, capture.clock_offset_ms = row["time_flags"], ctx.state.clock_offset_ms
    return row


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(v) if isinstance(v, dt.datetime) else v) for k, v in row.items() if k != "op_id"}


@dataclass(frozen=True)
class Appender:
    table: sa.Table
    build: Callable[[Context, Item], dict[str, Any]]
    bulk: bool = True

    content: tuple[str, ...] = ()  # the columns that make "the same item": compared on a second arrival

    def _same(self, stored: dict[str, Any], row: dict[str, Any]) -> bool:
        return all(stored[name] == row[name] for name in ("inspection_id", "device_id", *self.content))

    def settle(self, ctx: Context, pairs: list[tuple[Item, dict[str, Any]]]) -> list[tuple[Item, dict[str, Any]]]:
        """The pairs to insert. An id already stored (or earlier in the batch) with the same content
        from the same device is a duplicate; with other content, or from another device, it is
        ``sync.item_id_conflict`` and the stored item stays as it is (never a silent drop)."""
        columns = [self.table.c[name] for name in ("id", "inspection_id", "device_id", *self.content)]
        existing = {row["id"]: dict(row) for row in ctx.session.execute(sa.select(*columns).where(
            self.table.c.id.in_([r["id"] for _, r in pairs]))).mappings()}
        fresh: list[tuple[Item, dict[str, Any]]] = []
        for item, row in pairs:
            stored = existing.get(row["id"])
            if stored is None:
                existing[row["id"]] = row
                fresh.append((item, row))
            elif self._same(stored, row):
                item.result = _ok(item, "duplicate", row["id"])
            else:
                item.result = _rejected(item, ItemIdConflict(entity=item.entity, id=row["id"]))
        return fresh

    def write_with(self, ctx: Context, fresh: list[tuple[Item, dict[str, Any]]]) -> None:
        """What else the fresh items write, in their SAVEPOINT, before their rows (nothing for plain
        appends). Raises its domain errors before it writes anything."""

    def apply(self, ctx: Context, item: Item) -> dict[str, Any]:
        """One item alone (the fallback when the bulk insert of its group failed)."""
        fresh = self.settle(ctx, [(item, self.build(ctx, item))])
        if not fresh:
            assert item.result is not None
            return item.result
        row = fresh[0][1]
        self.write_with(ctx, fresh)
        ctx.session.execute(self.table.insert(), [row])
        _record_append(ctx, item, row)
        return _ok(item, "applied", row["id"])


@dataclass(frozen=True)
class ManifestAppender(Appender):
    """Media manifests are stored for the team's devices (``media_manifest``) and announced as
    evidence items in the same SAVEPOINT, so the bytes uploaded later attach to them. The same
    manifest again is a duplicate; its id with any other content, or from another device, is
    ``evidence.client_id_conflict`` and changes nothing."""

    def settle(self, ctx: Context, pairs: list[tuple[Item, dict[str, Any]]]) -> list[tuple[Item, dict[str, Any]]]:
        ids = [row["id"] for _, row in pairs]
        items = evidence.announced(ctx.session, ids)
        # Manifests synced before they were announced as evidence have a row here and no item.
        unannounced = set(ctx.session.scalars(sa.select(self.table.c.id).where(
            self.table.c.id.in_(ids), self.table.c.id.not_in(list(items)))))
        fresh: list[tuple[Item, dict[str, Any]]] = []
        batch: dict[str, tuple[str, evidence.Capture]] = {}
        for item, row in pairs:
            capture = item.capture
            assert capture is not None
            first = items.get(row["id"])
            earlier = batch.get(row["id"])
            if first is not None:
                same = first.device_id == ctx.device.id and capture.same_as(first)
            elif earlier is not None:
                same = earlier[0] == ctx.device.id and canonical_json(earlier[1].manifest) == canonical_json(
                    capture.manifest)
            elif row["id"] in unannounced:
                same = True
            else:
                batch[row["id"]] = (ctx.device.id, capture)
                fresh.append((item, row))
                continue
            item.result = _ok(item, "duplicate", row["id"]) if same else _rejected(
                item, evidence.ClientIdConflict(client_id=row["id"]))
        return fresh

    def write_with(self, ctx: Context, fresh: list[tuple[Item, dict[str, Any]]]) -> None:
        evidence.record_captures(ctx.session, device=ctx.device, user=ctx.user,
                                 captures=[item.capture for item, _ in fresh if item.capture is not None])


def _record_append(ctx: Context, item: Item, row: dict[str, Any]) -> None:
    _audit(ctx, item, "appended", row["id"], {"time_flags": row.get("time_flags")})
    changes.emit(ctx.session, inspection_id=item.inspection_id or "", entity=item.entity, entity_id=row["id"],
                 op="append", data=_public(row))


def _apply_bulk(ctx: Context, items: list[Item]) -> None:
    """Append-only items of a batch: validated in Python, duplicates found with one query per
    table, inserted with one executemany inside one SAVEPOINT (with what the handler writes
    after them). If that fails (a race on the same id), the group falls back to one SAVEPOINT
    per item."""
    by_handler: dict[Appender, list[tuple[Item, dict[str, Any]]]] = {}
    for item in items:
        if item.result is not None:
            continue
        handler = HANDLERS[(item.entity, item.action)]
        try:
            row = handler.build(ctx, item)
        except errors.DomainError as exc:
            item.result = _rejected(item, exc)
            continue
        by_handler.setdefault(handler, []).append((item, row))
    for handler, pairs in by_handler.items():
        fresh = handler.settle(ctx, pairs)
        if not fresh:
            continue
        savepoint = ctx.session.begin_nested()
        try:
            handler.write_with(ctx, fresh)
            insert_rows(ctx.session, handler.table, [row for _, row in fresh])
            for item, row in fresh:
                _record_append(ctx, item, row)
            savepoint.commit()
        except (sa.exc.IntegrityError, errors.DomainError):
            savepoint.rollback()
            continue  # their results stay None: _apply_one takes them one by one
        for item, row in fresh:
            item.result = _ok(item, "applied", row["id"])


# ---- inspection status ------------------------------------------------------------------------

_NEXT = {InspectionStatus.ASSIGNED: {InspectionStatus.IN_PROGRESS},
         InspectionStatus.IN_PROGRESS: {InspectionStatus.COMPLETED}}
_ORDER = [InspectionStatus.ASSIGNED, InspectionStatus.IN_PROGRESS, InspectionStatus.COMPLETED]


@dataclass(frozen=True)
class StatusHandler:
    bulk: bool = False

    def apply(self, ctx: Context, item: Item) -> dict[str, Any]:
        """assigned → in_progress → completed. A device that reports a step already reached (its
        teammate was first) gets ``duplicate``; going back is refused."""
        try:
            wanted = InspectionStatus(item.data.get("status"))
        except ValueError:
            raise Malformed(fields={"data.status": ["in_progress | completed"]}) from None
        inspection = ctx.session.scalars(sa.select(Inspection).where(Inspection.id == item.inspection_id)
                                         .with_for_update().execution_options(populate_existing=True)).one()
        current = inspection.status
        if wanted in _ORDER and current in _ORDER and _ORDER.index(wanted) <= _ORDER.index(current):
            return _ok(item, "duplicate", inspection.id, inspection_status=current.value)
        if wanted not in _NEXT.get(current, set()):
            if current is InspectionStatus.ASSIGNED and wanted is InspectionStatus.COMPLETED:
                inspection.started_at = inspection.started_at or ctx.now  # both steps at once
            else:
                raise InvalidState(status=current.value, wanted=wanted.value)
        if wanted is InspectionStatus.IN_PROGRESS:
            inspection.started_at = ctx.now
        else:
            inspection.completed_at = ctx.now
            day = ctx.now.astimezone(CHINA).date()  # the directory's inspection history (名录库)
            ctx.session.execute(sa.update(Target).where(
                Target.id == inspection.target_id,
                sa.or_(Target.last_inspected_on.is_(None), Target.last_inspected_on < day)).values(last_inspected_on=day))
        inspection.status = wanted
        ctx.session.flush()
        _audit(ctx, item, "status_changed", inspection.id, {"before": current.value, "after": wanted.value})
        return _ok(item, "applied", inspection.id, inspection_status=wanted.value, version=inspection.version)


# ---- the editable record: three-way merge -----------------------------------------------------

def record_snapshot(record: InspectionRecord) -> dict[str, Any]:
    return {"id": record.id, "inspection_id": record.inspection_id, "template": record.template_code,
            "template_version": record.template_version, "version": record.version, "fields": record.fields,
            "open_conflicts": record.open_conflicts}


def lock_record(session: Session, inspection_id: str, template_code: str) -> InspectionRecord:
    spec = template(template_code)
    rid = record_id(inspection_id, template_code)
    _upsert_ignore(session, InspectionRecord.__table__, {
        "id": rid, "inspection_id": inspection_id, "template_code": template_code,
        "template_version": spec["version"], "fields": {}, "version": 0, "open_conflicts": 0,
        "updated_at": utcnow()})
    return session.scalars(sa.select(InspectionRecord).where(InspectionRecord.id == rid).with_for_update()
                           .execution_options(populate_existing=True)).one()


def fields_at(session: Session, record: InspectionRecord, version: int) -> dict[str, Any]:
    if version == record.version:
        return dict(record.fields)
    if version == 0:
        return {}
    snapshot = session.scalar(sa.select(InspectionRecordVersion.fields).where(
        InspectionRecordVersion.record_id == record.id, InspectionRecordVersion.version == version))
    if snapshot is None:
        raise BaseUnknown(base_version=version, current_version=record.version)
    return dict(snapshot)


def new_version(session: Session, record: InspectionRecord, fields: dict[str, Any], changed: Iterable[str], *,
                op_id: str | None, device_id: str | None, user_id: int | None, reason: str | None = None) -> None:
    record.version += 1
    record.fields = fields
    record.updated_at = utcnow()
    session.add(InspectionRecordVersion(record_id=record.id, version=record.version, fields=fields,
                                        changed=sorted(changed), op_id=op_id, device_id=device_id,
                                        user_id=user_id, reason=reason))


def _load_records(ctx: Context, items: list[Item]) -> None:
    """Lock the existing records a batch edits in one query (always in the same order, whatever
    the order of the items), and read their versions from the oldest base an item names."""
    oldest: dict[str, int] = {}
    for item in items:
        base, code = item.data.get("base_version"), item.data.get("template")
        if (item.entity, item.action) == ("inspection_record", "edit") and isinstance(code, str) \
                and isinstance(base, int) and not isinstance(base, bool) and base >= 0:
            rid = record_id(item.inspection_id or "", code)
            oldest[rid] = min(base, oldest.get(rid, base))
    if not oldest:
        return
    ctx.records.update((r.id, r) for r in ctx.session.scalars(
        sa.select(InspectionRecord).where(InspectionRecord.id.in_(sorted(oldest))).order_by(InspectionRecord.id)
        .with_for_update().execution_options(populate_existing=True)))
    floor = min(oldest[rid] for rid in ctx.records) if ctx.records else 0
    for rid in ctx.records:
        ctx.versions[rid], ctx.versions_from[rid] = {}, floor
    if ctx.records:
        for rid, version, fields, changed, device_id in ctx.session.execute(sa.select(
                InspectionRecordVersion.record_id, InspectionRecordVersion.version, InspectionRecordVersion.fields,
                InspectionRecordVersion.changed, InspectionRecordVersion.device_id).where(
                InspectionRecordVersion.record_id.in_(list(ctx.records)), InspectionRecordVersion.version >= floor)):
            ctx.versions[rid][version] = (fields, changed, device_id)


def _locked_record(ctx: Context, inspection_id: str, template_code: str, base_version: int) -> InspectionRecord:
    """The record, locked: from the batch's preload, else locked now. A record is created only
    by an edit based on version 0, so a refused edit leaves nothing behind."""
    rid = record_id(inspection_id, template_code)
    record = ctx.records.get(rid)
    if record is None:
        if base_version == 0:
            record = lock_record(ctx.session, inspection_id, template_code)
        else:
            record = ctx.session.scalars(sa.select(InspectionRecord).where(InspectionRecord.id == rid)
                                         .with_for_update().execution_options(populate_existing=True)).first()
            if record is None:
                raise BaseUnknown(base_version=base_version, current_version=0)
        ctx.records[rid] = record
    return record


def _versions_since(ctx: Context, record: InspectionRecord, base_version: int,
                    ) -> dict[int, tuple[dict[str, Any], list[str], str | None]]:
    """Versions ``base_version``.. of the record (fields, changed, device), read at most once per range."""
    known = ctx.versions.setdefault(record.id, {})
    since = ctx.versions_from.get(record.id)
    if since is None or base_version < since:
        query = sa.select(InspectionRecordVersion.version, InspectionRecordVersion.fields,
                          InspectionRecordVersion.changed, InspectionRecordVersion.device_id).where(
            InspectionRecordVersion.record_id == record.id, InspectionRecordVersion.version >= base_version)
        if since is not None:
            query = query.where(InspectionRecordVersion.version < since)
        known.update((version, (fields, changed, device_id)) for version, fields, changed, device_id
                     in ctx.session.execute(query))
        ctx.versions_from[record.id] = base_version
    return known


@dataclass(frozen=True)
class RecordHandler:
    bulk: bool = False

    def apply(self, ctx: Context, item: Item) -> dict[str, Any]:
        """Merge the device's changed fields into the record against the version it edited."""
        code = item.data.get("template")
        if not isinstance(code, str):
            raise Malformed(fields={"data.template": ["必填 / required"]})
        spec = {f["name"]: f for f in template(code)["fields"]}
        patch = item.data.get("fields")
        base_version = item.data.get("base_version")
        if not isinstance(patch, dict) or not patch:
            raise Malformed(fields={"data.fields": ["非空对象 / non-empty object"]})
        if not isinstance(base_version, int) or isinstance(base_version, bool) or base_version < 0:
            raise Malformed(fields={"data.base_version": [">= 0"]})
        bad = sorted(name for name, value in patch.items() if name not in spec or not _check_value(spec[name], value))
        unknown = [name for name in bad if name not in spec]
        if unknown:
            raise UnknownField(fields={name: ["模板外字段 / not a field of the template"] for name in unknown})
        if bad:
            raise FieldType(fields={name: [f"类型应为 / type should be {spec[name]['type']}"] for name in bad})
        record = _locked_record(ctx, item.inspection_id or "", code, base_version)
        if base_version > record.version:
            raise BaseUnknown(base_version=base_version, current_version=record.version)
        before_version = record.version
        if base_version == record.version:
            base = dict(record.fields)
        else:
            versions = _versions_since(ctx, record, base_version)
            if base_version == 0:
                base = {}
            elif base_version in versions:
                base = dict(versions[base_version][0])
            else:
                raise BaseUnknown(base_version=base_version, current_version=record.version)
            # The device saw its own earlier edits even though it could not learn their versions
            # offline: a field changed since the base only by this device is not a conflict.
            foreign: set[str] = set()
            for version, (_, changed, device_id) in versions.items():
                if version > base_version and device_id != ctx.device.id:
                    foreign.update(changed)
            base.update({name: record.fields.get(name) for name in patch if name not in foreign})
        result = merge.three_way(base, record.fields, patch)
        if result.changed:
            new_version(ctx.session, record, result.fields, result.applied, op_id=item.op_id,
                        device_id=ctx.device.id, user_id=ctx.user.id)
            if record.id in ctx.versions_from:
                ctx.versions[record.id][record.version] = (result.fields, sorted(result.applied), ctx.device.id)
        conflict_ids = [self._keep(ctx, item, record, c, before_version) for c in result.conflicts]
        outcome = result.outcome(base_version, before_version)
        _audit(ctx, item, "updated" if outcome != "conflict" else "conflicted", record.id,
               {"base_version": base_version, "version": record.version, "applied": result.applied,
                "conflicts": [c.field for c in result.conflicts], "fields": patch,
                "time_flags": _flags(ctx, item)})
        if result.changed or result.conflicts:
            changes.emit(ctx.session, inspection_id=record.inspection_id, entity="inspection_record",
                         entity_id=record.id, op="upsert", data=record_snapshot(record))
        return _ok(item, outcome, record.id, version=record.version, applied=result.applied,
                   conflicts=[{"field": c.field, "conflict_id": cid, "current": c.current, "yours": c.incoming}
                              for c, cid in zip(result.conflicts, conflict_ids)])

    @staticmethod
    def _keep(ctx: Context, item: Item, record: InspectionRecord, c: merge.FieldConflict, version: int) -> int:
        """Both values are kept: the current one stays current, the device's waits in the queue."""
        yours = {"value": c.incoming, "op_id": item.op_id, "device_id": ctx.device.id, "user_id": ctx.user.id,
                 "at": iso(ctx.now), "device_time": iso(item.device_time)}
        conflict = ctx.session.scalar(sa.select(SyncConflict).where(
            SyncConflict.record_id == record.id, SyncConflict.field == c.field,
            SyncConflict.status == ConflictStatus.OPEN))
        if conflict is None:
            conflict = SyncConflict(record_id=record.id, inspection_id=record.inspection_id,
                                    unit_id=ctx.inspections[record.inspection_id].unit_id, field=c.field,
                                    base_value=c.base,
                                    values=[{"value": c.current, "version": version}, yours])
            ctx.session.add(conflict)
            record.open_conflicts += 1
        else:
            conflict.values = [*conflict.values, yours]
        ctx.session.flush()
        return conflict.id


# ---- document numbers -------------------------------------------------------------------------

def on_site_decision_number(unit_code: str, year: int, number: int) -> str:
    """当场行政处罚决定书 number as printed: the unit's official code (``unit.code``, 文号代字), never a
    database id, with the year and the unit's running number."""
    return f"商环当罚〔{year}〕{unit_code}-{number}号"


def allocate_numbers(session: Session, device: Device, *, today: dt.date, block: int = DOCUMENT_BLOCK,
                     ) -> list[DocumentNumber]:
    """Top the device's block of unused on-site decision numbers up to ``block``. Numbers are
    unique per unit and year: the counter row's lock serialises allocators."""
    unit_id, year = device.user.unit_id, today.year
    unit = session.get(Unit, unit_id)
    unused = list(session.scalars(sa.select(DocumentNumber).where(
        DocumentNumber.device_id == device.id, DocumentNumber.year == year, DocumentNumber.kind == DOCUMENT_KIND,
        DocumentNumber.used_at.is_(None)).order_by(DocumentNumber.number)))
    missing = block - len(unused)
    if missing > 0 and unit is not None and unit.code:  # a unit without its code gets no numbers (not guessed)
        _upsert_ignore(session, DocumentNumberCounter.__table__,
                       {"unit_id": unit_id, "year": year, "kind": DOCUMENT_KIND, "next_number": 1})
        end = session.execute(sa.update(DocumentNumberCounter).where(
            DocumentNumberCounter.unit_id == unit_id, DocumentNumberCounter.year == year,
            DocumentNumberCounter.kind == DOCUMENT_KIND).values(next_number=DocumentNumberCounter.next_number + missing)
            .returning(DocumentNumberCounter.next_number)).scalar_one()
        for number in range(end - missing, end):
            row = DocumentNumber(unit_id=unit_id, year=year, kind=DOCUMENT_KIND, number=number,
                                 text=on_site_decision_number(unit.code, year, number), device_id=device.id)
            session.add(row)
            unused.append(row)
        session.flush()
        audit.record(session, "sync:document_number:allocated", subjects={"device": device.id, "unit": unit_id},
                     payload={"year": year, "kind": DOCUMENT_KIND, "numbers": [end - missing, end - 1]})
    return unused


@dataclass(frozen=True)
class DocumentNumberHandler:
    bulk: bool = False

    def apply(self, ctx: Context, item: Item) -> dict[str, Any]:
        """A pre-allocated number used offline comes back with the inspection it was used in."""
        text = _text(item.data, "text", 60)
        row = ctx.session.scalars(sa.select(DocumentNumber).where(DocumentNumber.text == text).with_for_update()).first()
        if row is None or row.device_id != ctx.device.id:
            raise DocumentNumberUnknown(text=text)
        if row.used_op_id is not None:
            raise DocumentNumberUsed(text=text)
        row.used_at = item.device_time or ctx.now
        row.used_op_id = item.op_id
        row.used_inspection_id = item.inspection_id
        ctx.session.flush()
        _audit(ctx, item, "used", str(row.id), {"text": text})
        changes.emit(ctx.session, inspection_id=item.inspection_id or "", entity="document_number",
                     entity_id=str(row.id), op="upsert",
                     data={"text": text, "used_at": iso(row.used_at), "device_id": ctx.device.id})
        return _ok(item, "applied", str(row.id), text=text)


HANDLERS: dict[tuple[str, str], Any] = {
    ("inspection", "set_status"): StatusHandler(),
    ("inspection_record", "edit"): RecordHandler(),
    ("check_in", "append"): Appender(CheckIn.__table__, _check_in_row,  # type: ignore[arg-type]
                                     content=("lat", "lon", "accuracy_m")),
    ("note", "append"): Appender(InspectionNote.__table__, _note_row, content=("text",)),  # type: ignore[arg-type]
    ("media_manifest", "append"): ManifestAppender(MediaManifest.__table__, _manifest_row),  # type: ignore[arg-type]
    ("document_number", "use"): DocumentNumberHandler(),
}


def _advance(ctx: Context, seqs: list[int]) -> dict[str, Any]:
    """Move the device's contiguous watermark and report the gaps below its highest seq. Items
    are applied on arrival (nothing waits for a missing predecessor); the client resends the gaps."""
    state = ctx.state
    if seqs:
        state.max_seq = max(state.max_seq, *seqs)
    stored = list(ctx.session.scalars(sa.select(SyncOperation.device_seq).where(
        SyncOperation.device_id == ctx.device.id, SyncOperation.device_seq > state.acked_seq)
        .order_by(SyncOperation.device_seq)))
    acked = state.acked_seq
    missing: list[list[int]] = []
    for seq in stored:
        if seq != acked + 1:
            break
        acked = seq
    # Gaps: ranges between the contiguous watermark and the highest seq not stored.
    expected = acked + 1
    for seq in stored:
        if seq <= acked:
            continue
        if seq > expected:
            missing.append([expected, seq - 1])
        expected = seq + 1
    state.acked_seq = acked
    ctx.session.flush()
    return {"acked_seq": acked, "max_seq": state.max_seq, "missing": missing[:100]}


# ---- pull ---------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _page_query(postgres: bool) -> sa.Select[tuple[int, str]]:
    """The page's rows, oldest first: the team's changes of the inspector's inspections and the
    changes addressed to them (parameters ``user_id``, ``since``, ``upto``, ``page_limit``; built
    once per dialect). On PostgreSQL a keyset read: one index range scan per inspection
    (``ix_sync_change_scope``) and one for the inspector (``ix_sync_change_audience``), each
    stopping after ``limit`` rows, merged; a page costs the same wherever the cursor stands,
    instead of reading and sorting every change left after the cursor (O(n²) over a backlog)."""
    user_id, limit = sa.bindparam("user_id"), sa.bindparam("page_limit")
    in_range = (SyncChange.seq > sa.bindparam("since"), SyncChange.seq <= sa.bindparam("upto"))
    mine = sa.select(InspectionMember.inspection_id).where(
        InspectionMember.user_id == user_id, InspectionMember.removed_at.is_(None))
    if not postgres:
        return sa.select(SyncChange.seq, SyncChange.body).where(
            *in_range, sa.or_(sa.and_(SyncChange.audience_user_id.is_(None), SyncChange.inspection_id.in_(mine)),
                              SyncChange.audience_user_id == user_id)).order_by(SyncChange.seq).limit(limit)
    scopes = mine.distinct().subquery("mine")
    team = (sa.select(SyncChange.seq, SyncChange.body)
            .where(SyncChange.inspection_id == scopes.c.inspection_id, SyncChange.audience_user_id.is_(None),
                   *in_range).order_by(SyncChange.seq).limit(limit).lateral("team"))
    own = (sa.select(SyncChange.seq, SyncChange.body).where(SyncChange.audience_user_id == user_id, *in_range)
           .order_by(SyncChange.seq).limit(limit))
    both = sa.union_all(sa.select(team.c.seq, team.c.body).select_from(scopes).join(team, sa.true()),
                        own).subquery("page")
    return sa.select(both.c.seq, both.c.body).order_by(both.c.seq).limit(limit)


def pull(session: Session, device: Device, cursor: str | None, limit: int = DEFAULT_PAGE,
         ) -> tuple[list[str], str, bool]:
    """Changes after ``cursor`` that the device's inspector may see, oldest first, as JSON texts.
    Returns (changes, next cursor, more)."""
    since = decode_cursor(cursor)
    head = session.execute(sa.select(SyncHead.last_seq, SyncHead.floor_seq).where(SyncHead.id == 1)).one()
    if since < head.floor_seq or since > head.last_seq:
        raise CursorExpired(cursor_seq=since, floor=head.floor_seq)
    limit = max(1, min(limit, MAX_PAGE))
    rows = session.execute(_page_query(session.get_bind().dialect.name == "postgresql"), {
        "user_id": device.user_id, "since": since, "upto": head.last_seq, "page_limit": limit}).all()
    # A compaction that committed between the two reads may have dropped rows this page needed:
    # its floor is committed before any row goes, so reading the floor again tells.
    if since < session.execute(sa.select(SyncHead.floor_seq).where(SyncHead.id == 1)).scalar_one():
        raise CursorExpired(cursor_seq=since)
    more = len(rows) == limit
    # Serving only up to the head read first keeps the cursor safe; with no more rows the cursor
    # jumps to the head, so irrelevant changes are never scanned again.
    next_seq = rows[-1][0] if more else head.last_seq
    # One UPDATE of the device's row (no read of it); the row is made on the first contact only.
    touched = session.execute(sa.update(SyncDevice.__table__).where(SyncDevice.__table__.c.device_id == device.id)
                              .values(last_contact_at=utcnow(), last_pull_seq=next_seq)).rowcount
    if not touched:
        state = device_state(session, device.id)
        state.last_contact_at = utcnow()
        state.last_pull_seq = next_seq
    return [body for _, body in rows], encode_cursor(next_seq), more


def raise_floor(session: Session, seq: int, *, reason: dict[str, Any] | None = None) -> int:
    """Cursors below ``seq`` get ``sync.cursor_expired`` from the commit on (a full resync that
    keeps the device's outbox). Raised before any row is dropped. Returns the floor."""
    head = session.get(SyncHead, 1, with_for_update=True, populate_existing=True)
    assert head is not None
    previous = head.floor_seq
    head.floor_seq = max(previous, min(seq, head.last_seq))
    session.flush()
    if head.floor_seq != previous:
        audit.record(session, "sync:change_log:compacted",
                     payload={"floor_seq": head.floor_seq, "previous_floor_seq": previous, **(reason or {})})
    return head.floor_seq


def drop_compacted(session: Session, *, limit: int | None = None) -> int:
    """Delete change-log rows at or below the floor (no cursor can reach them), at most ``limit``."""
    floor = session.execute(sa.select(SyncHead.floor_seq).where(SyncHead.id == 1)).scalar_one()
    doomed = SyncChange.seq <= floor
    if limit is not None:
        doomed = SyncChange.seq.in_(sa.select(SyncChange.seq).where(doomed).order_by(SyncChange.seq).limit(limit)
                                    .scalar_subquery())
    deleted = session.execute(sa.delete(SyncChange).where(doomed)).rowcount
    if deleted:
        audit.record(session, "sync:change_log:pruned", payload={"floor_seq": floor, "deleted": deleted})
    return deleted


def compact(session: Session, *, keep_after_seq: int) -> int:
    """Drop change-log entries up to ``keep_after_seq``; older cursors then get ``sync.cursor_expired``."""
    raise_floor(session, keep_after_seq)
    return drop_compacted(session)


def compact_expired(session: Session, *, retention: dt.timedelta, commit: Callable[[], None],
                    now: dt.datetime | None = None, batch: int = 10_000) -> dict[str, Any]:
    """The scheduled compaction (``sync.compact_change_log``, ``enforce sync compact``): changes
    committed more than ``retention`` ago leave the log. The floor is committed first, then the
    rows go in batches of ``batch``, each committed, so pushes never wait long for the head lock.
    ``commit`` is the boundary's commit."""
    cutoff = (now or utcnow()) - retention
    head = session.execute(sa.select(SyncHead.last_seq, SyncHead.floor_seq).where(SyncHead.id == 1)).one()
    # Seqs follow commit order, so the first change young enough to keep ends the expired ones.
    first_kept = session.scalar(sa.select(SyncChange.seq).where(
        SyncChange.seq > head.floor_seq, SyncChange.committed_at >= cutoff).order_by(SyncChange.seq).limit(1))
    floor = raise_floor(session, head.last_seq if first_kept is None else first_kept - 1,
                        reason={"cutoff": iso(cutoff), "retention_days": retention / dt.timedelta(days=1)})
    commit()
    deleted = 0
    while True:
        count = drop_compacted(session, limit=batch)
        commit()
        deleted += count
        if count < batch:
            return {"floor_seq": floor, "deleted": deleted, "cutoff": iso(cutoff)}


# ---- offline package ----------------------------------------------------------------------------

def _certificates(session: Session, user_ids: set[int], today: dt.date) -> dict[int, list[dict[str, Any]]]:
    from server.modules.users.models import Certificate

    out: dict[int, list[dict[str, Any]]] = {}
    for cert in session.scalars(sa.select(Certificate).where(Certificate.user_id.in_(user_ids))):
        out.setdefault(cert.user_id, []).append({
            "number": cert.number, "valid_from": cert.valid_from.isoformat(),
            "valid_until": cert.valid_until.isoformat(), "status": cert.status.value,
            "valid_today": cert.is_valid_on(today)})
    return out


def package(session: Session, device: Device, *, today: dt.date, inspection_id: str | None = None,
            ) -> dict[str, Any]:
    """Everything the inspector needs offline for their assignments. The cursor is read first:
    changes committed while the package is built arrive again on the next pull (idempotent)."""
    head = session.execute(sa.select(SyncHead.last_seq)).scalar_one()
    user = device.user
    query = sa.select(Inspection).join(InspectionMember, sa.and_(
        InspectionMember.inspection_id == Inspection.id, InspectionMember.user_id == user.id,
        InspectionMember.removed_at.is_(None))).where(
        Inspection.status.in_([InspectionStatus.ASSIGNED, InspectionStatus.IN_PROGRESS,
                               InspectionStatus.COMPLETED])).order_by(Inspection.window_start, Inspection.id)
    query = query.options(selectinload(Inspection.members))  # the teams in one query, not one per inspection
    if inspection_id:
        query = query.where(Inspection.id == inspection_id)
    inspections = list(session.scalars(query))
    ids = [i.id for i in inspections]
    team = {m.user_id for i in inspections for m in i.members}
    people = {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(team)))} if team else {}
    certs = _certificates(session, set(people), today) if people else {}
    targets = {t.id: t for t in session.scalars(sa.select(Target).where(
        Target.id.in_({i.target_id for i in inspections})))} if inspections else {}
    records = list(session.scalars(sa.select(InspectionRecord).where(InspectionRecord.inspection_id.in_(ids))))
    notes = list(session.scalars(sa.select(InspectionNote).where(InspectionNote.inspection_id.in_(ids))))
    check_ins = list(session.scalars(sa.select(CheckIn).where(CheckIn.inspection_id.in_(ids))))
    manifests = list(session.scalars(sa.select(MediaManifest).where(MediaManifest.inspection_id.in_(ids))))
    violations = cases.past_violations(session, targets, user=user)
    numbers = allocate_numbers(session, device, today=today)
    state = device_state(session, device.id)
    state.last_contact_at = utcnow()

    def row(obj: Any) -> dict[str, Any]:
        return _public({c.key: getattr(obj, c.key) for c in obj.__table__.columns})

    return {
        "protocol": PROTOCOL_VERSION,
        "cursor": encode_cursor(head),
        "generated_at": iso(utcnow()),
        "inspections": [changes.inspection_snapshot(i) for i in inspections],
        "targets": [{"id": t.id, "name": t.name, "uscc": t.uscc, "address": t.address, "lat": t.lat, "lon": t.lon,
                     "region_code": t.region_code, "industry": t.industry, "risk_class": t.risk_class.value,
                     "permit_class": t.permit_class.value, "permit_number": t.permit_number,
                     "credit_rating": t.credit_rating, "past_violations": violations.get(t.id, [])}
                    for t in targets.values()],
        "team": [{"user_id": u.id, "display_name": u.display_name, "role": u.role.value,
                  "certificates": certs.get(u.id, [])} for u in people.values()],
        "records": [record_snapshot(r) for r in records],
        "notes": [row(n) for n in notes],
        "check_ins": [row(c) for c in check_ins],
        "media_manifests": [row(m) for m in manifests],
        "templates": catalogue()["templates"],
        "checklists": catalogue()["checklists"],
        "document_numbers": [{"text": n.text, "year": n.year, "kind": n.kind} for n in numbers],
    }


# ---- conflicts and health (staff) ------------------------------------------------------------------

def open_conflicts_of(user_id: int | None) -> sa.Select[tuple[SyncConflict]]:
    """Open conflicts on the records of inspections the person is on the team of: both values are
    kept until a supervisor of the responsible unit chooses or merges them. Oldest first."""
    teams = sa.select(InspectionMember.inspection_id).where(InspectionMember.user_id == user_id,
                                                            InspectionMember.removed_at.is_(None))
    return (sa.select(SyncConflict).where(SyncConflict.status == ConflictStatus.OPEN,
                                          SyncConflict.inspection_id.in_(teams))
            .order_by(SyncConflict.created_at, SyncConflict.id))


def field_label(session: Session, conflict: SyncConflict) -> str:
    """The record template's label of the conflict's field (its name when the template has none)."""
    record = session.get(InspectionRecord, conflict.record_id)
    fields = {f["name"]: f for f in template(record.template_code)["fields"]} if record else {}
    return str(fields.get(conflict.field, {}).get("label_zh", conflict.field))


def health(session: Session, principal: Principal, *, user_id: int | None = None) -> list[dict[str, Any]]:
    """Per device (of the caller's unit, or of one person): last sync and last request of any kind,
    reported outbox and pending media, clock offset, open conflicts."""
    query = sa.select(Device, SyncDevice, User).join(User, User.id == Device.user_id).outerjoin(
        SyncDevice, SyncDevice.device_id == Device.id).order_by(Device.id)
    if principal.role != Role.ADMIN.value:
        query = query.where(User.unit_id == principal.unit_id)
    if user_id is not None:
        query = query.where(Device.user_id == user_id)
    rows = session.execute(query).all()
    open_by_user = dict(session.execute(
        sa.select(InspectionMember.user_id, sa.func.count(sa.distinct(SyncConflict.id)))
        .join(SyncConflict, SyncConflict.inspection_id == InspectionMember.inspection_id)
        .where(SyncConflict.status == ConflictStatus.OPEN, InspectionMember.removed_at.is_(None))
        .group_by(InspectionMember.user_id)).all())
    out = []
    for device, state, user in rows:
        out.append({
            "device_id": device.id, "label": device.label, "user_id": user.id, "display_name": user.display_name,
            "revoked": device.revoked_at is not None,
            "last_contact_at": state.last_contact_at if state else None, "last_seen_at": device.last_seen_at,
            "outbox_depth": state.outbox_depth if state else None,
            "pending_media_bytes": state.pending_media_bytes if state else None,
            "clock_offset_ms": state.clock_offset_ms if state else None,
            "clock_rtt_ms": state.clock_rtt_ms if state else None,
            "acked_seq": state.acked_seq if state else 0, "max_seq": state.max_seq if state else 0,
            "app_version": state.app_version if state else device.app_version,
            "open_conflicts": open_by_user.get(user.id, 0),
        })
    return out


__all__ = ["push", "pull", "package", "handshake", "health", "compact", "compact_expired",
           "InspectionNotFound"]
