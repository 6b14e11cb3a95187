import datetime as dt

import pytest
import sqlalchemy as sa

from server.core.access import Role
from server.core.calendar import Calendar
from server.core.db import utcnow
from server.modules.disclosure import operations as ops
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, InspectionStatus
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests import clock

TODAY = clock.today()


@pytest.fixture()
def done(db_session):
    """A completed random inspection and its supervisor."""
    unit = factories.UnitFactory()
    supervisor = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    a, b = factories.inspector(unit=unit), factories.inspector(unit=unit)
    target = factories.TargetFactory()
    inspection = inspections.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id],
                                    window_start=TODAY, window_end=TODAY, kind=InspectionKind.RANDOM,
                                    created_by=supervisor, secret=True, draw_id=factories.DrawFactory().id)
    return supervisor, inspection


def test_result_is_published_with_team_certificates_within_twenty_working_days(client, db_session, done):
    supervisor, inspection = done
    body = {"inspection_id": inspection.id, "findings": "未发现环境违法行为", "outcome": "no_problem"}
    assert_contract(client.post("/api/v1/disclosure/results", json=body, headers=staff_headers(supervisor)), 409,
                    "disclosure.inspection_not_completed")
    inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    response = client.post("/api/v1/disclosure/results", json=body, headers=staff_headers(supervisor))
    assert response.status_code == 201, response.json
    assert response.json["on_time"] is True
    inspected = dt.date.fromisoformat(response.json["inspected_on"])
    assert dt.date.fromisoformat(response.json["due_on"]) == Calendar(provisional=True).add_working_days(inspected, 20)
    public = client.get("/api/v1/public/results").json
    assert public[0]["target_uscc"] == inspection.target.uscc
    assert sorted(public[0]["team_certificates"]) == sorted(m.certificate_number for m in inspection.members)
    assert_contract(client.post("/api/v1/disclosure/results", json=body, headers=staff_headers(supervisor)), 409,
                    "disclosure.already_published")
    assert audit_entries("disclosure:result:published", inspection=inspection.id)


def test_overdue_results_are_listed_for_staff(client, db_session, done):
    supervisor, inspection = done
    inspection.status = InspectionStatus.COMPLETED
    inspection.completed_at = utcnow() - dt.timedelta(days=45)
    db_session.flush()
    overdue = client.get("/api/v1/disclosure/deadlines?overdue=true", headers=staff_headers(supervisor)).json
    assert [row["inspection_id"] for row in overdue] == [inspection.id]
    assert overdue[0]["overdue"] is True and overdue[0]["working_days_left"] < 0
    late = ops.publish_result(db_session, inspection_id=inspection.id, findings="发现问题，已责令整改",
                              outcome=ops.Outcome.RECTIFICATION_ORDERED, by_user_id=supervisor.id)
    assert late.on_time is False
    assert client.get("/api/v1/disclosure/deadlines", headers=staff_headers(supervisor)).json == []


def test_public_sees_items_and_approved_plans_without_logging_in(client, db_session):
    author = factories.UserFactory(role=Role.SUPERVISOR)
    approver = factories.UserFactory(role=Role.SUPERVISOR, unit=author.unit)
    item = {"code": "SX-EE-001", "name": "排污许可证执行情况检查", "legal_basis": "排污许可管理条例 第25条",
            "implementing_body": "商洛市生态环境局", "content": "许可排放浓度、排放量、自行监测、台账",
            "method": "双随机抽查，现场检查"}
    assert client.post("/api/v1/sampling-items", json=item, headers=staff_headers(author)).status_code == 201
    area = {} if author.unit.region_code == "611000" else {"region_code": author.unit.region_code}
    for risk, count in (("key", 20), ("general", 60)):  # a plan asks for no more than the directory holds
        factories.TargetFactory.create_batch(count, risk_class=risk, **area)
    plan = client.post("/api/v1/annual-plans", headers=staff_headers(author),
                       json={"year": TODAY.year, "title": "年度现场检查计划", "planned": {"key": 40, "general": 120},
                             "cap_per_enterprise": 2}).json
    assert client.get("/api/v1/public/plans").json["plans"] == []
    assert_contract(client.post(f"/api/v1/annual-plans/{plan['id']}/approve", headers=staff_headers(author)), 403,
                    "plan.second_approver_required")
    assert client.post(f"/api/v1/annual-plans/{plan['id']}/approve", headers=staff_headers(approver)).status_code == 200
    assert client.get("/api/v1/public/sampling-items").json[0]["code"] == "SX-EE-001"
    assert client.get("/api/v1/public/plans").json["plans"][0]["planned"] == {"key": 40, "general": 120}


