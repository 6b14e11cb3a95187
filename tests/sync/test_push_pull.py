import uuid

import sqlalchemy as sa

from server.modules.audit.models import AuditEntry
from server.modules.sync.models import InspectionNote, SyncChange, SyncOperation
from server.modules.sync import operations as ops
from tests import clock


def push(client, phone, ops_, **body):
    return client.post("/mobile/v1/sync/push", json={"ops": ops_, **body}, headers=phone.headers)


def pull_all(client, phone, cursor=None, limit=1000):
    changes = []
    while True:
        url = "/mobile/v1/sync/changes" + (f"?cursor={cursor}&limit={limit}" if cursor else f"?limit={limit}")
        response = client.get(url, headers=phone.headers)
        assert response.status_code == 200, response.json
        changes += response.json["changes"]
        cursor = response.json["cursor"]
        if not response.json["more"]:
            return changes, cursor


def note(phone, inspection_id, text="现场发现废水外排"):
    return phone.op("note", "append", {"id": str(uuid.uuid4()), "inspection_id": inspection_id, "text": text})


def test_push_applies_then_replay_returns_the_same_results_and_changes_nothing(client, db_session, field):
    batch = [note(field.phone_a, field.inspection.id, f"笔记{i}") for i in range(3)]
    batch.append(field.phone_a.op("check_in", "append", {"id": str(uuid.uuid4()), "inspection_id": field.inspection.id,
                                                         "lat": 33.87, "lon": 109.94, "accuracy_m": 8.5}))
    first = push(client, field.phone_a, batch)
    assert first.status_code == 200, first.json
    assert [r["status"] for r in first.json["results"]] == ["applied"] * 4
    assert first.json["device"] == {"acked_seq": 4, "max_seq": 4, "missing": []}
    counts = (db_session.scalar(sa.select(sa.func.count()).select_from(InspectionNote)),
              db_session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)),
              db_session.scalar(sa.select(sa.func.count()).select_from(SyncChange)))
    again = push(client, field.phone_a, batch)
    assert again.json["results"] == first.json["results"]
    assert again.json["replayed"] == 4
    assert counts == (db_session.scalar(sa.select(sa.func.count()).select_from(InspectionNote)),
                      db_session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)),
                      db_session.scalar(sa.select(sa.func.count()).select_from(SyncChange)))
    tags = set(db_session.scalars(sa.select(AuditEntry.tag)))
    assert {"sync:note:appended", "sync:check_in:appended"} <= tags


def test_teammate_pulls_the_notes_and_the_outsider_does_not(client, db_session, field):
    push(client, field.phone_a, [note(field.phone_a, field.inspection.id)])
    changes, cursor = pull_all(client, field.phone_b)
    kinds = [(c["entity"], c["op"]) for c in changes]
    assert ("inspection", "upsert") in kinds and ("note", "append") in kinds
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    outsider, _ = pull_all(client, field.phone_out)
    assert outsider == []
    # nothing new: the cursor stays and the page is empty
    response = client.get(f"/mobile/v1/sync/changes?cursor={cursor}", headers=field.phone_b.headers)
    assert response.json["changes"] == [] and response.json["more"] is False


def test_pull_pages_in_order(client, db_session, field):
    push(client, field.phone_a, [note(field.phone_a, field.inspection.id, str(i)) for i in range(7)])
    changes, _ = pull_all(client, field.phone_b, limit=2)
    assert [c["data"]["text"] for c in changes if c["entity"] == "note"] == [str(i) for i in range(7)]


def test_reassigned_inspector_gets_a_tombstone(client, db_session, field):
    from server.modules.inspections import operations as inspections

    _, cursor = pull_all(client, field.phone_b)
    inspections.reassign(db_session, field.inspection, lead_id=field.a.id, member_ids=[field.outsider.id],
                         by=field.supervisor, reason="回避")
    db_session.commit()
    changes, _ = pull_all(client, field.phone_b, cursor)
    assert [(c["entity"], c["op"], c["data"]["reason"]) for c in changes] == [("inspection", "tombstone", "unassigned")]
    newcomer, _ = pull_all(client, field.phone_out)
    assert newcomer[-1]["entity"] == "inspection" and newcomer[-1]["op"] == "upsert"
    # the removed inspector's device can no longer write to it
    refused = push(client, field.phone_b, [note(field.phone_b, field.inspection.id)])
    assert refused.json["results"][0]["error"]["code"] == "sync.not_assigned"


