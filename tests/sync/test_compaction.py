"""The change log is compacted on a schedule (Celery beat; ``enforce sync compact`` where no beat
runs): changes older than SYNC_CHANGE_RETENTION_DAYS go, an older cursor gets the distinct
full-resync error, and a device that was away that long keeps its unpushed work."""
import datetime as dt

import pytest
import sqlalchemy as sa

from server.config import ConfigError, load
from server.modules.audit.models import AuditEntry
from server.modules.sync import operations as ops
from server.modules.sync import tasks
from server.modules.sync.cli import sync_cli
from server.modules.sync.models import InspectionNote, SyncChange, SyncHead
from tests.sync.test_client import make_client


def note(phone, inspection_id, text):
    return phone.op("note", "append", {"id": f"{text:0>8}-0000-4000-8000-000000000000", "inspection_id": inspection_id,
                                       "text": text})


def age_log(db_session, days):
    """Everything logged so far happened ``days`` ago."""
    db_session.execute(sa.update(SyncChange).values(committed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days)))
    db_session.commit()


def head(db_session):
    return db_session.execute(sa.select(SyncHead.last_seq, SyncHead.floor_seq)).one()


def test_the_beat_schedule_runs_the_compaction_daily(app):
    entry = app.extensions["celery"].conf.beat_schedule["sync-compact-change-log"]
    assert entry["task"] == tasks.COMPACT == tasks.compact_change_log.name
    assert app.config["BEAT_SCHEDULE"]["sync-compact-change-log"]["task"] == tasks.COMPACT
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({3}, {20})
    assert app.config["SYNC_CHANGE_RETENTION_DAYS"] == 30


def test_the_retention_is_configuration(tmp_path):
    assert load(str(tmp_path), environ={"ENFORCE_SYNC_CHANGE_RETENTION_DAYS": "45"})["SYNC_CHANGE_RETENTION_DAYS"] == 45
    with pytest.raises(ConfigError, match="SYNC_CHANGE_RETENTION_DAYS must be positive"):
        load(str(tmp_path), environ={"ENFORCE_SYNC_CHANGE_RETENTION_DAYS": "0"})


def test_scheduled_compaction_expires_old_cursors_only(app, client, db_session, field):
    phone = field.phone_a
    client.post("/mobile/v1/sync/push", json={"ops": [note(phone, field.inspection.id, str(n)) for n in range(5)]},
                headers=phone.headers)
    early = client.get("/mobile/v1/sync/changes?limit=2", headers=phone.headers).json["cursor"]
    age_log(db_session, app.config["SYNC_CHANGE_RETENTION_DAYS"] + 1)
    old_head = head(db_session).last_seq
    client.post("/mobile/v1/sync/push", json={"ops": [note(phone, field.inspection.id, "young")]},
                headers=phone.headers)
    young = client.get(f"/mobile/v1/sync/changes?cursor={ops.encode_cursor(old_head)}",
                       headers=phone.headers).json

    result = tasks.compact_change_log.delay().get()
    assert result["floor_seq"] == head(db_session).floor_seq == old_head and result["deleted"] == old_head
    assert db_session.scalars(sa.select(SyncChange.seq)).all() == [c["seq"] for c in young["changes"]]
    expired = client.get(f"/mobile/v1/sync/changes?cursor={early}", headers=phone.headers)
    assert expired.status_code == 410 and expired.json["code"] == "sync.cursor_expired"
    again = client.get(f"/mobile/v1/sync/changes?cursor={ops.encode_cursor(old_head)}", headers=phone.headers)
    assert again.status_code == 200 and again.json["changes"] == young["changes"]
    tags = db_session.scalars(sa.select(AuditEntry.tag).where(AuditEntry.tag.like("sync:change_log:%"))).all()
    assert tags == ["sync:change_log:compacted", "sync:change_log:pruned"]
    # idempotent: nothing older is left, so a second run changes nothing
    assert tasks.compact_change_log.delay().get()["deleted"] == 0 and head(db_session).floor_seq == old_head


def test_rows_go_in_committed_batches_after_the_floor(app, db_session, field):
    for n in range(7):
        ops.push(db_session, field.phone_a.device, [note(field.phone_a, field.inspection.id, str(n))])
        db_session.commit()
    age_log(db_session, 90)
    commits = []

    def commit():
        commits.append(head(db_session).floor_seq)
        db_session.commit()

    last = head(db_session).last_seq
    result = ops.compact_expired(db_session, retention=dt.timedelta(days=30), commit=commit, batch=3)
    assert result["deleted"] == last and result["floor_seq"] == last
    assert commits[0] == last  # the floor is committed before the first row goes
    assert len(commits) == 1 + -(-last // 3) + (last % 3 == 0)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SyncChange)) == 0


def test_a_device_away_longer_than_the_retention_resyncs_and_keeps_its_outbox(app, client, db_session, field,
                                                                             tmp_path):
    a = make_client(client, field.phone_a, tmp_path, "away")
    a.sync()  # before setting out
    b = make_client(client, field.phone_b, tmp_path, "b")
    b.note(field.inspection.id, "队友五周前的记录")
    b.sync()
    a.note(field.inspection.id, "山里记下、尚未上传")  # five weeks without signal
    age_log(db_session, 35)
    b.note(field.inspection.id, "队友昨天的记录")
    b.sync()
    run = app.test_cli_runner().invoke(sync_cli, ["compact"])
    assert run.exit_code == 0, run.output
    assert "deleted" in run.output and head(db_session).floor_seq > 0

    resyncs = a.stats.resyncs
    a.sync()
    assert a.stats.resyncs == resyncs + 1 and a.outbox_depth() == 0
    assert sorted(n["text"] for n in a.entities("note").values()) == [
        "山里记下、尚未上传", "队友五周前的记录", "队友昨天的记录"]
    stored = db_session.scalars(sa.select(InspectionNote.text).order_by(InspectionNote.text)).all()
    assert stored == sorted(["山里记下、尚未上传", "队友五周前的记录", "队友昨天的记录"])
