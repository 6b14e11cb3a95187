"""Proofs read from the stored tree equal the pure maths on all leaves; sequencing keeps no gaps."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from server.modules.audit import merkle
from server.modules.audit import operations as audit
from server.modules.audit.models import AuditEntry, AuditNode, AuditSubject


def _append(session, count, per_commit=1):
    for start in range(0, count, per_commit):
        for i in range(start, min(count, start + per_commit)):
            audit.record(session, "test:thing:happened", subjects={"thing": i}, payload={"n": i},
                         actor=audit.system("test"))
        session.commit()


def _leaves(session):
    return list(session.scalars(sa.select(AuditEntry.leaf_hash).order_by(AuditEntry.idx)))


def test_stored_proofs_equal_the_maths_for_every_size_index_and_pair(db_session):
    base, _ = audit.head(db_session)
    for size in range(1, 34):
        _append(db_session, 1)
        leaves = _leaves(db_session)
        n = base + size
        assert len(leaves) == n
        assert audit.head(db_session)[1] == merkle.root(leaves) == audit.root_at(db_session, n)
        for m in range(base, n):
            assert audit.inclusion_proof_stored(db_session, m, n) == merkle.inclusion_proof(m, leaves)
        for old in range(max(1, base), n + 1):
            assert audit.consistency_proof_stored(db_session, old, n) == merkle.consistency_proof(old, leaves)
    # older sizes keep answering from the nodes stored since
    leaves = _leaves(db_session)
    for old in range(max(1, base), base + 34):
        assert audit.root_at(db_session, old) == merkle.root(leaves[:old])
        assert audit.inclusion_proof_stored(db_session, old - 1, old) == merkle.inclusion_proof(old - 1, leaves[:old])


def test_batches_store_every_perfect_subtree_and_nothing_else(db_session):
    _append(db_session, 100, per_commit=7)
    n, root = audit.head(db_session)
    leaves = _leaves(db_session)
    assert root == merkle.root(leaves)
    assert list(db_session.scalars(sa.select(AuditEntry.idx).order_by(AuditEntry.idx))) == list(range(n))
    stored = {(lv, i): h for lv, i, h in db_session.execute(sa.select(AuditNode.level, AuditNode.idx, AuditNode.hash))}
    expected = {}
    level, layer = 0, leaves
    while len(layer) > 1:
        layer = [merkle.node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        level += 1
        expected.update({(level, i): h for i, h in enumerate(layer)})
    assert stored == expected
    assert len(stored) == n - bin(n).count("1")


def test_rollback_leaves_nothing_and_savepoint_rollback_drops_its_entries(db_session):
    size, root = audit.head(db_session)
    audit.record(db_session, "test:thing:rolled_back", actor=audit.system("test"))
    db_session.rollback()
    db_session.commit()
    assert audit.head(db_session) == (size, root)

    audit.record(db_session, "test:thing:kept", actor=audit.system("test"))
    nested = db_session.begin_nested()
    audit.record(db_session, "test:thing:in_savepoint", actor=audit.system("test"))
    nested.rollback()
    with db_session.begin_nested():
        audit.record(db_session, "test:thing:in_released_savepoint", actor=audit.system("test"))
    db_session.commit()
    tags = list(db_session.scalars(sa.select(AuditEntry.tag).where(AuditEntry.idx >= size).order_by(AuditEntry.idx)))
    assert tags == ["test:thing:kept", "test:thing:in_released_savepoint"]


def test_released_savepoints_do_not_sequence_only_the_outer_commit_does(db_session):
    size, _ = audit.head(db_session)
    for i in range(3):  # the sync push: one savepoint per item
        with db_session.begin_nested():
            audit.record(db_session, "test:thing:in_savepoint", payload={"i": i}, actor=audit.system("test"))
        assert audit.head(db_session)[0] == size, "a savepoint release sequenced (and took the head lock)"
    entries = [audit.record(db_session, "test:thing:outer", actor=audit.system("test"))]
    db_session.commit()
    assert audit.head(db_session)[0] == size + 4
    assert entries[0].idx == size + 3
    tags = list(db_session.scalars(sa.select(AuditEntry.tag).where(AuditEntry.idx >= size).order_by(AuditEntry.idx)))
    assert tags == ["test:thing:in_savepoint"] * 3 + ["test:thing:outer"]


def test_head_keeps_the_frontier_and_a_head_without_one_falls_back_to_the_nodes(db_session):
    from server.modules.audit.models import AuditHead

    _append(db_session, 13, per_commit=4)
    size, stored = db_session.execute(sa.select(AuditHead.size, AuditHead.frontier)).one()
    keys = audit.frontier_keys(size)
    nodes = audit.load_nodes(db_session, keys)
    assert stored == b"".join(nodes[key] for key in keys)
    # A bulk loader that only set size and root: the sequencer reads the right edge from the nodes.
    db_session.execute(sa.update(AuditHead).values(frontier=b""))
    db_session.commit()
    _append(db_session, 6, per_commit=3)
    leaves = _leaves(db_session)
    assert audit.head(db_session)[1] == merkle.root(leaves)


def test_rollback_before_any_sql_drops_the_entry(db_session):
    db_session.remove()  # a fresh session: record() is its first act, no transaction begun yet
    audit.record(db_session, "test:thing:rolled_back_early", actor=audit.system("test"))
    db_session.rollback()
    kept = audit.record(db_session, "test:thing:kept", actor=audit.system("test"))
    db_session.commit()
    assert db_session.scalar(sa.select(AuditEntry.tag).where(AuditEntry.idx == kept.idx - 1)) != \
        "test:thing:rolled_back_early"
    assert db_session.get(AuditEntry, kept.idx).tag == "test:thing:kept"
    assert db_session.scalar(sa.select(sa.func.count()).where(AuditEntry.tag == "test:thing:rolled_back_early")) == 0


def test_subjects_are_indexed(db_session):
    entry = audit.record(db_session, "test:case:filed", subjects={"case": 7, "target": "91611002MA0000001X"},
                         actor=audit.system("test"))
    db_session.commit()
    rows = set(db_session.execute(sa.select(AuditSubject.subject_type, AuditSubject.subject_id)
                                  .where(AuditSubject.entry_idx == entry.idx)))
    assert rows == {("case", "7"), ("target", "91611002MA0000001X")}


def test_bad_proof_requests_raise_contract_errors(db_session):
    _append(db_session, 5)
    n, _ = audit.head(db_session)
    with pytest.raises(audit.IndexOutOfRange):
        audit.inclusion_proof_stored(db_session, n, n)
    with pytest.raises(audit.IndexOutOfRange):
        audit.inclusion_proof_stored(db_session, -1, n)
    with pytest.raises(audit.SizeOutOfRange):
        audit.inclusion_proof_stored(db_session, 0, n + 1)
    with pytest.raises(audit.EmptyConsistency):
        audit.consistency_proof_stored(db_session, 0, n)
    with pytest.raises(audit.SizeOutOfRange):
        audit.consistency_proof_stored(db_session, 3, 2)
    with pytest.raises(audit.SizeOutOfRange):
        audit.consistency_proof_stored(db_session, 1, n + 1)
    with pytest.raises(audit.SizeOutOfRange):
        audit.root_at(db_session, n + 1)
    assert audit.root_at(db_session, 0) == merkle.EMPTY_ROOT
    assert audit.IndexOutOfRange.code == "audit.index_out_of_range"


def test_a_correction_supersedes_with_a_reason(db_session):
    first = audit.record(db_session, "test:record:written", payload={"v": 1}, actor=audit.system("test"))
    db_session.commit()
    with pytest.raises(ValueError):
        audit.record(db_session, "test:record:corrected", supersedes=first.idx, actor=audit.system("test"))
    fix = audit.record(db_session, "test:record:corrected", payload={"v": 2}, supersedes=first.idx,
                       reason="录入错误 typo", actor=audit.system("test"))
    db_session.commit()
    row = db_session.get(AuditEntry, fix.idx)
    assert row.supersedes == first.idx and b'"reason":"' in row.body