def test_public_results_never_show_unpublished_draws(client, db_session, done):
    from server.modules.draws.models import Draw, DrawStatus

    _, inspection = done
    draw = db_session.get(Draw, inspection.draw_id)
    draw.status, draw.seed, draw.result_hash, draw.drawn_count = DrawStatus.EXECUTED, "a" * 64, "b" * 64, 1
    db_session.flush()
    assert client.get("/api/v1/public/results").json == []
    listed = client.get("/api/v1/public/draws").json
    assert [d["id"] for d in listed] == [draw.id]  # the draw is on record, its outcome is not
    assert (listed[0]["seed"], listed[0]["result_hash"], listed[0]["drawn_count"]) == (None, None, None)


def test_a_random_inspection_without_a_draw_is_not_published_as_drawn(client, db_session, done):
    """A row from before draws were required (create refuses one now) is never shown as a double-random result."""
    from server.modules.disclosure.models import ResultDisclosure

    supervisor, inspection = done
    inspection.draw_id = None
    inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    body = {"inspection_id": inspection.id, "findings": "未发现环境违法行为", "outcome": "no_problem"}
    refused = assert_contract(client.post("/api/v1/disclosure/results", json=body, headers=staff_headers(supervisor)),
                              422, "disclosure.not_drawn")
    assert "抽取" in refused["message_zh"]
    assert db_session.scalar(sa.select(sa.func.count(ResultDisclosure.id))) == 0
    assert client.get("/api/v1/public/results").json == []


def test_a_supervisor_sees_and_publishes_only_the_units_own_results(client, db_session, done):
    """谁检查、谁录入、谁公开: another unit's supervisor neither sees the result on the board nor
    publishes it; an admin sees every unit's and may publish any."""
    from server.modules.disclosure.models import ResultDisclosure

    supervisor, inspection = done
    inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    stranger = factories.UserFactory(role=Role.SUPERVISOR, unit=factories.UnitFactory())
    admin = factories.UserFactory(role=Role.ADMIN)
    db_session.flush()
    listed = lambda user: [r["inspection_id"] for r in client.get(  # noqa: E731
        "/api/v1/disclosure/deadlines", headers=staff_headers(user)).json]
    assert listed(supervisor) == [inspection.id] and listed(admin) == [inspection.id]
    assert listed(stranger) == []
    body = {"inspection_id": inspection.id, "findings": "未发现环境违法行为", "outcome": "no_problem"}
    refused = assert_contract(client.post("/api/v1/disclosure/results", json=body, headers=staff_headers(stranger)),
                              403, "disclosure.other_unit")
    assert "谁检查、谁公开" in refused["message_zh"]
    assert db_session.scalar(sa.select(sa.func.count(ResultDisclosure.id))) == 0
    assert not audit_entries("disclosure:result:published", inspection=inspection.id)
    published = client.post("/api/v1/disclosure/results", json=body, headers=staff_headers(admin))
    assert published.status_code == 201, published.json
    assert db_session.scalar(sa.select(ResultDisclosure.published_by)) == admin.id
    assert listed(supervisor) == [] and listed(admin) == []


def test_deadlines_of_one_unit_leave_out_the_others(db_session, done):
    supervisor, inspection = done
    other = factories.UserFactory(role=Role.SUPERVISOR, unit=factories.UnitFactory())
    a, b = factories.inspector(unit=other.unit), factories.inspector(unit=other.unit)
    theirs = inspections.create(db_session, target_id=factories.TargetFactory().id, lead_id=a.id, member_ids=[b.id],
                                window_start=TODAY, window_end=TODAY, kind=InspectionKind.RANDOM, created_by=other,
                                secret=True, draw_id=factories.DrawFactory(unit_id=other.unit_id).id)
    for done_one in (inspection, theirs):
        done_one.status, done_one.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    ids = lambda unit_id: [r["inspection_id"] for r in ops.deadlines(db_session, unit_id=unit_id)]  # noqa: E731
    assert ids(supervisor.unit_id) == [inspection.id] and ids(other.unit_id) == [theirs.id]
    assert sorted(ids(None)) == sorted([inspection.id, theirs.id])