def test_cancelled_inspection_arrives_as_a_tombstone(client, db_session, field):
    from server.modules.inspections import operations as inspections

    _, cursor = pull_all(client, field.phone_a)
    inspections.cancel(db_session, field.inspection, reason="企业已关停")
    db_session.commit()
    changes, _ = pull_all(client, field.phone_a, cursor)
    assert [(c["op"], c["data"]["reason"]) for c in changes] == [("tombstone", "cancelled")]


def test_one_bad_item_does_not_abort_the_batch(client, db_session, field):
    good = note(field.phone_a, field.inspection.id)
    bad_type = field.phone_a.op("spaceship", "launch", {"inspection_id": field.inspection.id})
    bad_data = field.phone_a.op("check_in", "append", {"id": str(uuid.uuid4()), "inspection_id": field.inspection.id,
                                                        "lat": 123, "lon": 0})
    not_mine = field.phone_a.op("note", "append", {"id": str(uuid.uuid4()), "inspection_id": str(uuid.uuid4()),
                                                    "text": "x"})
    garbage = {"op_id": "not-a-uuid", "seq": 99}
    response = push(client, field.phone_a, [good, bad_type, bad_data, not_mine, garbage, "string"])
    results = response.json["results"]
    assert [r["status"] for r in results] == ["applied"] + ["rejected"] * 5
    assert [r["error"]["code"] for r in results[1:]] == [
        "sync.unknown_entity", "sync.malformed_operation", "sync.not_assigned", "sync.malformed_operation",
        "sync.malformed_operation"]
    for r in results[1:]:
        assert {"status", "code", "message_zh", "message_en"} <= r["error"].keys()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(InspectionNote)) == 1
    # a rejected operation is stored too: its replay is rejected the same way
    assert push(client, field.phone_a, [bad_type]).json["results"][0] == {**results[1], "index": 0}


def test_forged_device_id_and_oversized_batch_are_refused_whole(client, db_session, field):
    forged = push(client, field.phone_a, [note(field.phone_a, field.inspection.id)], device_id=field.phone_b.device.id)
    assert forged.status_code == 403 and forged.json["code"] == "sync.device_mismatch"
    big = push(client, field.phone_a, [note(field.phone_a, field.inspection.id) for _ in range(ops.MAX_OPS + 1)])
    assert big.status_code == 413 and big.json["code"] == "sync.batch_too_large"
    malformed = client.post("/mobile/v1/sync/push", json={"ops": "nope"}, headers=field.phone_a.headers)
    assert malformed.status_code == 422
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SyncOperation)) == 0


def test_gaps_in_device_sequence_are_reported_and_closed(client, db_session, field):
    ops_ = [note(field.phone_a, field.inspection.id) for _ in range(5)]
    response = push(client, field.phone_a, [ops_[0], ops_[3], ops_[4]])
    assert response.json["device"] == {"acked_seq": 1, "max_seq": 5, "missing": [[2, 3]]}
    response = push(client, field.phone_a, [ops_[2], ops_[1]])
    assert response.json["device"] == {"acked_seq": 5, "max_seq": 5, "missing": []}


def test_reused_ids_are_rejected(client, db_session, field):
    first = note(field.phone_a, field.inspection.id)
    push(client, field.phone_a, [first])
    changed = {**first, "data": {**first["data"], "text": "改过的内容"}}
    assert push(client, field.phone_a, [changed]).json["results"][0]["error"]["code"] == "sync.operation_reused"
    same_seq = {**note(field.phone_a, field.inspection.id), "seq": first["seq"]}
    assert push(client, field.phone_a, [same_seq]).json["results"][0]["error"]["code"] == "sync.sequence_reused"
    other_device = push(client, field.phone_b, [first]).json["results"][0]
    assert other_device["error"]["code"] == "sync.operation_reused"


def test_same_note_under_a_new_operation_is_a_duplicate(client, db_session, field):
    first = note(field.phone_a, field.inspection.id)
    push(client, field.phone_a, [first])
    again = field.phone_a.op("note", "append", first["data"])
    assert push(client, field.phone_a, [again]).json["results"][0]["status"] == "duplicate"
    assert db_session.scalar(sa.select(sa.func.count()).select_from(InspectionNote)) == 1


