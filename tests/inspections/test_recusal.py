"""A granted recusal (行政处罚法 第43条) takes the officer off the open inspection it was about; a team
left with fewer than two certified inspectors (第42条) needs a replacement named in the decision."""
import datetime as dt

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, InspectionMember, InspectionStatus, OutsidePlanReason
from server.modules.roster import operations as roster
from server.modules.roster.models import ConflictDeclaration, ConflictRelation, RecusalRequest
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests.sync.conftest import make_phone
from tests import clock

TODAY = clock.today()


@pytest.fixture()
def world(db_session):
    unit = factories.UnitFactory()
    head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    a, b, c, d = (factories.inspector(unit=unit) for _ in range(4))
    target = factories.TargetFactory()
    return head, a, b, c, d, target


def _inspection(db_session, head, target, lead, *members):
    return inspections.create(db_session, target_id=target.id, lead_id=lead.id, member_ids=[m.id for m in members],
                              window_start=TODAY - dt.timedelta(days=1), window_end=TODAY + dt.timedelta(days=7),
                              kind=InspectionKind.ROUTINE, created_by=head,
                              outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)


def _request(client, head, officer, target, inspection=None):
    response = client.post("/api/v1/recusals", headers=staff_headers(head),
                           json={"user_id": officer.id, "target_id": target.id, "requested_by": "某公司法定代表人",
                                 "grounds": "执法人员的配偶在我公司任职",
                                 "inspection_id": inspection.id if inspection else None})
    assert response.status_code == 201, response.json
    return response.json["id"]


def _decide(client, head, request_id, **body):
    return client.post(f"/api/v1/recusals/{request_id}/decision", headers=staff_headers(head),
                       json={"granted": True, "reason": "确有利害关系", **body})


def _team(db_session, inspection_id):
    """(user, role) of the active members, and the removed members with their reason."""
    rows = db_session.scalars(sa.select(InspectionMember).where(InspectionMember.inspection_id == inspection_id)).all()
    return ({(m.user_id, m.team_role.value) for m in rows if m.removed_at is None},
            {m.user_id: m.removed_reason for m in rows if m.removed_at is not None})


def _pull(client, phone):
    changes, cursor = [], None
    while True:
        url = "/mobile/v1/sync/changes?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url, headers=phone.headers)
        assert response.status_code == 200, response.json
        changes += response.json["changes"]
        cursor = response.json["cursor"]
        if not response.json["more"]:
            return changes


def _unchanged(db_session, request_id, inspection, before):
    request = db_session.get(RecusalRequest, request_id)
    assert request.status.value == "pending" and request.conflict_id is None
    assert db_session.scalar(sa.select(sa.func.count(ConflictDeclaration.id))) == 0
    assert _team(db_session, inspection.id) == before
    assert not audit_entries("roster:recusal:decided", recusal=request_id)


def test_a_granted_recusal_needs_a_replacement_when_two_would_not_remain(client, db_session, world):
    head, a, b, c, _, target = world
    inspection = _inspection(db_session, head, target, a, b)
    phone_b, phone_c = make_phone(db_session, b), make_phone(db_session, c)
    db_session.commit()
    request_id = _request(client, head, b, target, inspection)
    before = _team(db_session, inspection.id)
    body = assert_contract(_decide(client, head, request_id), 422, "recusal.replacement_required")
    assert body["context"] == {"certified": 1, "inspection": inspection.id}
    assert "第42条" in body["message_zh"]
    _unchanged(db_session, request_id, inspection, before)
    _pull(client, phone_b)  # b's phone holds the inspection

    decided = _decide(client, head, request_id, replacement_id=c.id)
    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "granted" and decided.json["conflict_id"]
    active, removed = _team(db_session, inspection.id)
    assert active == {(a.id, "lead"), (c.id, "member")}
    assert list(removed) == [b.id] and f"回避申请 #{request_id}" in removed[b.id]
    assert roster.is_conflicted(db_session, b.id, target, TODAY)
    entry = audit_entries("roster:recusal:decided", recusal=request_id)[0]
    assert entry["payload"]["left_inspection"] == inspection.id and entry["payload"]["replacement"] == c.id
    assert audit_entries("inspection:inspection:reassigned", inspection=inspection.id)
    # the devices follow: b's phone drops the inspection, c's receives it
    dropped = [ch for ch in _pull(client, phone_b) if ch["inspection_id"] == inspection.id]
    assert dropped[-1]["op"] == "tombstone" and dropped[-1]["data"] == {"reason": "unassigned"}
    received = [ch for ch in _pull(client, phone_c) if ch["inspection_id"] == inspection.id]
    assert received[-1]["op"] == "upsert"
    assert {m["user_id"] for m in received[-1]["data"]["members"]} == {a.id, c.id}


