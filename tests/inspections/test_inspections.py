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
from tests.helpers import assert_contract
from tests import clock

TODAY = clock.today()


def _auth(user):
    return {"Authorization": f"Bearer {staff_token(user)['access_token']}"}


@pytest.fixture()
def team(db_session):
    unit = factories.UnitFactory()
    supervisor = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    a, b, c = (factories.inspector(unit=unit) for _ in range(3))
    target = factories.TargetFactory()
    factories.AnnualPlanFactory(unit_id=unit.id, year=TODAY.year)  # tasks here count against it (rule 51)
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


def test_an_auxiliary_cannot_lead_the_team_xzcff_article_42(client, db_session, team):
    """行政处罚法 第42条: an auxiliary (协管员) named as lead_id was accepted with the team saved
    without a lead; it is refused, citing the article, and nothing is written."""
    supervisor, a, b, _, target = team
    auxiliary = factories.UserFactory(role=Role.AUXILIARY, unit=supervisor.unit)
    body = assert_contract(_create(client, supervisor, auxiliary, [a, b], target), 422, "inspection.auxiliary_lead")
    assert body["context"]["rule"] == "行政处罚法 第42条" and "第42条" in body["message_zh"]
    assert db_session.scalar(sa.select(sa.func.count(InspectionMember.id))) == 0


def test_certificate_expiring_inside_the_window_is_refused(db_session, team):
    """行政处罚法 第42条: the refusal cites the article."""
    supervisor, a, b, _, target = team
    b.certificates[0].valid_until = TODAY + dt.timedelta(days=2)
    with pytest.raises(CertificateInvalid) as exc:
        ops.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id], window_start=TODAY,
                   window_end=TODAY + dt.timedelta(days=7), kind=InspectionKind.ROUTINE, created_by=supervisor)
    assert exc.value.context["rule"] == "行政处罚法 第42条" and "第42条" in exc.value.message_zh


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
    window = {"window_start": TODAY, "window_end": TODAY + dt.timedelta(days=7), "kind": InspectionKind.RANDOM,
              "draw_id": factories.DrawFactory().id}
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


def _declare(db_session, user, target, supervisor, **extra):
    from server.modules.roster import operations as roster
    from server.modules.roster.models import ConflictRelation

    return roster.declare_conflict(db_session, user, uscc=target.uscc, relation=ConflictRelation.RELATIVE,
                                   detail="配偶任该公司环保负责人", by=supervisor, **extra)


def _counts(db_session):
    from server.modules.inspections.models import Inspection

    return (db_session.scalar(sa.select(sa.func.count(Inspection.id))),
            db_session.scalar(sa.select(sa.func.count(InspectionMember.id))),
            db_session.scalar(sa.select(sa.func.count(AuditEntry.idx)).where(
                AuditEntry.tag == "inspection:inspection:assigned")))


def test_a_conflicted_inspector_cannot_be_assigned(client, db_session, team):
    """行政处罚法 第43条: the register excludes an officer from assignments, not only from draws."""
    supervisor, a, b, c, target = team
    _declare(db_session, b, target, supervisor)
    before = _counts(db_session)
    body = assert_contract(_create(client, supervisor, a, [b], target), 422, "inspection.conflicted")
    assert body["context"] == {"user": b.username, "user_id": b.id, "name": b.display_name, "uscc": target.uscc}
    assert "回避" in body["message_zh"] and "art. 43" in body["message_en"]
    body = assert_contract(_create(client, supervisor, b, [a], target), 422, "inspection.conflicted")
    assert body["context"]["user"] == b.username  # as lead too
    assert _counts(db_session) == before
    # another target of the same officer is not affected, nor is another officer on this target
    assert _create(client, supervisor, b, [a], factories.TargetFactory()).status_code == 201
    assert _create(client, supervisor, a, [c], target).status_code == 201


def test_only_conflicts_in_force_for_the_window_refuse(client, db_session, team):
    supervisor, a, b, c, target = team
    ended = _declare(db_session, b, target, supervisor, valid_until=TODAY - dt.timedelta(days=1))
    assert _create(client, supervisor, a, [b], target).status_code == 201
    _declare(db_session, c, target, supervisor, valid_until=TODAY)  # ends on the window's first day: still in force
    assert_contract(_create(client, supervisor, a, [c], target), 422, "inspection.conflicted")
    # ... and an auxiliary at the site is held to the same rule
    auxiliary = factories.UserFactory(role=Role.AUXILIARY, unit=supervisor.unit)
    _declare(db_session, auxiliary, target, supervisor)
    body = assert_contract(_create(client, supervisor, a, [b, auxiliary], target), 422, "inspection.conflicted")
    assert body["context"]["user_id"] == auxiliary.id and ended.valid_until < TODAY


