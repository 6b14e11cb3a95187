"""Writing the audit log and reading proofs from the stored tree.

``record()`` queues an entry on the current session; the entries are sequenced when that
session commits (``before_commit``): the writer takes the row lock on ``audit_head`` (an UPDATE,
so SQLite and PostgreSQL behave alike), numbers its entries from the head size, stores their
leaves and the new perfect-subtree nodes, and moves the head. The lock is held until COMMIT, so
indices follow commit order with no gaps, and a rolled-back transaction leaves nothing.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from flask import g, has_app_context, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session

from server.core import errors
from server.core.access import ANONYMOUS, Principal, current_principal
from server.core.canonical import canonical_json
from server.core.db import drop_rolled_back, utcnow
from server.core.http import request_id
from server.modules.audit import merkle
from server.modules.audit.models import AuditEntry, AuditHead, AuditNode, AuditSubject

_PENDING = "audit_pending"
FORMAT_VERSION = 1

IndexOutOfRange = errors.error_code(
    "audit.index_out_of_range", 422, "条目序号超出记录树范围", "The entry index is outside the log tree")
SizeOutOfRange = errors.error_code(
    "audit.size_out_of_range", 422, "树大小超出当前记录范围", "The tree size is outside the current log")
EmptyConsistency = errors.error_code(
    "audit.empty_consistency", 422, "不能对空树求一致性证明", "No consistency proof exists from an empty tree")


@dataclass
class Actor:
    kind: str  # user | device | system | anonymous
    id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        if principal.kind == "device":
            return cls("device", principal.device_id)
        if principal.kind == "user":
            return cls("user", str(principal.user_id))
        return cls("anonymous", None)


def _default_actor() -> Actor:
    """The request's principal; outside a request, the console or task named in ``g.audit_actor``."""
    if has_request_context():
        return Actor.of(current_principal())
    return Actor("system", g.get("audit_actor", "console") if has_app_context() else "console")


def system(task: str) -> Actor:
    return Actor("system", task)


@dataclass
class PendingEntry:
    tag: str
    actor: Actor
    subjects: list[tuple[str, str]]
    payload: dict[str, Any]
    request_id: str | None
    supersedes: int | None = None
    reason: str | None = None
    idx: int | None = field(default=None)  # set when sequenced
    owner: Any = field(default=None, repr=False)  # innermost session transaction at record time


def record(session: Session, tag: str, *, subjects: dict[str, Any] | Iterable[tuple[str, Any]] = (),
           payload: dict[str, Any] | None = None, actor: Actor | None = None,
           supersedes: int | None = None, reason: str | None = None) -> PendingEntry:
    """Queue an audit entry in ``session``'s transaction. Tag: ``source:subject:action``."""
    if tag.count(":") != 2 or not all(tag.split(":")):
        raise ValueError(f"audit tag {tag!r} must be source:subject:action")
    if supersedes is not None and not reason:
        raise ValueError("a correction needs a reason")
    pairs = subjects.items() if isinstance(subjects, dict) else subjects
    if isinstance(session, scoped_session):
        session = session()
    if not session.in_transaction():
        # Otherwise a rollback() before any SQL would end nothing and keep the entry queued.
        session.begin()
    entry = PendingEntry(
        tag=tag,
        actor=actor or _default_actor(),
        subjects=sorted({(str(kind), str(value)) for kind, value in pairs}),
        payload=payload or {},
        request_id=request_id(),
        supersedes=supersedes,
        reason=reason,
        owner=session.get_nested_transaction() or session.get_transaction(),
    )
    session.info.setdefault(_PENDING, []).append(entry)
    return entry


def entry_body(entry: PendingEntry, idx: int, at: dt.datetime) -> bytes:
    body: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "idx": idx,
        "time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tag": entry.tag,
        "actor": {"kind": entry.actor.kind, "id": entry.actor.id},
        "subjects": [f"{kind}:{value}" for kind, value in entry.subjects],
        "payload": entry.payload,
        "request_id": entry.request_id,
    }
    if entry.supersedes is not None:
        body["supersedes"] = entry.supersedes
        body["reason"] = entry.reason
    return canonical_json(body)


