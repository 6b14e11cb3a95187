"""DOMAIN-RULES §M rule 51: a task counts against its unit's approved annual plan, within the
plan's cap per enterprise per year, or carries an outside-plan reason code."""
import datetime as dt

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.core.errors import ValidationFailed
from server.modules.draws.models import PlanStatus
from server.modules.inspections import operations as ops
from server.modules.inspections.models import (OUTSIDE_PLAN_REASONS, Inspection, InspectionKind, InspectionStatus,
                                               OutsidePlanReason)
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests import clock

TODAY = clock.today()
WEEK, YEAR = dt.timedelta(days=7), dt.timedelta(days=366)


def _inspector(unit):
    """Certified for two years either side of today: windows in other years stay valid."""
    user = factories.UserFactory(role=Role.INSPECTOR, unit=unit)
    factories.CertificateFactory(user=user, valid_from=TODAY - 2 * YEAR, valid_until=TODAY + 2 * YEAR)
    return user


@pytest.fixture()
def unit(db_session):
    unit = factories.UnitFactory()
    head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    return unit, head, _inspector(unit), _inspector(unit)


def _post(client, head, a, b, target, **extra):
    body = {"target_id": target.id, "lead_id": a.id, "member_ids": [b.id], "window_start": TODAY.isoformat(),
            "window_end": (TODAY + WEEK).isoformat(), **extra}
    return client.post("/api/v1/inspections", json=body, headers=staff_headers(head))


def _count(db_session):
    return db_session.scalar(sa.select(sa.func.count(Inspection.id)))


def _create(db_session, head, a, b, target, start=TODAY, **extra):
    return ops.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id], window_start=start,
                      window_end=start + WEEK, created_by=head, **{"kind": InspectionKind.ROUTINE, **extra})


def test_a_task_by_hand_counts_against_the_units_approved_plan(client, db_session, unit):
    unit_, head, a, b = unit
    plan = factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year)
    factories.AnnualPlanFactory(year=TODAY.year)  # another unit's plan is not this one's
    response = _post(client, head, a, b, factories.TargetFactory(), kind="special")
    assert response.status_code == 201, response.json
    assert response.json["plan_id"] == plan.id and response.json["outside_plan_reason"] is None
    [entry] = audit_entries("inspection:inspection:assigned", inspection=response.json["id"])
    assert entry["payload"]["plan"] == plan.id and entry["payload"]["outside_plan_reason"] is None


def test_without_an_approved_plan_for_the_year_a_reason_is_required(client, db_session, unit):
    unit_, head, a, b = unit
    target = factories.TargetFactory()
    factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year + 1)  # next year's: not this window's
    factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year, status=PlanStatus.DRAFT,  # not approved
                                approved_by=None, approved_at=None)
    before = _count(db_session)
    body = assert_contract(_post(client, head, a, b, target), 422, "inspection.outside_plan_reason_required")
    assert body["context"]["unit"] == unit_.id and body["context"]["year"] == TODAY.year
    assert body["context"]["reasons"]["superior_assignment"] == {"zh": "上级交办", "en": "Assigned by a superior authority"}
    assert set(body["context"]["reasons"]) == {r.value for r in OutsidePlanReason}
    assert "计划外" in body["message_zh"] and "reason" in body["message_en"]
    with pytest.raises(ops.OutsidePlanReasonRequired):
        _create(db_session, head, a, b, target, kind=InspectionKind.JOINT)
    assert _count(db_session) == before

    made = _post(client, head, a, b, target, outside_plan_reason="superior_assignment")
    assert made.status_code == 201, made.json
    assert made.json["plan_id"] is None and made.json["outside_plan_reason"] == "superior_assignment"
    [entry] = audit_entries("inspection:inspection:assigned", inspection=made.json["id"])
    assert entry["payload"]["plan"] is None and entry["payload"]["outside_plan_reason"] == "superior_assignment"
    assert_contract(_post(client, head, a, b, target, outside_plan_reason="because"), 422, "request.validation_failed")


def test_a_window_counts_against_the_plan_of_the_year_it_starts_in(db_session, unit):
    unit_, head, a, b = unit
    next_year = factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year + 1)
    made = _create(db_session, head, a, b, factories.TargetFactory(), start=dt.date(TODAY.year + 1, 1, 5))
    assert made.plan_id == next_year.id