def test_expired_and_invalid_cursors(client, db_session, field):
    push(client, field.phone_a, [note(field.phone_a, field.inspection.id) for _ in range(3)])
    _, cursor = pull_all(client, field.phone_a)
    early = ops.encode_cursor(1)
    ops.compact(db_session, keep_after_seq=ops.decode_cursor(cursor))
    db_session.commit()
    expired = client.get(f"/mobile/v1/sync/changes?cursor={early}", headers=field.phone_a.headers)
    assert expired.status_code == 410 and expired.json["code"] == "sync.cursor_expired"
    assert client.get(f"/mobile/v1/sync/changes?cursor={cursor}", headers=field.phone_a.headers).status_code == 200
    invalid = client.get("/mobile/v1/sync/changes?cursor=!!!", headers=field.phone_a.headers)
    assert invalid.status_code == 400 and invalid.json["code"] == "sync.cursor_invalid"
    future = client.get(f"/mobile/v1/sync/changes?cursor={ops.encode_cursor(10**9)}", headers=field.phone_a.headers)
    assert future.status_code == 410


def test_status_transitions(client, db_session, field):
    start = field.phone_a.op("inspection", "set_status", {"inspection_id": field.inspection.id, "status": "in_progress"})
    start_b = field.phone_b.op("inspection", "set_status", {"inspection_id": field.inspection.id, "status": "in_progress"})
    assert push(client, field.phone_a, [start]).json["results"][0]["status"] == "applied"
    assert push(client, field.phone_b, [start_b]).json["results"][0]["status"] == "duplicate"
    done = field.phone_b.op("inspection", "set_status", {"inspection_id": field.inspection.id, "status": "completed"})
    assert push(client, field.phone_b, [done]).json["results"][0]["status"] == "applied"
    back = field.phone_a.op("inspection", "set_status", {"inspection_id": field.inspection.id, "status": "assigned"})
    assert push(client, field.phone_a, [back]).json["results"][0]["status"] == "duplicate"
    db_session.refresh(field.inspection)
    assert field.inspection.status.value == "completed"
    # the directory's inspection history: the target's last inspection day (Beijing time)
    from server.core.calendar import CHINA

    db_session.refresh(field.inspection.target)
    assert field.inspection.target.last_inspected_on == field.inspection.completed_at.astimezone(CHINA).date()


def test_inspections_inserted_in_bulk_reach_the_team_as_stored(client, db_session, field):
    """A draw's inspections are snapshotted from the rows it inserted; one changed afterwards in the
    same transaction is read back instead, so the devices get its final state."""
    import datetime as dt

    from server.modules.inspections import operations as inspections
    from server.modules.inspections.models import InspectionKind
    from server.modules.sync.changes import inspection_snapshot
    from tests import factories

    _, cursor = pull_all(client, field.phone_b)
    today = clock.today()
    draw = factories.DrawFactory()
    made = inspections.create_many(db_session, [
        {"target_id": factories.TargetFactory().id, "lead_id": field.a.id, "member_ids": [field.b.id],
         "window_start": today, "window_end": today + dt.timedelta(days=3), "kind": InspectionKind.RANDOM,
         "secret": True, "draw_id": draw.id, "purpose": f"双随机抽查 {n}"} for n in range(3)],
        created_by=field.supervisor)
    inspections.cancel(db_session, made[2], reason="企业已关停")
    db_session.commit()
    changes, _ = pull_all(client, field.phone_b, cursor)
    got = {c["id"]: c for c in changes if c["entity"] == "inspection"}
    assert set(got) == {i.id for i in made}
    for inspection in made[:2]:
        db_session.refresh(inspection)
        assert got[inspection.id]["op"] == "upsert"
        assert got[inspection.id]["data"] == inspection_snapshot(inspection)
        assert [m["user_id"] for m in got[inspection.id]["data"]["members"]] == [field.a.id, field.b.id]
    assert (got[made[2].id]["op"], got[made[2].id]["data"]["reason"]) == ("tombstone", "cancelled")
    # stored as compact UTF-8 JSON text on both databases (PostgreSQL keeps a json value's text)
    import json

    body = db_session.scalar(sa.select(SyncChange.body).where(SyncChange.entity_id == made[0].id))
    assert "双随机抽查 0" in body and body == json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))