# ---- tree layout -------------------------------------------------------------------------------

def frontier_keys(size: int) -> list[tuple[int, int]]:
    """(level, idx) of the perfect subtrees along the right edge of a tree of ``size`` leaves."""
    keys, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def decompose(start: int, end: int) -> list[tuple[int, int]]:
    """Perfect aligned subtrees whose RFC 9162 combination is MTH(D[start:end]), start aligned."""
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return [(level, start >> level)]
    k = 1 << ((n - 1).bit_length() - 1)
    return decompose(start, start + k) + decompose(start + k, end)


def _combine(start: int, end: int, nodes: dict[tuple[int, int], bytes]) -> bytes:
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return nodes[(level, start >> level)]
    k = 1 << ((n - 1).bit_length() - 1)
    return merkle.node_hash(_combine(start, start + k, nodes), _combine(start + k, end, nodes))


def load_nodes(session: Session, keys: Iterable[tuple[int, int]], *,
               check_size: int | None = None) -> dict[tuple[int, int], bytes]:
    """Hashes of the given (level, idx) nodes in one query; level 0 are the leaves. With
    ``check_size``, the same query reads the head, and a size beyond it is refused first."""
    keys = set(keys)
    if not keys and check_size is None:
        return {}
    leaves = [idx for level, idx in keys if level == 0]
    inner = [(level, idx) for level, idx in keys if level > 0]
    parts = []
    if check_size is not None:  # level -1: the head's size, in the same round trip
        parts.append(sa.select(sa.literal(-1).label("level"), AuditHead.size,
                               sa.cast(sa.null(), sa.LargeBinary).label("hash")).where(AuditHead.id == 1))
    if leaves:
        parts.append(sa.select(sa.literal(0).label("level"), AuditEntry.idx, AuditEntry.leaf_hash.label("hash"))
                     .where(AuditEntry.idx.in_(leaves)))
    if inner:
        parts.append(sa.select(AuditNode.level, AuditNode.idx, AuditNode.hash)
                     .where(sa.tuple_(AuditNode.level, AuditNode.idx).in_(inner)))
    statement = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    found = {(level, idx): h for level, idx, h in session.execute(statement)}
    if check_size is not None:
        current = next(idx for level, idx in found if level == -1)
        if not 0 <= check_size <= current:
            raise SizeOutOfRange(f"size {check_size} is outside 0..{current}", size=check_size, log_size=current)
        del found[(-1, current)]
    missing = keys - found.keys()
    if missing:
        raise LookupError(f"audit tree nodes missing: {sorted(missing)[:5]}")
    return found


def subtree_hashes(session: Session, ranges: list[tuple[int, int]], *,
                   check_size: int | None = None) -> list[bytes]:
    """MTH of each [start, end) range, with one query for all of them (and the head's size)."""
    nodes = load_nodes(session, (key for start, end in ranges for key in decompose(start, end)),
                       check_size=check_size)
    return [_combine(start, end, nodes) for start, end in ranges]


# ---- proofs from the stored tree ---------------------------------------------------------------
# The proofs of RFC 9162 are lists of MTH(D[a:b]) over ranges that depend only on the index and
# sizes; every such range splits into O(log n) stored perfect subtrees, read in one query.

def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def path_ranges(m: int, start: int, end: int) -> list[tuple[int, int]]:
    """Ranges whose MTHs make PATH(m, D[start:end]) (RFC 9162 §2.1.3.1)."""
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return path_ranges(m, start, start + k) + [(start + k, end)]
    return path_ranges(m - k, start + k, end) + [(start, start + k)]


def subproof_ranges(m: int, start: int, end: int, complete: bool = True) -> list[tuple[int, int]]:
    """Ranges whose MTHs make SUBPROOF(m, D[start:end], b) (RFC 9162 §2.1.4.1)."""
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = _split(n)
    if m <= k:
        return subproof_ranges(m, start, start + k, complete) + [(start + k, end)]
    return subproof_ranges(m - k, start + k, end, False) + [(start, start + k)]


