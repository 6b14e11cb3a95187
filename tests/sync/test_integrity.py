"""Issue 15 items 19 and 21: nothing a device sends is dropped silently, and a batch's results
describe that batch."""
import uuid

import sqlalchemy as sa

from server.modules.sync import operations as ops
from server.modules.sync.models import CheckIn, InspectionNote, SyncDevice, SyncOperation
from tests.sync.test_conflicts import edit
from tests.sync.test_push_pull import note, push


def test_a_note_id_resent_with_other_text_is_a_conflict_not_a_duplicate(client, db_session, field):
    first = note(field.phone_a, field.inspection.id, "原始内容")
    assert push(client, field.phone_a, [first]).json["results"][0]["status"] == "applied"
    changed = field.phone_a.op("note", "append", {**first["data"], "text": "补充后的内容"})
    result = push(client, field.phone_a, [changed]).json["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "sync.item_id_conflict"
    assert result["error"]["status"] == 409
    assert db_session.scalars(sa.select(InspectionNote.text)).all() == ["原始内容"]
    # the same id from another device, even with the same text, is not this device's item
    other = field.phone_b.op("note", "append", first["data"])
    assert push(client, field.phone_b, [other]).json["results"][0]["error"]["code"] == "sync.item_id_conflict"
    # the same content again is still a duplicate
    again = field.phone_a.op("note", "append", first["data"])
    assert push(client, field.phone_a, [again]).json["results"][0]["status"] == "duplicate"


def test_a_check_in_id_resent_with_another_position_is_a_conflict(client, db_session, field):
    data = {"id": str(uuid.uuid4()), "inspection_id": field.inspection.id, "lat": 33.87, "lon": 109.94,
            "accuracy_m": 5.0}
    moved = {**data, "lat": 33.9}
    results = push(client, field.phone_a, [field.phone_a.op("check_in", "append", data),
                                           field.phone_a.op("check_in", "append", moved),
                                           field.phone_a.op("check_in", "append", data)]).json["results"]
    assert [r["status"] for r in results] == ["applied", "rejected", "duplicate"]
    assert results[1]["error"]["code"] == "sync.item_id_conflict"
    assert db_session.scalars(sa.select(CheckIn.lat)).all() == [33.87]


def test_an_operation_twice_in_one_batch_gets_its_own_index_and_counts_as_replayed(client, db_session, field):
    a, b = note(field.phone_a, field.inspection.id), note(field.phone_a, field.inspection.id)
    response = push(client, field.phone_a, [a, b, a, a]).json
    assert [r["index"] for r in response["results"]] == [0, 1, 2, 3]
    assert [r["status"] for r in response["results"]] == ["applied"] * 4
    assert response["results"][2]["op_id"] == a["op_id"] and response["results"][2]["id"] == a["data"]["id"]
    assert response["replayed"] == 2
    # the same op id with other content inside one batch is a reuse, not a replay
    c = note(field.phone_a, field.inspection.id)
    forged = {**c, "data": {**c["data"], "text": "另一内容"}}
    response = push(client, field.phone_a, [c, forged]).json
    assert response["results"][1]["error"]["code"] == "sync.operation_reused" and response["replayed"] == 0


def test_a_sequence_far_beyond_the_device_is_refused_and_leaves_no_gap(client, db_session, field):
    far = {**note(field.phone_a, field.inspection.id), "seq": 10**12}
    edge = {**note(field.phone_a, field.inspection.id), "seq": ops.SEQ_WINDOW}
    response = push(client, field.phone_a, [far, edge]).json
    assert response["results"][0]["status"] == "rejected"
    assert response["results"][0]["error"]["code"] == "sync.sequence_out_of_range"
    assert response["results"][1]["status"] == "applied"
    assert response["device"]["max_seq"] == ops.SEQ_WINDOW
    state = db_session.get(SyncDevice, field.phone_a.device.id)
    db_session.refresh(state)
    assert state.max_seq == ops.SEQ_WINDOW
    assert db_session.scalar(sa.select(sa.func.max(SyncOperation.device_seq))) == ops.SEQ_WINDOW


def test_a_wrong_value_type_has_its_own_code(client, db_session, field):
    iid = field.inspection.id
    results = push(client, field.phone_a, [edit(field.phone_a, iid, 0, identity_shown="yes"),
                                           edit(field.phone_a, iid, 0, colour="red")]).json["results"]
    assert [r["error"]["code"] for r in results] == ["sync.field_type", "sync.unknown_field"]
    assert "identity_shown" in results[0]["error"]["fields"]


def test_a_conflict_shows_the_current_value_and_a_stale_resolution_is_refused(client, db_session, field):
    from server.modules.sync.models import InspectionRecord, SyncConflict

    iid = field.inspection.id
    assert push(client, field.phone_a, [edit(field.phone_a, iid, 0, findings="A-0")]).json["results"][0]["version"] == 1
    assert push(client, field.phone_b, [edit(field.phone_b, iid, 0, findings="B-0")]).json["results"][0][
        "status"] == "conflict"
    assert push(client, field.phone_a, [edit(field.phone_a, iid, 1, findings="A-1")]).json["results"][0][
        "status"] == "applied"
    push(client, field.phone_b, [edit(field.phone_b, iid, 0, findings="B-1")])
    [shown] = client.get("/api/v1/sync/conflicts", headers=field.staff).json
    assert shown["record_version"] == 2
    assert shown["current"]["value"] == "A-1" and shown["current"]["version"] == 2
    assert shown["current"]["user_id"] == field.a.id and shown["current"]["display_name"] == field.a.display_name
    assert shown["current"]["at"]
    candidates = shown["candidates"]
    assert [c["value"] for c in candidates] == ["A-0", "B-0", "B-1"]
    assert [c["user_id"] for c in candidates] == [field.a.id, field.b.id, field.b.id]
    assert all(c["at"] and c["display_name"] for c in candidates) and len(candidates) == 3
    assert [c["index"] for c in candidates] == [0, 1, 2] and not any(c["is_current"] for c in candidates)

    # the record moves on while the supervisor decides: the decision made against version 2 is refused
    push(client, field.phone_a, [edit(field.phone_a, iid, 2, findings="A-2")])
    stale = client.post(f"/api/v1/sync/conflicts/{shown['id']}/resolve", headers=field.staff,
                        json={"choice": 0, "reason": "按甲的记录", "record_version": 2})
    assert stale.status_code == 409 and stale.json["code"] == "sync.conflict_stale"
    assert stale.json["context"]["current_version"] == 3 and stale.json["context"]["current_value"] == "A-2"
    db_session.expire_all()
    assert db_session.get(InspectionRecord, ops.record_id(iid, "on_site_record")).fields["findings"] == "A-2"
    assert db_session.scalar(sa.select(SyncConflict.status)).value == "open"
    missing = client.post(f"/api/v1/sync/conflicts/{shown['id']}/resolve", headers=field.staff,
                          json={"choice": 0, "reason": "按甲的记录"})
    assert missing.status_code == 422
    fresh = client.get("/api/v1/sync/conflicts", headers=field.staff).json[0]
    assert fresh["record_version"] == 3 and fresh["current"]["value"] == "A-2"
    done = client.post(f"/api/v1/sync/conflicts/{shown['id']}/resolve", headers=field.staff,
                       json={"choice": 1, "reason": "以乙的记录为准", "record_version": 3})
    assert done.status_code == 200, done.json
    db_session.expire_all()
    assert db_session.get(InspectionRecord, ops.record_id(iid, "on_site_record")).fields["findings"] == "B-0"


def test_on_site_decision_numbers_carry_the_units_official_code_not_its_database_id(client, db_session, field):
    unit = field.a.unit
    unit.code = "商州"
    db_session.commit()
    numbers = client.get("/mobile/v1/sync/package", headers=field.phone_a.headers).json["document_numbers"]
    year = numbers[0]["year"]
    assert [n["text"] for n in numbers] == [f"商环当罚〔{year}〕商州-{i}号" for i in range(1, 11)]
    assert all(f"〔{year}〕{unit.id}-" not in n["text"] for n in numbers)
