"""``enforce audit verify`` passes on an honest log and names the first bad entry after any
edit, deletion, reordering or truncation done behind the application's back with raw SQL."""
from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from server.extensions import db
from server.modules.audit import checkpoints, merkle
from server.modules.audit import operations as audit
from server.modules.audit.cli import audit_cli


@pytest.fixture()
def log(live_app):
    """41 entries in commits of 1–5, with checkpoints at 10, 25 and 41."""
    with live_app.app_context():
        n = 0
        for batch in range(20):
            for _ in range(batch % 5 + 1):
                if n == 41:
                    break
                audit.record(db.session, "test:thing:happened", subjects={"thing": n % 7}, payload={"n": n},
                             actor=audit.Actor("user", str(n % 3)))
                n += 1
            db.session.commit()
            if audit.head(db.session)[0] in (10, 25):  # batch sizes 1,2,3,4,5,1,… reach both
                checkpoints.publish(db.session, live_app.config)
                db.session.commit()
        checkpoints.publish(db.session, live_app.config)
        db.session.commit()
        assert audit.head(db.session)[0] == 41
    return live_app


def run_verify(app):
    result = app.test_cli_runner().invoke(audit_cli, ["verify"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def sql(app, statement, **params):
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text(statement), params)


def first_bad(output):
    match = re.search(r"first bad entry (\d+)", output)
    assert match, output
    return int(match.group(1))


def test_an_honest_log_verifies(log):
    code, output = run_verify(log)
    assert code == 0, output
    assert "41 entries" in output and "checkpoints verified" in output


def test_edited_body_is_named(log):
    sql(log, "UPDATE audit_entry SET body = :b WHERE idx = 17",
        b=b'{"idx":17,"tag":"test:thing:happened","payload":{"n":999}}')
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 17, output
    assert "leaf hash mismatch" in output


def test_edited_body_with_recomputed_leaf_hash_is_caught_by_the_tree(log):
    with log.app_context():
        body = db.session.scalar(sa.text("SELECT body FROM audit_entry WHERE idx = 22")).replace(b'"n":22}', b'"n":0}')
        db.session.rollback()
    sql(log, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE idx = 22", b=body, h=merkle.leaf_hash(body))
    code, output = run_verify(log)
    assert code == 1, output
    assert first_bad(output) == 22 and "entries 22..23 altered" in output, output


def test_fully_recomputed_tree_is_caught_by_the_signed_checkpoints(log):
    """The attacker rewrites entry 3 and every hash above it, head included: only signatures remain."""
    with log.app_context():
        rows = db.session.execute(sa.text("SELECT idx, body FROM audit_entry ORDER BY idx")).all()
        db.session.rollback()
    bodies = [body.replace(b'"n":3}', b'"n":33}') if idx == 3 else body for idx, body in rows]
    leaves = [merkle.leaf_hash(b) for b in bodies]
    sql(log, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE idx = 3", b=bodies[3], h=leaves[3])
    level, layer = 0, leaves
    while len(layer) > 1:
        layer = [merkle.node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        level += 1
        for i, h in enumerate(layer):
            sql(log, "UPDATE audit_node SET hash = :h WHERE level = :l AND idx = :i", h=h, l=level, i=i)
    sql(log, "UPDATE audit_head SET root_hash = :r", r=merkle.root(leaves))
    code, output = run_verify(log)
    assert code == 1, output
    assert "checkpoint #1 (size 10) signed a root the entries no longer give" in output, output


def test_deleted_entry_is_named(log):
    sql(log, "DELETE FROM audit_subject WHERE entry_idx = 30")
    sql(log, "DELETE FROM audit_entry WHERE idx = 30")
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 30, output
    assert "missing" in output


def test_reordered_entries_are_named(log):
    with log.app_context():
        a, b = (db.session.execute(sa.text("SELECT body, leaf_hash FROM audit_entry WHERE idx = :i"), {"i": i}).one()
                for i in (8, 12))
        db.session.rollback()
    sql(log, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE idx = 8", b=b[0], h=b[1])
    sql(log, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE idx = 12", b=a[0], h=a[1])
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 8, output
    assert "moved or reordered" in output


def test_truncation_is_caught_even_when_the_head_is_rewound(log):
    with log.app_context():
        root_38 = audit.root_at(db.session, 38)
        db.session.rollback()
    sql(log, "DELETE FROM audit_subject WHERE entry_idx >= 38")
    sql(log, "DELETE FROM audit_entry WHERE idx >= 38")
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 38, output
    # now hide it: drop the nodes above 38 and rewind the head
    sql(log, "DELETE FROM audit_node WHERE (idx + 1) * (1 << level) > 38")
    sql(log, "UPDATE audit_head SET size = 38, root_hash = :r", r=root_38)
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 38, output
    assert "is beyond the 38 entries" in output


def test_altered_columns_and_nodes_and_checkpoints_are_caught(log):
    sql(log, "UPDATE audit_entry SET actor_id = 'someone-else' WHERE idx = 5")
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 5 and "columns disagree" in output, output
    sql(log, "UPDATE audit_entry SET actor_id = '2' WHERE idx = 5")
    assert run_verify(log)[0] == 0

    sql(log, "DELETE FROM audit_node WHERE level = 2 AND idx = 3")
    code, output = run_verify(log)
    assert code == 1 and first_bad(output) == 12 and "missing" in output, output


def test_forged_checkpoint_is_caught(log):
    with log.app_context():
        note = db.session.scalar(sa.text("SELECT note FROM audit_checkpoint WHERE id = 2"))
        db.session.rollback()
    forged = note.replace("\n25\n", "\n24\n")
    sql(log, "UPDATE audit_checkpoint SET note = :n WHERE id = 2", n=forged)
    code, output = run_verify(log)
    assert code == 1 and "checkpoint #2" in output and "signature is invalid" in output, output


def test_key_hash_follows_signed_note(log):
    with log.app_context():
        key = checkpoints.log_verifier_key(log.config)
    expected = hashlib.sha256(key.name.encode() + b"\n\x01" + key.public_key).digest()[:4]
    assert key.key_hash == expected
