"""The change log devices pull: entries are queued in the session and numbered at commit.

Numbering at commit time under the ``sync_head`` row lock (the ``audit_head`` pattern) is what
makes the cursor safe: an autoincrement id is taken at INSERT, so a transaction that inserts
id 41 and commits after another one committed id 42 would be skipped by a device that already
pulled up to 42. Here a seq exists only once its transaction is committing, and the lock is
held until COMMIT, so every seq ≤ ``sync_head.last_seq`` a reader sees is already visible.

Changes made by other modules (assigning, reassigning, cancelling inspections) are picked up
by a flush listener, so the inspections module needs no knowledge of sync.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session

from server.core.db import among, drop_rolled_back, rows_inserted, utcnow
from server.modules.audit import operations as _audit  # noqa: F401  (its before_commit hook runs first)
from server.modules.inspections.models import Inspection, InspectionMember, InspectionStatus
from server.modules.sync.models import SyncChange, SyncHead

_PENDING = "sync_changes_pending"
_TOUCHED = "sync_inspections_touched"
_REMOVED = "sync_members_removed"
_INSERTED = "sync_inspection_rows_inserted"


@dataclass
class PendingChange:
    inspection_id: str
    entity: str
    entity_id: str
    op: str
    data: dict[str, Any] | None
    audience_user_id: int | None = None
    owner: Any = field(default=None, repr=False)


def real_session(session: Any) -> Session:
    """The Session behind Flask-SQLAlchemy's scoped_session (savepoint ownership needs it)."""
    return session() if isinstance(session, scoped_session) else session


def emit(session: Session, *, inspection_id: str, entity: str, entity_id: str, op: str,
         data: dict[str, Any] | None, audience_user_id: int | None = None) -> None:
    """Queue a change for the devices of ``inspection_id``'s team (or of one user)."""
    session = real_session(session)
    session.info.setdefault(_PENDING, []).append(PendingChange(
        inspection_id, entity, str(entity_id), op, data, audience_user_id,
        owner=session.get_nested_transaction() or session.get_transaction()))


def _head(seq: int, change: PendingChange, at: str) -> dict[str, Any]:
    head = {"seq": seq, "entity": change.entity, "id": change.entity_id, "op": change.op,
            "inspection_id": change.inspection_id, "at": at}
    if change.data is not None:
        head["data"] = change.data
    return head


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def inspection_snapshot(inspection: Any, members: list[Any] | None = None) -> dict[str, Any]:
    """What a device keeps of an inspection (its assignment is read-only to devices), from the ORM
    object or from rows with the same column names and Python values (enums as enums)."""
    members = inspection.members if members is None else members
    return {
        "id": inspection.id, "status": inspection.status.value, "kind": inspection.kind.value,
        "version": inspection.version, "target_id": inspection.target_id, "unit_id": inspection.unit_id,
        "window_start": inspection.window_start.isoformat(), "window_end": inspection.window_end.isoformat(),
        "purpose": inspection.purpose,
        "members": [{"user_id": m.user_id, "team_role": m.team_role.value,
                     "certificate_number": m.certificate_number} for m in members],
    }


def _emit_inspection_changes(session: Session) -> None:
    touched: set[str] = session.info.pop(_TOUCHED, set())
    removed: set[tuple[str, int]] = session.info.pop(_REMOVED, set())
    inserted: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = session.info.pop(_INSERTED, {})
    stale = touched | {inspection_id for inspection_id, _ in removed}
    # Rows this transaction inserted with insert_rows and did not change since are snapshotted as
    # inserted (a draw's 10,000 inspections); the rest are read back as plain rows.
    snapshots = {inspection_id: (SimpleNamespace(**row), [SimpleNamespace(**m) for m in members])
                 for inspection_id, (row, members) in inserted.items() if inspection_id not in stale}
    columns = [Inspection.id, Inspection.status, Inspection.kind, Inspection.version, Inspection.target_id,
               Inspection.unit_id, Inspection.window_start, Inspection.window_end, Inspection.purpose]
    ids = sorted(stale)
    members: dict[str, list[Any]] = {}
    if ids:
        snapshots.update((row.id, (row, [])) for row in session.execute(
            sa.select(*columns).where(among(Inspection.id, ids))))
        for member in session.execute(sa.select(InspectionMember.inspection_id, InspectionMember.user_id,
                                                InspectionMember.team_role, InspectionMember.certificate_number)
                                      .where(among(InspectionMember.inspection_id, ids),
                                             InspectionMember.removed_at.is_(None))
                                      .order_by(InspectionMember.id)):
            members.setdefault(member.inspection_id, []).append(member)
    for inspection_id, user_id in sorted(removed):
        if all(m.user_id != user_id for m in members.get(inspection_id, ())):
            # reassigned away: that device drops the inspection
            emit(session, inspection_id=inspection_id, entity="inspection", entity_id=inspection_id,
                 op="tombstone", data={"reason": "unassigned"}, audience_user_id=user_id)
    for inspection_id in sorted(snapshots):
        inspection, inserted_members = snapshots[inspection_id]
        if inspection.status is InspectionStatus.CANCELLED:
            emit(session, inspection_id=inspection_id, entity="inspection", entity_id=inspection_id,
                 op="tombstone", data={"reason": "cancelled"})
        else:
            emit(session, inspection_id=inspection_id, entity="inspection", entity_id=inspection_id, op="upsert",
                 data=inspection_snapshot(inspection, members.get(inspection_id, inserted_members)))