def test_the_plans_cap_per_enterprise_refuses_a_further_task_in_the_plan(client, db_session, unit):
    """Cap 2: a drawn visit and one by hand use it up; cancelled ones do not count; beyond it the
    task goes ahead only outside the plan, with a reason, and still counts as a visit."""
    unit_, head, a, b = unit
    plan = factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year, cap_per_enterprise=2)
    target = factories.TargetFactory()
    _create(db_session, head, a, b, target, kind=InspectionKind.RANDOM, draw_id=factories.DrawFactory().id)
    ops.cancel(db_session, _create(db_session, head, a, b, target), reason="企业停产")
    assert _post(client, head, a, b, target).json["plan_id"] == plan.id
    before = _count(db_session)
    body = assert_contract(_post(client, head, a, b, target), 422, "inspection.plan_cap_reached")
    assert body["context"] | {"reasons": None} == {"plan": plan.id, "target": target.id, "year": TODAY.year,
                                                  "cap_per_enterprise": 2, "inspections": 2, "reasons": None}
    assert _count(db_session) == before
    # another target of the plan is not affected; a complaint goes ahead outside the plan
    assert _post(client, head, a, b, factories.TargetFactory()).status_code == 201
    outside = _post(client, head, a, b, target, outside_plan_reason="complaint")
    assert outside.status_code == 201, outside.json
    assert outside.json["plan_id"] is None and outside.json["outside_plan_reason"] == "complaint"
    assert assert_contract(_post(client, head, a, b, target), 422)["context"]["inspections"] == 3


def test_a_batch_counts_its_own_tasks_toward_the_cap(db_session, unit):
    unit_, head, a, b = unit
    factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year, cap_per_enterprise=2)
    target = factories.TargetFactory()
    spec = {"target_id": target.id, "lead_id": a.id, "member_ids": [b.id], "window_start": TODAY,
            "window_end": TODAY + WEEK, "kind": InspectionKind.ROUTINE}
    before = _count(db_session)
    with pytest.raises(ops.PlanCapReached):
        ops.create_many(db_session, [spec, spec, spec], created_by=head)
    assert _count(db_session) == before
    assert len(ops.create_many(db_session, [spec, spec], created_by=head)) == 2


def test_a_tip_check_names_its_source(client, db_session, unit):
    """举报核查 is outside the plan by nature: a complaint, or a lead from non-site supervision."""
    unit_, head, a, b = unit
    factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year)
    target = factories.TargetFactory()
    before = _count(db_session)
    for reason in ({}, {"outside_plan_reason": "special_campaign"}):
        body = assert_contract(_post(client, head, a, b, target, kind="tip", **reason), 422,
                               "inspection.tip_needs_source")
        assert set(body["context"]["reasons"]) == {"complaint", "non_site_clue"}
        assert "投诉举报" in body["message_zh"]
    assert _count(db_session) == before
    for reason in ("complaint", "non_site_clue"):
        made = _post(client, head, a, b, target, kind="tip", outside_plan_reason=reason)
        assert made.status_code == 201, made.json
        assert made.json["plan_id"] is None and made.json["outside_plan_reason"] == reason


def test_a_drawn_inspection_takes_its_draws_plan_and_no_reason(db_session, unit):
    unit_, head, a, b = unit
    plan = factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year, cap_per_enterprise=1)
    target = factories.TargetFactory()
    _create(db_session, head, a, b, target)  # the cap is reached ...
    planned = factories.DrawFactory(unit_id=unit_.id, plan_id=plan.id)
    spec = {"target_id": target.id, "lead_id": a.id, "member_ids": [b.id], "window_start": TODAY,
            "window_end": TODAY + WEEK, "kind": InspectionKind.RANDOM, "secret": True}
    # ... and a draw's inspections are not checked against it here: the draw's freeze left targets out
    made = ops.create_many(db_session, [{**spec, "draw_id": planned.id},
                                        {**spec, "draw_id": factories.DrawFactory(unit_id=unit_.id).id}],
                           created_by=head)
    assert [(i.plan_id, i.outside_plan_reason) for i in made] == [(plan.id, None), (None, None)]
    with pytest.raises(ValidationFailed) as refused:
        ops.create_many(db_session, [{**spec, "draw_id": planned.id, "outside_plan_reason": "complaint"}],
                        created_by=head)
    assert "outside_plan_reason" in refused.value.fields