def test_a_withdrawn_conflict_no_longer_refuses(client, db_session, team):
    from server.modules.roster import operations as roster

    supervisor, a, b, _, target = team
    entry = _declare(db_session, b, target, supervisor)
    assert_contract(_create(client, supervisor, a, [b], target), 422, "inspection.conflicted")
    roster.withdraw_conflict(db_session, entry, "配偶已离职")
    assert _create(client, supervisor, a, [b], target).status_code == 201


def test_one_conflicted_team_refuses_the_whole_batch(db_session, team):
    supervisor, a, b, c, target = team
    others = [factories.TargetFactory() for _ in range(3)]
    _declare(db_session, c, others[2], supervisor)
    window = {"window_start": TODAY, "window_end": TODAY + dt.timedelta(days=7), "kind": InspectionKind.ROUTINE}
    specs = [{"target_id": t.id, "lead_id": lead.id, "member_ids": [member.id], **window}
             for t, lead, member in [(target, a, b), (others[0], c, a), (others[1], b, c), (others[2], a, c)]]
    before = _counts(db_session)
    with pytest.raises(ops.Conflicted) as refused:
        ops.create_many(db_session, specs, created_by=supervisor)
    assert refused.value.context["user_id"] == c.id and refused.value.context["uscc"] == others[2].uscc
    assert _counts(db_session) == before
    assert len(ops.create_many(db_session, specs[:3], created_by=supervisor)) == 3


def test_conflicts_of_a_batch_are_read_in_one_query(db_session, team, monkeypatch):
    """A draw creates thousands of inspections: the register is read once, not once per team.
    (Large reads go through plain_rows, on PostgreSQL straight to the driver: counted there.)"""
    supervisor, a, b, c, _ = team
    targets = [factories.TargetFactory() for _ in range(30)]
    _declare(db_session, a, targets[0], supervisor, valid_until=TODAY - dt.timedelta(days=1))
    window = {"window_start": TODAY, "window_end": TODAY + dt.timedelta(days=7), "kind": InspectionKind.ROUTINE}
    statements = []
    read = ops.plain_rows

    def counted(session, statement):
        statements.append(str(statement))
        return read(session, statement)

    monkeypatch.setattr(ops, "plain_rows", counted)
    ops.create_many(db_session, [{"target_id": t.id, "lead_id": (a, b, c)[n % 3].id,
                                  "member_ids": [(a, b, c)[(n + 1) % 3].id], **window}
                                 for n, t in enumerate(targets)], created_by=supervisor, load=False)
    assert sum("conflict_declaration" in s for s in statements) == 1


def test_reassignment_refuses_a_conflicted_member(client, db_session, team):
    supervisor, a, b, c, target = team
    created = _create(client, supervisor, a, [b], target).json
    _declare(db_session, c, target, supervisor)
    body = assert_contract(client.put(f"/api/v1/inspections/{created['id']}/team",
                                      json={"lead_id": a.id, "member_ids": [c.id], "reason": "人员调整"},
                                      headers=_auth(supervisor)), 422, "inspection.conflicted")
    assert body["context"]["user_id"] == c.id
    members = db_session.scalars(sa.select(InspectionMember)
                                 .where(InspectionMember.inspection_id == created["id"])).all()
    assert {(m.user_id, m.removed_at) for m in members} == {(a.id, None), (b.id, None)}
    assert db_session.scalar(sa.select(sa.func.count(AuditEntry.idx)).where(
        AuditEntry.tag == "inspection:inspection:reassigned")) == 0


def test_a_random_inspection_comes_only_from_a_draw(client, db_session, team):
    """双随机: picked by a recorded draw, never by hand (DOMAIN-RULES §A rules 6–7)."""
    supervisor, a, b, _, target = team
    before = _counts(db_session)
    body = assert_contract(_create(client, supervisor, a, [b], target, kind="random"), 422,
                           "inspection.random_needs_draw")
    assert "抽取" in body["message_zh"]
    for draw_id in (None, "0" * 36):  # none, or one that names no recorded draw
        with pytest.raises(ops.RandomNeedsDraw):
            ops.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id], window_start=TODAY,
                       window_end=TODAY, kind=InspectionKind.RANDOM, created_by=supervisor, draw_id=draw_id)
    assert _counts(db_session) == before
    draw = factories.DrawFactory()
    made = ops.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id], window_start=TODAY,
                      window_end=TODAY, kind=InspectionKind.RANDOM, created_by=supervisor, draw_id=draw.id)
    assert made.draw_id == draw.id
