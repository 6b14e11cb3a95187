"""Offline sync, staff side: the supervisors' queue of field conflicts and their resolution.

A conflict shows the record's current value and every kept candidate with its author and time; a
resolution names the record version it was made against and is refused if the record moved on
(``sync/PROTOCOL.md`` §5). Operations flush; the view commits.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Principal, Role
from server.core.db import utcnow
from server.modules.audit import operations as audit
from server.modules.sync import changes
from server.modules.sync.models import (ConflictStatus, InspectionRecord, InspectionRecordVersion, SyncConflict,
                                        SyncOperation)
from server.modules.sync.operations import FieldType, _check_value, new_version, parse_time, record_snapshot, template
from server.modules.users.models import User

ConflictNotFound = errors.error_code("sync.conflict_not_found", 404, "冲突不存在", "No such conflict")
ConflictClosed = errors.error_code("sync.conflict_resolved", 409, "该冲突已处理", "This conflict is already resolved")
ConflictStale = errors.error_code(
    "sync.conflict_stale", 409, "笔录在您查看冲突后已被修改，请刷新后按当前值重新处理",
    "The record changed since the version the resolution was made against; reload and decide on the current value")


def conflicts_visible(principal: Principal) -> sa.Select[tuple[SyncConflict]]:
    query = sa.select(SyncConflict).order_by(SyncConflict.id)
    if principal.role == Role.ADMIN.value:
        return query
    return query.where(SyncConflict.unit_id == principal.unit_id)


def get_conflict(session: Session, principal: Principal, conflict_id: int) -> SyncConflict:
    conflict = session.get(SyncConflict, conflict_id)
    if conflict is None or (principal.role != Role.ADMIN.value and conflict.unit_id != principal.unit_id):
        raise ConflictNotFound()
    return conflict


def describe(session: Session, conflict: SyncConflict) -> dict[str, Any]:
    """What a supervisor decides on: the record's current version and value of the field with who
    set it and when, and every kept candidate with its author and time. A resolution names
    ``record_version``; it is refused if the record moved on since."""
    cached = getattr(conflict, "_described", None)
    if cached is not None:
        return cached
    record = session.get(InspectionRecord, conflict.record_id)
    assert record is not None
    versions = {v.version: v for v in session.scalars(sa.select(InspectionRecordVersion).where(
        InspectionRecordVersion.record_id == record.id).order_by(InspectionRecordVersion.version))}
    op_ids = [v["op_id"] for v in conflict.values if v.get("op_id")]
    received = dict(session.execute(sa.select(SyncOperation.op_id, SyncOperation.received_at).where(
        SyncOperation.op_id.in_(op_ids))).all()) if op_ids else {}
    users = {v.user_id for v in versions.values()} | {v.get("user_id") for v in conflict.values}
    names = dict(session.execute(sa.select(User.id, User.display_name).where(
        User.id.in_([u for u in users if u is not None]))).all())

    def author(version: InspectionRecordVersion | None) -> dict[str, Any]:
        if version is None:
            return {"version": 0, "user_id": None, "display_name": None, "device_id": None, "at": None}
        return {"version": version.version, "user_id": version.user_id,
                "display_name": names.get(version.user_id), "device_id": version.device_id,
                "at": version.created_at}

    setter = next((v for n, v in sorted(versions.items(), reverse=True) if conflict.field in (v.changed or [])), None)
    current = {"value": record.fields.get(conflict.field), **author(setter)}
    candidates = []
    for index, kept in enumerate(conflict.values):
        if kept.get("op_id"):
            entry = {"version": None, "user_id": kept.get("user_id"), "display_name": names.get(kept.get("user_id")),
                     "device_id": kept.get("device_id"),
                     "at": parse_time(kept.get("at"), "at") or received.get(kept["op_id"]), "op_id": kept["op_id"]}
        else:
            entry = author(versions.get(kept.get("version", 0)))
        candidates.append({"index": index, "value": kept["value"], **entry,
                           "is_current": kept["value"] == current["value"]})
    described = {"record_version": record.version, "current": current, "candidates": candidates}
    conflict._described = described  # type: ignore[attr-defined]
    return described


def resolve(session: Session, conflict: SyncConflict, *, by: User, reason: str, record_version: int,
            value: Any = None, choice: int | None = None) -> SyncConflict:
    """A supervisor chooses one of the kept values or gives a merged one, against the record
    version they saw (``record_version``): if the record changed since, ``sync.conflict_stale``.
    The resolution is a new record version carrying the reason, and an audit entry (干预留痕)."""
    if conflict.status is not ConflictStatus.OPEN:
        raise ConflictClosed()
    session = changes.real_session(session)
    if choice is not None:
        if not 0 <= choice < len(conflict.values):
            raise errors.ValidationFailed(fields={"choice": [f"0..{len(conflict.values) - 1}"]})
        value = conflict.values[choice]["value"]
    record = session.scalars(sa.select(InspectionRecord).where(InspectionRecord.id == conflict.record_id)
                             .with_for_update().execution_options(populate_existing=True)).one()
    conflict.__dict__.pop("_described", None)
    if record.version != record_version:
        raise ConflictStale(record_version=record_version, current_version=record.version,
                            current_value=record.fields.get(conflict.field))
    spec = {f["name"]: f for f in template(record.template_code)["fields"]}
    if not _check_value(spec[conflict.field], value):
        raise FieldType(fields={conflict.field: [f"类型应为 / type should be {spec[conflict.field]['type']}"]})
    fields = dict(record.fields)
    fields[conflict.field] = value
    new_version(session, record, fields, [conflict.field], op_id=None, device_id=None, user_id=by.id, reason=reason)
    record.open_conflicts = max(0, record.open_conflicts - 1)
    conflict.status = ConflictStatus.RESOLVED
    conflict.resolved_value, conflict.resolved_reason = value, reason
    conflict.resolved_by, conflict.resolved_at, conflict.resolved_version = by.id, utcnow(), record.version
    session.flush()
    audit.record(session, "sync:inspection_record:conflict_resolved",
                 subjects={"inspection": record.inspection_id, "inspection_record": record.id,
                           "sync_conflict": conflict.id},
                 payload={"field": conflict.field, "values": conflict.values, "chosen": value, "choice": choice,
                          "made_against": record_version, "version": record.version}, reason=reason)
    changes.emit(session, inspection_id=record.inspection_id, entity="inspection_record", entity_id=record.id,
                 op="upsert", data=record_snapshot(record))
    return conflict
