"""``enforce backup`` / ``enforce restore`` on the suite's database (SQLite, or PostgreSQL in .ci/run's
second pass): a consistent copy, blobs copied once and hash-checked, the audit log verified after a
restore, and a restore behind a published checkpoint refused a new checkpoint until an admin records
it (issue 16, item 4)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from server.core.storage import get_store, put_bytes
from server.extensions import db
from server.modules.audit import checkpoints, rollback
from server.modules.audit import operations as audit
from server.modules.audit.cli import audit_cli
from server.modules.audit.integrity import verify_log
from server.modules.audit.models import AuditEntry
from server.modules.backup.cli import backup_cli, restore_cli
from server.modules.setup.cli import setup_cli
from tests import db as testdb

ORG = Path(__file__).resolve().parent.parent / "deploy" / "shangluo.yaml"
pytestmark = pytest.mark.timeout(240)


def _cli(app, command, *args):
    result = app.test_cli_runner().invoke(command, [str(a) for a in args])
    return result


def _entries(app, n: int, label: str) -> None:
    with app.app_context():
        for i in range(n):
            audit.record(db.session, "system:test:noted", payload={"label": label, "i": i})
        db.session.commit()


def _publish(app) -> str:
    with app.app_context():
        cp = checkpoints.publish(db.session, app.config)
        db.session.commit()
        return checkpoints.served_note(db.session, cp)


def _empty_target(tmp_path: Path, name: str):
    """A second installation: empty database (not migrated), its own blob store, the same log key."""
    instance = tmp_path / name
    instance.mkdir()
    return testdb.make_app(testdb.scratch_database_url(instance, name), tmp_path,
                           STORAGE_URL=(instance / "blobs").as_uri())


@pytest.fixture()
def source(fresh_app, tmp_path):
    app = fresh_app("bk")
    assert _cli(app, setup_cli, "--org", ORG).exit_code == 0
    with app.app_context():
        blobs = [put_bytes(f"现场照片 {i}".encode() * 1000) for i in range(3)]
    _entries(app, 5, "before backup")
    note = _publish(app)
    return app, blobs, note


def _close(*apps):
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_backup_then_restore_into_an_empty_installation(source, tmp_path):
    app, blobs, note = source
    dest = tmp_path / "backups"
    first = _cli(app, backup_cli, dest)
    assert first.exit_code == 0, first.output + first.stderr
    assert "3 copied" in first.output
    with app.app_context():
        blobs.append(put_bytes(b"a fourth blob, after the first backup"))
    second = _cli(app, backup_cli, dest)
    assert second.exit_code == 0 and "(1 copied" in second.output  # only what DEST lacked

    snapshot = dest / "snapshots" / (dest / "LATEST").read_text().strip()
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert sorted(manifest["blobs"]) == sorted(blobs)
    with app.app_context():
        size, _ = audit.head(db.session)
    assert manifest["audit"]["size"] == size and manifest["checkpoint"]["size"] <= size
    assert (snapshot / "checkpoint.txt").read_text() == note

    target = _empty_target(tmp_path, "restored")
    try:
        restored = _cli(target, restore_cli, dest)
        assert restored.exit_code == 0, restored.output + restored.stderr
        assert "audit log and every blob verified" in restored.output
        verified = _cli(target, audit_cli, "verify")
        assert verified.exit_code == 0 and "OK:" in verified.output, verified.output + verified.stderr
        with target.app_context():
            assert verify_log(db.session, target.config).ok
            db.session.rollback()  # verify_log streams on the session's connection
            assert all(get_store().exists(d) for d in blobs)
            assert rollback.pending(db.session) is None
            [entry] = [json.loads(b) for b in db.session.scalars(
                sa.select(AuditEntry.body).where(AuditEntry.tag == "system:backup:restored"))]
            assert entry["payload"]["audit_size"] == size and entry["payload"]["log_verified"]
            checkpoints.publish(db.session, target.config)  # not behind anything published: allowed
            db.session.commit()
        again = _cli(target, restore_cli, dest)
        assert again.exit_code == 1 and "backup.target_not_empty" in again.output + again.stderr
    finally:
        _close(target)


def test_a_damaged_blob_in_the_backup_fails_the_restore(source, tmp_path):
    app, blobs, _ = source
    dest = tmp_path / "backups"
    assert _cli(app, backup_cli, dest).exit_code == 0
    damaged = dest / "blobs" / blobs[0][:2] / blobs[0][2:4] / blobs[0]
    damaged.chmod(0o644)
    damaged.write_bytes(b"not the photo")
    target = _empty_target(tmp_path, "damaged")
    try:
        result = _cli(target, restore_cli, dest)
        assert result.exit_code == 1
        assert f"blob damaged or missing: {blobs[0]}" in result.stderr
    finally:
        _close(target)


def test_a_restore_behind_a_published_checkpoint_waits_for_an_admin(source, tmp_path):
    app, _, _ = source
    old = tmp_path / "old"
    assert _cli(app, backup_cli, old).exit_code == 0
    _entries(app, 4, "after the backup")
    published = tmp_path / "published-checkpoint.txt"
    published.write_text(_publish(app))  # the public saw this one

    target = _empty_target(tmp_path, "rolledback")
    try:
        result = _cli(target, restore_cli, old, "--published-checkpoint", published)
        assert result.exit_code == 0, result.output + result.stderr
        assert "ROLLBACK" in result.stderr
        with target.app_context():
            detected = rollback.pending(db.session)
            assert detected is not None
            body = json.loads(db.session.scalar(sa.select(AuditEntry.body).where(AuditEntry.idx == detected)))
            assert body["tag"] == rollback.DETECTED and body["payload"]["why"] == "shorter"
            with pytest.raises(rollback.RollbackUnrecorded):
                checkpoints.publish(db.session, target.config)
            db.session.rollback()

        refused = _cli(target, audit_cli, "record-rollback", "--admin", "nobody", "--reason", "x")
        assert refused.exit_code == 1 and "audit.rollback_needs_admin" in refused.output + refused.stderr
        recorded = _cli(target, audit_cli, "record-rollback", "--admin", "admin",
                        "--reason", "2026-12-08 磁盘故障，从前一日备份恢复 / disk failure, restored from the previous day")
        assert recorded.exit_code == 0, recorded.output + recorded.stderr
        with target.app_context():
            assert rollback.pending(db.session) is None
            [body] = [json.loads(b) for b in db.session.scalars(
                sa.select(AuditEntry.body).where(AuditEntry.tag == rollback.RECORDED))]
            assert body["payload"]["detected_entry"] == detected and body["payload"]["detected"]["published_size"] > 0
            checkpoints.publish(db.session, target.config)
            db.session.commit()
            assert verify_log(db.session, target.config).ok
        check = _cli(target, audit_cli, "check-published", published)
        assert check.exit_code == 3  # still not an extension of what was published; recorded as such again
    finally:
        _close(target)


def test_both_stores_list_their_digests_for_a_backup(tmp_path, monkeypatch):
    """A backup enumerates the blob store: local folders, or an S3 bucket (a real moto server)."""
    import hashlib
    import socket

    from moto.server import ThreadedMotoServer

    from server.core.storage import LocalStore, from_url

    blobs = {hashlib.sha256(b).hexdigest(): b for b in (b"one", b"two", b"three")}
    for name, body in blobs.items():
        (tmp_path / name).write_bytes(body)
    local = LocalStore(tmp_path / "local")
    for name in blobs:
        local.put_file(name, tmp_path / name)
    assert sorted(local.digests()) == sorted(blobs)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        store = from_url(f"s3://evidence/shangluo?endpoint_url=http://127.0.0.1:{port}")
        store.client.create_bucket(Bucket="evidence")
        store.client.put_object(Bucket="evidence", Key="other/sha256/" + "0" * 64, Body=b"another prefix")
        for name in blobs:
            store.put_file(name, tmp_path / name)
        assert sorted(store.digests()) == sorted(blobs)
    finally:
        server.stop()