def test_the_database_holds_a_task_in_the_plan_or_with_a_reason(db_session, unit):
    """The CHECK exists on both databases (on SQLite it rides on the plan_id column)."""
    unit_, head, a, b = unit
    plan = factories.AnnualPlanFactory(unit_id=unit_.id, year=TODAY.year)
    in_plan = _create(db_session, head, a, b, factories.TargetFactory())
    drawn = _create(db_session, head, a, b, factories.TargetFactory(), kind=InspectionKind.RANDOM,
                    draw_id=factories.DrawFactory().id)
    for inspection, values in [(in_plan, {"plan_id": None}),
                               (in_plan, {"outside_plan_reason": OutsidePlanReason.COMPLAINT}),
                               (drawn, {"outside_plan_reason": OutsidePlanReason.COMPLAINT}),
                               (drawn, {"kind": InspectionKind.ROUTINE})]:
        with pytest.raises(sa.exc.IntegrityError), db_session.begin_nested():
            db_session.execute(sa.update(Inspection).where(Inspection.id == inspection.id).values(**values))
    with db_session.begin_nested():  # one or the other, both allowed
        db_session.execute(sa.update(Inspection).where(Inspection.id == in_plan.id).values(
            plan_id=None, outside_plan_reason=OutsidePlanReason.SPECIAL_CAMPAIGN))
        db_session.execute(sa.update(Inspection).where(Inspection.id == drawn.id).values(plan_id=plan.id))


def test_every_reason_has_both_labels():
    assert set(OUTSIDE_PLAN_REASONS) == set(OutsidePlanReason)
    assert all(zh and en and zh != en for zh, en in OUTSIDE_PLAN_REASONS.values())


def test_the_migration_gives_existing_tasks_a_plan_or_a_reason(fresh_app):
    """642199579eb8 on rows that predate it: a tip is a complaint, a task by hand takes its unit's
    approved plan of its window's year or else 'superior_assignment', a drawn one its draw's plan."""
    from flask_migrate import downgrade, upgrade

    from server.extensions import db

    app = fresh_app("plan-backfill")
    with app.app_context():
        planned_unit, bare_unit = factories.UnitFactory(), factories.UnitFactory()
        plan = factories.AnnualPlanFactory(unit_id=planned_unit.id, year=TODAY.year)
        factories.AnnualPlanFactory(unit_id=bare_unit.id, year=TODAY.year, status=PlanStatus.DRAFT,
                                    approved_by=None, approved_at=None)
        made = {}
        for name, unit_, extra in [
                ("tip", planned_unit, {"kind": InspectionKind.TIP,
                                       "outside_plan_reason": OutsidePlanReason.NON_SITE_CLUE}),
                ("routine", planned_unit, {"outside_plan_reason": OutsidePlanReason.SPECIAL_CAMPAIGN}),
                ("in_plan", planned_unit, {"kind": InspectionKind.JOINT}),
                ("bare", bare_unit, {"outside_plan_reason": OutsidePlanReason.COMPLAINT}),
                ("drawn", bare_unit, {"kind": InspectionKind.RANDOM,
                                      "draw_id": factories.DrawFactory(plan_id=plan.id).id}),
                ("drawn_bare", bare_unit, {"kind": InspectionKind.RANDOM, "draw_id": factories.DrawFactory().id})]:
            head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit_)
            a, b = factories.inspector(unit=unit_), factories.inspector(unit=unit_)
            made[name] = _create(db.session, head, a, b, factories.TargetFactory(), **extra).id
        plan_id = plan.id
        db.session.commit()
        db.session.remove()

        downgrade(revision="e3c1d7a2b845")
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("inspection")}
        assert not {"plan_id", "outside_plan_reason"} & columns
        upgrade()
        got = {name: db.session.execute(sa.select(Inspection.plan_id, Inspection.outside_plan_reason)
                                        .where(Inspection.id == id_)).one() for name, id_ in made.items()}
        assert got == {"tip": (None, OutsidePlanReason.COMPLAINT), "routine": (plan_id, None),
                       "in_plan": (plan_id, None), "bare": (None, OutsidePlanReason.SUPERIOR_ASSIGNMENT),
                       "drawn": (plan_id, None), "drawn_bare": (None, None)}
        assert {i.status for i in db.session.scalars(sa.select(Inspection))} == {InspectionStatus.ASSIGNED}
