import sqlalchemy as sa

from server.modules.audit.models import AuditEntry
from server.modules.sync.models import InspectionRecordVersion, SyncConflict
from tests.sync.test_push_pull import pull_all, push


def edit(phone, inspection_id, base, **fields):
    return phone.op("inspection_record", "edit", {"inspection_id": inspection_id, "template": "on_site_record",
                                                  "base_version": base, "fields": fields})


def test_disjoint_edits_merge_and_same_field_edits_are_both_kept(client, db_session, field):
    iid = field.inspection.id
    first = push(client, field.phone_a, [edit(field.phone_a, iid, 0, findings="废水直排", place="厂区东侧")])
    assert first.json["results"][0]["status"] == "applied" and first.json["results"][0]["version"] == 1
    # B edited offline from version 1: a different field merges
    merged = push(client, field.phone_b, [edit(field.phone_b, iid, 1, measures="责令停止排放")]).json["results"][0]
    assert merged["status"] == "applied" and merged["version"] == 2
    # A, still at version 1, changes 'measures' too (and 'place'): place merges, measures conflicts
    a_again = push(client, field.phone_a, [edit(field.phone_a, iid, 1, measures="查封设备", place="厂区西侧")])
    result = a_again.json["results"][0]
    assert result["status"] == "conflict" and result["applied"] == ["place"]
    assert result["conflicts"][0]["field"] == "measures"
    assert result["conflicts"][0]["current"] == "责令停止排放" and result["conflicts"][0]["yours"] == "查封设备"
    conflict = db_session.get(SyncConflict, result["conflicts"][0]["conflict_id"])
    assert [v["value"] for v in conflict.values] == ["责令停止排放", "查封设备"]
    # the device sees the record marked in conflict
    changes, _ = pull_all(client, field.phone_a)
    record = [c for c in changes if c["entity"] == "inspection_record"][-1]["data"]
    assert record["open_conflicts"] == 1 and record["fields"]["place"] == "厂区西侧"

    # the supervisor's queue, then the resolution: a new version with a reason, in the audit log
    queue = client.get("/api/v1/sync/conflicts", headers=field.staff)
    assert [c["id"] for c in queue.json] == [conflict.id]
    resolved = client.post(f"/api/v1/sync/conflicts/{conflict.id}/resolve", headers=field.staff,
                           json={"value": "责令停止排放并查封设备", "reason": "两人记录合并，经现场核实",
                                 "record_version": queue.json[0]["record_version"]})
    assert resolved.status_code == 200, resolved.json
    assert resolved.json["status"] == "resolved" and resolved.json["resolved_version"] == 4
    version = db_session.scalars(sa.select(InspectionRecordVersion).where(InspectionRecordVersion.version == 4)).one()
    assert version.reason == "两人记录合并，经现场核实" and version.fields["measures"] == "责令停止排放并查封设备"
    tags = set(db_session.scalars(sa.select(AuditEntry.tag)))
    assert {"sync:inspection_record:updated", "sync:inspection_record:conflicted",
            "sync:inspection_record:conflict_resolved"} <= tags
    again = client.post(f"/api/v1/sync/conflicts/{conflict.id}/resolve", headers=field.staff,
                        json={"choice": 0, "reason": "重复处理", "record_version": 4})
    assert again.status_code == 409 and again.json["code"] == "sync.conflict_resolved"
    assert client.get("/api/v1/sync/conflicts", headers=field.staff).json == []


def test_unknown_fields_and_future_base_are_rejected(client, db_session, field):
    iid = field.inspection.id
    bad = push(client, field.phone_a, [edit(field.phone_a, iid, 0, colour="red"),
                                       edit(field.phone_a, iid, 0, identity_shown="yes"),
                                       edit(field.phone_a, iid, 5, findings="x")]).json["results"]
    assert [r["error"]["code"] for r in bad] == ["sync.unknown_field", "sync.field_type",
                                                 "sync.base_version_unknown"]


def test_supervisor_of_another_unit_cannot_see_or_resolve(client, db_session, field):
    from server.core.access import Role
    from server.modules.auth.operations import staff_token
    from tests import factories

    iid = field.inspection.id
    push(client, field.phone_a, [edit(field.phone_a, iid, 0, findings="甲")])
    push(client, field.phone_b, [edit(field.phone_b, iid, 0, findings="乙")])
    other = factories.UserFactory(role=Role.SUPERVISOR)
    headers = {"Authorization": f"Bearer {staff_token(other)['access_token']}"}
    assert client.get("/api/v1/sync/conflicts", headers=headers).json == []
    conflict_id = db_session.scalar(sa.select(SyncConflict.id))
    refused = client.post(f"/api/v1/sync/conflicts/{conflict_id}/resolve", headers=headers,
                          json={"choice": 1, "reason": "越权", "record_version": 1})
    assert refused.status_code == 404
    inspector = {"Authorization": f"Bearer {staff_token(field.a)['access_token']}"}
    assert client.get("/api/v1/sync/conflicts", headers=inspector).status_code == 403


def test_a_device_editing_the_same_field_twice_offline_does_not_conflict_with_itself(client, db_session, field):
    iid = field.inspection.id
    push(client, field.phone_a, [edit(field.phone_a, iid, 0, findings="初稿"), edit(field.phone_a, iid, 0, findings="定稿")])
    results = push(client, field.phone_b, [edit(field.phone_b, iid, 0, findings="乙稿")]).json["results"]
    assert results[0]["status"] == "conflict"
    conflict = db_session.scalars(sa.select(SyncConflict)).one()
    assert [v["value"] for v in conflict.values] == ["定稿", "乙稿"]