def _check_size(session: Session, size: int) -> None:
    current = session.execute(sa.select(AuditHead.size).where(AuditHead.id == 1)).scalar_one()
    if not 0 <= size <= current:
        raise SizeOutOfRange(f"size {size} is outside 0..{current}", size=size, log_size=current)


def root_at(session: Session, size: int) -> bytes:
    """MTH of the first ``size`` leaves, from the stored nodes (O(log n) rows)."""
    if size <= 0:
        _check_size(session, size)
        return merkle.EMPTY_ROOT
    return subtree_hashes(session, [(0, size)], check_size=size)[0]


def inclusion_proof_stored(session: Session, index: int, size: int) -> list[bytes]:
    """Same as ``merkle.inclusion_proof(index, leaves[:size])``, read from the stored tree."""
    if size < 0:
        _check_size(session, size)
    if not 0 <= index < size:
        _check_size(session, size)  # a size beyond the log is named before a bad index
        raise IndexOutOfRange(f"index {index} is outside a tree of size {size}", index=index, size=size)
    return subtree_hashes(session, path_ranges(index, 0, size), check_size=size)


def consistency_proof_stored(session: Session, old: int, new: int) -> list[bytes]:
    """Same as ``merkle.consistency_proof(old, leaves[:new])``, read from the stored tree."""
    if old <= 0:
        raise EmptyConsistency(f"old size {old}: consistency needs 0 < old <= new", old=old, new=new)
    if old > new:
        _check_size(session, new)  # a size beyond the log is named first
        raise SizeOutOfRange(f"old size {old} is larger than new size {new}", old=old, new=new)
    return subtree_hashes(session, subproof_ranges(old, 0, new), check_size=new)


# ---- sequencing -------------------------------------------------------------------------------

def _frontier(session: Session, size: int, stored: bytes) -> list[tuple[int, bytes]]:
    """The right edge of the tree as (level, hash), left to right, from the head row; a head whose
    frontier does not fit its size (written by a bulk loader) is read from the stored nodes."""
    keys = frontier_keys(size)
    if len(stored) == 32 * len(keys):
        return [(level, stored[32 * i:32 * i + 32]) for i, (level, _) in enumerate(keys)]
    nodes = load_nodes(session, keys)
    return [(level, nodes[(level, idx)]) for level, idx in keys]


# PostgreSQL: the leaves, the subject index, the new nodes and the head in one statement (one round
# trip whatever the batch size). Each table's rows travel as one JSON document (hashes in hex,
# bodies as their UTF-8 text): json.dumps is far cheaper than adapting a dozen typed arrays element
# by element, and three documents are parsed once each. Both statements go straight to the psycopg cursor of the session's
# connection (same transaction): SQLAlchemy's per-statement work was a third of a commit's CPU.
_LOCK_PG = "UPDATE audit_head SET size = size WHERE id = 1 RETURNING size, frontier"
_WRITE_PG = """
WITH entries AS (
    INSERT INTO audit_entry (idx, tag, actor_kind, actor_id, request_id, supersedes, body, leaf_hash, recorded_at)
    SELECT e.idx, e.tag, e.actor_kind, e.actor_id, e.request_id, e.supersedes, convert_to(e.body, 'UTF8'),
           decode(e.leaf_hash, 'hex'), CAST(%(at)s AS timestamptz)
    FROM json_to_recordset(CAST(%(entries)s AS json)) AS e(idx bigint, tag text, actor_kind text, actor_id text,
                                                          request_id text, supersedes bigint, body text, leaf_hash text)),
subjects AS (
    INSERT INTO audit_subject (entry_idx, subject_type, subject_id)
    SELECT s.i, s.t, s.v FROM json_to_recordset(CAST(%(subjects)s AS json)) AS s(i bigint, t text, v text)),
nodes AS (
    INSERT INTO audit_node (level, idx, hash)
    SELECT n.l, n.i, decode(n.h, 'hex') FROM json_to_recordset(CAST(%(nodes)s AS json)) AS n(l smallint, i bigint, h text))
UPDATE audit_head SET size = %(size)s, root_hash = %(root)s, frontier = %(frontier)s, updated_at = %(at)s WHERE id = 1
"""


