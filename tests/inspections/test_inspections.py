import datetime as dt

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.modules.audit.models import AuditEntry
from server.modules.auth.operations import staff_token
from server.modules.inspections import operations as ops
from server.modules.inspections.models import InspectionKind, InspectionMember
from server.modules.users.operations import CertificateInvalid
from tests import factories

TODAY = dt.date.today()


def _auth(user):
    return {"Authorization": f"Bearer {staff_token(user)['access_token']}"}


@pytest.fixture()
def team(db_session):
    unit = factories.UnitFactory()
    supervisor = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    a, b, c = (factories.inspector(unit=unit) for _ in range(3))
    target = factories.TargetFactory()
    return supervisor, a, b, c, target


def _create(client, supervisor, lead, members, target, **extra):
    body = {"target_id": target.id, "lead_id": lead.id, "member_ids": [m.id for m in members],
            "window_start": TODAY.isoformat(), "window_end": (TODAY + dt.timedelta(days=7)).isoformat(), **extra}
    return client.post("/api/v1/inspections", json=body, headers=_auth(supervisor))


def test_supervisor_assigns_a_team_of_two_certified_inspectors(client, db_session, team):
    supervisor, a, b, _, target = team
    response = _create(client, supervisor, a, [b], target)
    assert response.status_code == 201, response.json
    assert [m["team_role"] for m in response.json["members"]] == ["lead", "member"]
    assert all(m["certificate_number"] for m in response.json["members"])
    entry = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.tag == "inspection:inspection:assigned")).one()
    assert response.json["id"] in entry.body.decode()


def test_auxiliary_does_not_count_toward_two_inspectors(client, db_session, team):
    supervisor, a, _, _, target = team
    auxiliary = factories.UserFactory(role=Role.AUXILIARY, unit=supervisor.unit)
    response = _create(client, supervisor, a, [auxiliary], target)
    assert response.status_code == 422
    assert response.json["code"] == "inspection.team_too_small"
    assert db_session.scalar(sa.select(sa.func.count(InspectionMember.id))) == 0


def test_certificate_expiring_inside_the_window_is_refused(db_session, team):
    supervisor, a, b, _, target = team
    b.certificates[0].valid_until = TODAY + dt.timedelta(days=2)
    with pytest.raises(CertificateInvalid):
        ops.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id], window_start=TODAY,
                   window_end=TODAY + dt.timedelta(days=7), kind=InspectionKind.ROUTINE, created_by=supervisor)


def test_only_team_members_and_their_supervisors_see_an_inspection(client, db_session, team):
    supervisor, a, b, c, target = team
    created = _create(client, supervisor, a, [b], target).json
    assert client.get(f"/api/v1/inspections/{created['id']}", headers=_auth(a)).status_code == 200
    refused = client.get(f"/api/v1/inspections/{created['id']}", headers=_auth(c))
    assert refused.status_code == 403 and refused.json["code"] == "auth.forbidden"
    listed = client.get("/api/v1/inspections", headers=_auth(c)).json
    assert listed == []
    other_supervisor = factories.UserFactory(role=Role.SUPERVISOR)
    assert client.get(f"/api/v1/inspections/{created['id']}", headers=_auth(other_supervisor)).status_code == 403


def test_reassignment_keeps_the_removed_member_as_a_tombstone(client, db_session, team):
    supervisor, a, b, c, target = team
    created = _create(client, supervisor, a, [b], target).json
    response = client.put(f"/api/v1/inspections/{created['id']}/team",
                          json={"lead_id": a.id, "member_ids": [c.id], "reason": "回避：亲属关系"},
                          headers=_auth(supervisor))
    assert response.status_code == 200, response.json
    assert {m["user_id"] for m in response.json["members"]} == {a.id, c.id}
    removed = db_session.scalars(sa.select(InspectionMember).where(InspectionMember.user_id == b.id)).one()
    assert removed.removed_at is not None and removed.removed_reason == "回避：亲属关系"
    assert response.json["version"] > created["version"]


def test_inspections_created_in_bulk_reach_their_teams_devices(db_session, team):
    from server.modules.sync.models import SyncChange

    supervisor, a, b, c, target = team
    other = factories.TargetFactory()
    window = {"window_start": TODAY, "window_end": TODAY + dt.timedelta(days=7), "kind": InspectionKind.RANDOM}
    created = ops.create_many(db_session, [
        {"target_id": target.id, "lead_id": a.id, "member_ids": [b.id], **window},
        {"target_id": other.id, "lead_id": c.id, "member_ids": [a.id], **window},
    ], created_by=supervisor)
    db_session.commit()
    changes = db_session.scalars(sa.select(SyncChange).where(
        SyncChange.inspection_id.in_([i.id for i in created]))).all()
    assert {(change.inspection_id, change.op) for change in changes} == {(i.id, "upsert") for i in created}
    bodies = {change.inspection_id: change.body for change in changes}
    assert str(b.id) in bodies[created[0].id] and str(c.id) in bodies[created[1].id]