def test_a_recused_lead_hands_over_to_a_remaining_inspector(client, db_session, world):
    head, a, b, c, _, target = world
    auxiliary = factories.UserFactory(role=Role.AUXILIARY, unit=head.unit)
    inspection = _inspection(db_session, head, target, a, b, auxiliary, c)
    request_id = _request(client, head, a, target, inspection)
    decided = _decide(client, head, request_id)  # b and c remain: no replacement needed
    assert decided.status_code == 200, decided.json
    active, removed = _team(db_session, inspection.id)
    assert active == {(b.id, "lead"), (c.id, "member"), (auxiliary.id, "auxiliary")}
    assert set(removed) == {a.id, b.id}  # b's member row gave way to a lead row
    assert not inspections.is_member(inspections.get(db_session, inspection.id), a.id)


def test_an_auxiliary_does_not_make_up_the_two(client, db_session, world):
    head, a, b, _, _, target = world
    auxiliary = factories.UserFactory(role=Role.AUXILIARY, unit=head.unit)
    inspection = _inspection(db_session, head, target, a, b, auxiliary)
    request_id = _request(client, head, a, target, inspection)
    before = _team(db_session, inspection.id)
    body = assert_contract(_decide(client, head, request_id), 422, "recusal.replacement_required")
    assert body["context"]["certified"] == 1
    _unchanged(db_session, request_id, inspection, before)


def test_the_replacement_is_checked_like_any_member(client, db_session, world):
    head, a, b, c, d, target = world
    inspection = _inspection(db_session, head, target, a, b)
    request_id = _request(client, head, b, target, inspection)
    before = _team(db_session, inspection.id)
    roster.declare_conflict(db_session, c, uscc=target.uscc, relation=ConflictRelation.FORMER_EMPLOYER,
                            detail="曾在该公司任职", by=head)
    conflicted = assert_contract(_decide(client, head, request_id, replacement_id=c.id), 422, "inspection.conflicted")
    assert conflicted["context"]["user_id"] == c.id
    d.certificates[0].valid_until = TODAY  # expires inside the visit window
    db_session.flush()
    assert_contract(_decide(client, head, request_id, replacement_id=d.id), 403, "certificate.invalid_on_date")
    assert_contract(_decide(client, head, request_id, replacement_id=b.id), 422, "request.validation_failed")
    assert_contract(_decide(client, head, request_id, replacement_id=a.id), 422, "inspection.team_too_small")
    assert_contract(_decide(client, head, request_id, replacement_id=999_999), 404)
    for user_id in (c.id, d.id, b.id, a.id):
        assert not audit_entries("inspection:inspection:reassigned", user=user_id)
    assert db_session.scalar(sa.select(sa.func.count(ConflictDeclaration.id))) == 1  # c's own declaration only
    request = db_session.get(RecusalRequest, request_id)
    assert request.status.value == "pending" and _team(db_session, inspection.id) == before


def test_a_replacement_is_refused_when_nobody_leaves_an_open_team(client, db_session, world):
    head, a, b, c, _, target = world
    inspection = _inspection(db_session, head, target, a, b)
    rejected = _request(client, head, b, target, inspection)
    assert_contract(_decide(client, head, rejected, granted=False, replacement_id=c.id), 422,
                    "request.validation_failed")
    done = _inspection(db_session, head, factories.TargetFactory(), a, b)
    done.status = InspectionStatus.COMPLETED
    db_session.flush()
    late = _request(client, head, b, done.target, done)
    assert_contract(_decide(client, head, late, replacement_id=c.id), 422, "request.validation_failed")
    # granted after the inspection is over: the register is updated, the finished team is not touched
    decided = _decide(client, head, late)
    assert decided.status_code == 200, decided.json
    assert _team(db_session, done.id)[0] == {(a.id, "lead"), (b.id, "member")}
    assert roster.is_conflicted(db_session, b.id, done.target, TODAY)


def test_a_request_names_an_inspection_of_its_target(client, db_session, world):
    head, a, b, _, _, target = world
    inspection = _inspection(db_session, head, factories.TargetFactory(), a, b)
    body = {"user_id": b.id, "target_id": target.id, "requested_by": "某公司", "grounds": "执法人员系前员工"}
    assert_contract(client.post("/api/v1/recusals", headers=staff_headers(head),
                                json={**body, "inspection_id": inspection.id}), 422, "request.validation_failed")
    assert_contract(client.post("/api/v1/recusals", headers=staff_headers(head),
                                json={**body, "inspection_id": "0" * 36}), 404, "inspection.not_found")
    assert db_session.scalar(sa.select(sa.func.count(RecusalRequest.id))) == 0