def _sequence(session: Session) -> None:
    pending: list[PendingEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    # Taking the row lock with an UPDATE works the same on SQLite (write lock) and PostgreSQL;
    # RETURNING reads the size and right edge the lock protects in the same round trip.
    cursor = None
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        size, stored = cursor.execute(_LOCK_PG).fetchone()
    else:
        size, stored = session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(size=AuditHead.size)
                                       .returning(AuditHead.size, AuditHead.frontier)).one()
    frontier = _frontier(session, size, stored)

    at = utcnow()
    entry_rows, subject_rows, node_rows = [], [], []
    leaf_hash, node_hash = merkle.leaf_hash, merkle.node_hash
    for offset, entry in enumerate(pending):
        idx = size + offset
        body = entry_body(entry, idx, at)
        h = leaf_hash(body)
        entry.idx = idx
        entry_rows.append((idx, entry.tag, entry.actor.kind, entry.actor.id, entry.request_id, entry.supersedes,
                           body, h))
        subject_rows.extend((idx, kind, value) for kind, value in entry.subjects)
        # Merge equal-height subtrees at the right edge, storing each completed node.
        level, node_idx, current = 0, idx, h
        while frontier and frontier[-1][0] == level:
            current = node_hash(frontier.pop()[1], current)
            level += 1
            node_idx >>= 1
            node_rows.append((level, node_idx, current))
        frontier.append((level, current))

    root = frontier[-1][1]
    for _, left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    new_size = size + len(pending)
    edge = b"".join(h for _, h in frontier)

    if cursor is not None:
        entries = [{"idx": idx, "tag": tag, "actor_kind": kind, "actor_id": actor_id, "request_id": request,
                    "supersedes": supersedes, "body": body.decode(), "leaf_hash": h.hex()}
                   for idx, tag, kind, actor_id, request, supersedes, body, h in entry_rows]
        subjects = [{"i": idx, "t": kind, "v": value} for idx, kind, value in subject_rows]
        nodes = [{"l": level, "i": idx, "h": h.hex()} for level, idx, h in node_rows]
        cursor.execute(_WRITE_PG, {"entries": json.dumps(entries, ensure_ascii=False),
                                   "subjects": json.dumps(subjects, ensure_ascii=False), "nodes": json.dumps(nodes),
                                   "size": new_size, "root": root, "frontier": edge, "at": at})
        cursor.close()
        return
    # Elsewhere (SQLite, in-process): Core executemany, no ORM identity bookkeeping.
    session.execute(AuditEntry.__table__.insert(), [
        {"idx": idx, "tag": tag, "actor_kind": kind, "actor_id": actor_id, "request_id": request,
         "supersedes": supersedes, "body": body, "leaf_hash": h, "recorded_at": at}
        for idx, tag, kind, actor_id, request, supersedes, body, h in entry_rows])
    if subject_rows:
        session.execute(AuditSubject.__table__.insert(), [
            {"entry_idx": idx, "subject_type": kind, "subject_id": value} for idx, kind, value in subject_rows])
    if node_rows:
        session.execute(AuditNode.__table__.insert(), [
            {"level": level, "idx": idx, "hash": h} for level, idx, h in node_rows])
    session.execute(sa.update(AuditHead).where(AuditHead.id == 1)
                    .values(size=new_size, root_hash=root, frontier=edge, updated_at=at))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # A SAVEPOINT release fires before_commit too: sequence once, at the outermost COMMIT, so
    # the audit_head lock is taken as late and held as briefly as possible.
    if session.info.get(_PENDING) and not session.in_nested_transaction():
        _sequence(session)


