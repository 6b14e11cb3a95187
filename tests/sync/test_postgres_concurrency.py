"""Real concurrency on PostgreSQL (fresh database, real commits): the change-log cursor never
skips a row committed late, and two pushes racing on one record never both win a version."""
from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from server.extensions import db
from server.modules.devices.models import Device
from server.modules.sync import changes
from server.modules.sync import operations as ops
from server.modules.sync.models import InspectionRecordVersion, SyncConflict
from sync import demo
from tests import db as testdb

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(testdb.postgres_url() is None, reason="needs ENFORCE_DATABASE_URL=postgresql://…")]


@pytest.fixture()
def live(tmp_path):
    app = testdb.fresh_app(tmp_path)
    with app.app_context():
        team = demo.make_team(db.session, inspectors=2)
        db.session.commit()
        db.session.remove()
    yield app, team
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _note(inspection_id: str, seq: int, text: str) -> dict:
    return {"op_id": str(uuid.uuid4()), "seq": seq, "entity": "note", "action": "append",
            "data": {"id": str(uuid.uuid4()), "inspection_id": inspection_id, "text": text}}


def test_a_row_committed_late_is_not_skipped_by_the_cursor(live):
    app, team = live
    inspection = team.inspection_ids[0]
    slow_pushed, fast_done, release = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:  # writes its change first, commits last (no audit entry: its lock would serialise)
        with app.app_context():
            changes.emit(db.session, inspection_id=inspection, entity="note", entity_id=str(uuid.uuid4()),
                         op="append", data={"text": "慢"})
            db.session.flush()
            slow_pushed.set()
            release.wait(10)
            db.session.commit()
            db.session.remove()

    thread = threading.Thread(target=slow)
    thread.start()
    assert slow_pushed.wait(10)
    with app.app_context():
        reader = db.session.get(Device, team.devices[1].device_id)
        ops.push(db.session, reader, [_note(inspection, 1, "快")])
        db.session.commit()
        bodies, cursor, _ = ops.pull(db.session, reader, None)
        db.session.commit()
        assert any("快" in body for body in bodies) and not any("慢" in body for body in bodies)
        release.set()
        thread.join(10)
        later, _, _ = ops.pull(db.session, reader, cursor)
        db.session.commit()
        assert any("慢" in body for body in later)
        db.session.remove()


def test_concurrent_edits_of_one_record_never_both_win_a_version(live):
    app, team = live
    inspection = team.inspection_ids[0]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(index: int) -> None:
        device_row = team.devices[index]
        with app.app_context():
            device = db.session.get(Device, device_row.device_id)
            op = {"op_id": str(uuid.uuid4()), "seq": 1, "entity": "inspection_record", "action": "edit",
                  "data": {"inspection_id": inspection, "template": "on_site_record", "base_version": 0,
                           "fields": {"findings": f"设备{index}的记录"}}}
            barrier.wait(10)
            result = ops.push(db.session, device, [op])
            db.session.commit()
            outcomes.append(result["results"][0]["status"])
            db.session.remove()

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["applied", "conflict"]
    with app.app_context():
        versions = db.session.scalars(sa.select(InspectionRecordVersion.version)).all()
        assert versions == [1]
        conflict = db.session.scalars(sa.select(SyncConflict)).one()
        assert sorted(v["value"] for v in conflict.values) == ["设备0的记录", "设备1的记录"]
        db.session.remove()