# PostgreSQL: the numbered changes and the head in one statement, the rows as one JSON document
# (as the audit log does): one round trip, instead of one pipelined INSERT per change. Each body
# is a nested value read as ``json``, whose text PostgreSQL keeps as written: the stored body is
# the same text _json(head) gives, encoded once with the rest instead of once more as a string.
_WRITE_PG = """
WITH changes AS (
    INSERT INTO sync_change (seq, inspection_id, audience_user_id, entity, entity_id, op, body, committed_at)
    SELECT c.seq, c.inspection_id, c.audience_user_id, c.entity, c.entity_id, c.op, CAST(c.body AS text),
           CAST(%(at)s AS timestamptz)
    FROM json_to_recordset(CAST(%(rows)s AS json)) AS c(seq bigint, inspection_id text, audience_user_id integer,
                                                        entity text, entity_id text, op text, body json))
UPDATE sync_head SET last_seq = %(last)s WHERE id = 1
"""


def _sequence(session: Session) -> None:
    pending: list[PendingChange] = session.info.pop(_PENDING, [])
    if not pending:
        return
    last = session.execute(sa.update(SyncHead).where(SyncHead.id == 1).values(last_seq=SyncHead.last_seq)
                           .returning(SyncHead.last_seq)).scalar_one()
    now = utcnow()
    at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        rows_pg = [{"seq": last + offset, "inspection_id": change.inspection_id,
                    "audience_user_id": change.audience_user_id, "entity": change.entity,
                    "entity_id": change.entity_id, "op": change.op, "body": _head(last + offset, change, at)}
                   for offset, change in enumerate(pending, start=1)]
        with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(_WRITE_PG, {"rows": _json(rows_pg), "at": now, "last": last + len(pending)})
        return
    rows = []
    for offset, change in enumerate(pending, start=1):
        rows.append({"seq": last + offset, "inspection_id": change.inspection_id,
                     "audience_user_id": change.audience_user_id, "entity": change.entity,
                     "entity_id": change.entity_id, "op": change.op, "body": _json(_head(last + offset, change, at)),
                     "committed_at": now})
    session.execute(SyncChange.__table__.insert(), rows)
    session.execute(sa.update(SyncHead).where(SyncHead.id == 1).values(last_seq=last + len(pending)))


@event.listens_for(Session, "after_flush")
def _watch_inspections(session: Session, _context: Any) -> None:
    touched: set[str] | None = None
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Inspection):
            touched = session.info.setdefault(_TOUCHED, set())
            touched.add(obj.id)
        elif isinstance(obj, InspectionMember):
            touched = session.info.setdefault(_TOUCHED, set())
            touched.add(obj.inspection_id)
            if obj.removed_at is not None:
                session.info.setdefault(_REMOVED, set()).add((obj.inspection_id, obj.user_id))


@rows_inserted.connect
def _watch_row_inserts(table: Any, *, session: Any, rows: list[dict[str, Any]]) -> None:
    """Set-based inserts (``insert_rows``, a draw's thousands of inspections) skip the flush
    listener: their rows are kept to snapshot at commit."""
    info = real_session(session).info
    if table is Inspection.__table__:
        inserted = info.setdefault(_INSERTED, {})
        inserted.update((row["id"], (row, [])) for row in rows)
    elif table is InspectionMember.__table__:
        inserted = info.get(_INSERTED, {})
        for row in rows:
            if row["inspection_id"] in inserted:
                inserted[row["inspection_id"]][1].append(row)
            else:  # a member added to an inspection that existed before: read it back at commit
                info.setdefault(_TOUCHED, set()).add(row["inspection_id"])


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT release: number the changes once, at the real COMMIT, lock held briefly
    session.flush()
    if session.info.get(_TOUCHED) or session.info.get(_REMOVED) or session.info.get(_INSERTED):
        _emit_inspection_changes(session)
    if session.info.get(_PENDING):
        _sequence(session)


@event.listens_for(Session, "after_transaction_end")
def _discard(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        for key in (_PENDING, _TOUCHED, _REMOVED, _INSERTED):
            session.info.pop(key, None)


@event.listens_for(Session, "after_soft_rollback")
def _discard_rolled_back(session: Session, previous_transaction: Any) -> None:
    """Changes queued inside a rolled-back savepoint (one rejected sync item) are dropped."""
    pending: list[PendingChange] | None = session.info.get(_PENDING)
    if not pending or previous_transaction.parent is None:
        return

    drop_rolled_back(pending, previous_transaction)