@event.listens_for(Session, "after_transaction_end")
def _discard_unsequenced(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_soft_rollback")
def _discard_rolled_back(session: Session, previous_transaction: Any) -> None:
    """A rolled-back savepoint takes its entries with it; the outer commit must not log them."""
    pending: list[PendingEntry] | None = session.info.get(_PENDING)
    if not pending or previous_transaction.parent is None:
        return

    drop_rolled_back(pending, previous_transaction)


def head(session: Session) -> tuple[int, bytes]:
    size, root = session.execute(sa.select(AuditHead.size, AuditHead.root_hash).where(AuditHead.id == 1)).one()
    return size, root


# ---- sealed entries ----------------------------------------------------------------------------
# Some entries must not be read by everyone who may read the log until a later event: a drawn
# target stays secret until the visit (DOMAIN-RULES rule 6). The module that owns the secret
# registers a seal; ``read_entries`` leaves out the entries sealed for the reader. Every path that
# returns entry content (list, detail, a subject's history, proof files, transfer packages) reads
# through it; tests/audit/test_sealed_read.py fails if code elsewhere reads entry bodies itself.
# The tree and its proofs are unchanged: a seal hides bodies from a reader, never an entry from the log.

@dataclass(frozen=True)
class Seal:
    subject_type: str
    sealed_ids: Callable[[Principal], Any]  # a SELECT of the subject ids sealed for this reader, or None
    tags: tuple[str, ...] = ()  # only entries with these tags; all entries of the subject if empty


_SEALS: list[Seal] = []


def seal(subject_type: str, sealed_ids: Callable[[Principal], Any], *, tags: Iterable[str] = ()) -> None:
    _SEALS.append(Seal(subject_type, sealed_ids, tuple(tags)))


def _unsealed(reader: Principal) -> list[Any]:
    conditions = []
    for one in _SEALS:
        ids = one.sealed_ids(reader)
        if ids is None:
            continue
        hidden: Any = sa.exists().where(AuditSubject.entry_idx == AuditEntry.idx,
                                        AuditSubject.subject_type == one.subject_type, AuditSubject.subject_id.in_(ids))
        if one.tags:
            hidden = sa.and_(AuditEntry.tag.in_(one.tags), hidden)
        conditions.append(sa.not_(hidden))
    return conditions


# What leaves the bureau in an export (a transfer package) is read as by no one in particular:
# whatever is sealed for anybody stays out.
EXPORT_READER = ANONYMOUS


def read_entries(reader: Principal, *columns: Any) -> sa.Select[Any]:
    """The one sealed read of the log: entries (or ``columns`` of them) that ``reader`` may read."""
    return sa.select(*(columns or (AuditEntry,))).where(*_unsealed(reader))


def read_entry(session: Session, idx: int, reader: Principal) -> AuditEntry | None:
    """Entry ``idx`` if it exists and is not sealed for ``reader``; a sealed entry is not found either."""
    if not 0 <= idx < 2 ** 63:
        return None
    return session.scalar(read_entries(reader).where(AuditEntry.idx == idx))


def entries_query(*, reader: Principal, subject_type: str | None = None, subject_id: str | None = None,
                  actor_kind: str | None = None, actor_id: str | None = None, tag: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None, order: str = "desc",
                  idx: int | None = None) -> sa.Select[Any]:
    """Entries ``reader`` may read, filtered; the tag filter is a prefix (``web:login`` finds every login)."""
    query = read_entries(reader)
    if idx is not None:
        query = query.where(AuditEntry.idx == idx)
    if subject_type is not None:
        subjects = sa.select(AuditSubject.entry_idx).where(AuditSubject.subject_type == subject_type)
        if subject_id is not None:
            subjects = subjects.where(AuditSubject.subject_id == subject_id)
        query = query.where(AuditEntry.idx.in_(subjects))
    if actor_kind is not None:
        query = query.where(AuditEntry.actor_kind == actor_kind)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if tag is not None:
        query = query.where(AuditEntry.tag.startswith(tag, autoescape=True))
    if since is not None:
        query = query.where(AuditEntry.recorded_at >= since)
    if until is not None:
        query = query.where(AuditEntry.recorded_at < until)
    return query.order_by(AuditEntry.idx.asc() if order == "asc" else AuditEntry.idx.desc())
