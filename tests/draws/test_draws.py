"""The draw ceremony through the API, on the real database."""
import datetime as dt
import decimal
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from server.core.access import Role
from server.core.db import utcnow
from server.modules.draws import algorithm, rules
from server.modules.draws.cli import draw_cli
from server.modules.draws.models import Draw, Period, SamplingRule
from server.modules.inspections.models import Inspection, InspectionStatus
from server.modules.roster import operations as roster
from server.modules.roster.models import AbsenceKind, ConflictRelation
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests import clock

TODAY = clock.today()
START, END = TODAY + dt.timedelta(days=3), TODAY + dt.timedelta(days=20)
SECRETS = {"chief": "chief-secret-0123456789abcdef", "observer": "observer-secret-fedcba9876543210"}


class World:
    def __init__(self, per_region=5, targets_per_region=20, rule=None):
        agency = factories.AgencyFactory()
        self.detachment = factories.UnitFactory(agency=agency, region_code="611000")
        self.brigades = {code: factories.UnitFactory(agency=agency, region_code=code) for code in ("611002", "611021")}
        self.chief = factories.UserFactory(role=Role.SUPERVISOR, unit=self.detachment)
        self.deputy = factories.UserFactory(role=Role.SUPERVISOR, unit=self.detachment)
        self.observer = factories.UserFactory(role=Role.LEGAL_REVIEWER, unit=self.detachment)
        self.inspectors = {code: [factories.inspector(unit=unit) for _ in range(per_region)]
                           for code, unit in self.brigades.items()}
        self.targets = {code: [factories.TargetFactory(region_code=code) for _ in range(targets_per_region)]
                        for code in self.brigades}
        from server.extensions import db
        db.session.add(SamplingRule(level="county", region_code="611000", category="general",
                                    **(rule or {"basis": "percent", "value": decimal.Decimal("10")}),
                                    period="quarter", effective_from=TODAY - dt.timedelta(days=30), source="[R] test"))
        db.session.flush()

    def party(self, name):
        return {"chief": self.chief, "observer": self.observer}[name]


@pytest.fixture()
def world(db_session):
    return World()


def _open(client, world, **extra):
    body = {"title": "2026年第四季度双随机抽查", "region_codes": ["611002", "611021"], "level": "county",
            "period_label": "2026Q4", "window_start": START.isoformat(), "window_end": END.isoformat(), **extra}
    response = client.post("/api/v1/draws", json=body, headers=staff_headers(world.chief))
    assert response.status_code == 201, response.json
    return response.json["id"]


def _next_quarter():
    start = rules.period_start(START, Period.QUARTER, -1)
    return {"window_start": start.isoformat(), "window_end": (start + dt.timedelta(days=17)).isoformat(),
            "period_label": f"{start.year}Q{(start.month - 1) // 3 + 1}"}


def _commit_all(client, world, draw_id):
    for name in ("chief", "observer"):
        user = world.party(name)
        digest = algorithm.commitment(draw_id, f"user:{user.id}", SECRETS[name])
        response = client.post(f"/api/v1/draws/{draw_id}/commitments", json={"commitment": digest},
                               headers=staff_headers(user))
        assert response.status_code == 201, response.json


def _reveal_all(client, world, draw_id):
    for name in ("chief", "observer"):
        response = client.post(f"/api/v1/draws/{draw_id}/reveals", json={"secret": SECRETS[name]},
                               headers=staff_headers(world.party(name)))
        assert response.status_code == 201, response.json


def _revealed(client, world, **extra):
    """A draw frozen and with every secret revealed, not yet run."""
    draw_id = _open(client, world, **extra)
    _commit_all(client, world, draw_id)
    assert client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief)).status_code == 200
    _reveal_all(client, world, draw_id)
    return draw_id


def _ceremony(client, world, **extra):
    draw_id = _open(client, world, **extra)
    _commit_all(client, world, draw_id)
    frozen = client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief))
    assert frozen.status_code == 200, frozen.json
    assert client.post(f"/api/v1/draws/{draw_id}/public-value", json={"public_value": "福彩3D 2026320期 517"},
                       headers=staff_headers(world.chief)).status_code == 200
    _reveal_all(client, world, draw_id)
    ran = client.post(f"/api/v1/draws/{draw_id}/run", headers=staff_headers(world.chief))
    assert ran.status_code == 200, ran.json
    return ran.json


def test_full_ceremony_creates_secret_teams_and_publishes_a_verifiable_draw(client, db_session, world, tmp_path):
    result = _ceremony(client, world)
    assert result["status"] == "executed" and result["drawn_count"] == 4  # ceil(20 × 10%) per region
    inspections = db_session.scalars(sa.select(Inspection).where(Inspection.draw_id == result["id"])).all()
    assert len(inspections) == 4 and all(i.secret and i.kind.value == "random" for i in inspections)
    region_of = {u.id: code for code, people in world.inspectors.items() for u in people}
    for inspection in inspections:
        team = [m.user_id for m in inspection.members]
        assert len(team) == 2 and {region_of[u] for u in team} == {inspection.target.region_code}

    # Secret until the visit: not public, not for other inspectors, not for the observer.
    anonymous = client.get(f"/api/v1/public/draws/{result['id']}").json
    assert anonymous["seed"] is None and "assignments" not in anonymous
    assert_contract(client.get(f"/api/v1/public/draws/{result['id']}/document"), 404, "draw.not_published")
    observed = client.get(f"/api/v1/draws/{result['id']}", headers=staff_headers(world.observer)).json
    assert observed["assignments"] is None
    members = {m.user_id for i in inspections for m in i.members}
    outsider = next(u for people in world.inspectors.values() for u in people if u.id not in members)
    assert client.get("/api/v1/inspections", headers=staff_headers(outsider)).json == []
    assert_contract(client.post(f"/api/v1/draws/{result['id']}/publish", headers=staff_headers(world.chief)),
                    409, "draw.not_yet_visited")

    for inspection in inspections:
        inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    published = client.post(f"/api/v1/draws/{result['id']}/publish", headers=staff_headers(world.chief))
    assert published.status_code == 200, published.json
    document = client.get(f"/api/v1/public/draws/{result['id']}/document")
    assert document.status_code == 200
    doc = json.loads(document.data)
    ok, checks = algorithm.verify(doc)
    assert ok, checks
    assert doc["public_value"] == "福彩3D 2026320期 517" and len(doc["reveals"]) == 2
    path = tmp_path / "draw.json"
    path.write_bytes(document.data)
    outcome = CliRunner().invoke(draw_cli, ["verify", str(path)])
    assert outcome.exit_code == 0 and "MATCH" in outcome.output
    tags = [e["tag"] for e in audit_entries(draw=result["id"])]
    assert tags[:2] == ["draws:draw:created", "draws:draw:committed"]
    assert {"draws:draw:frozen", "draws:draw:revealed", "draws:draw:executed", "draws:draw:published"} <= set(tags)


def test_freezing_needs_two_parties_one_an_observer(client, db_session, world):
    draw_id = _open(client, world)
    digest = algorithm.commitment(draw_id, f"user:{world.chief.id}", SECRETS["chief"])
    client.post(f"/api/v1/draws/{draw_id}/commitments", json={"commitment": digest}, headers=staff_headers(world.chief))
    assert_contract(client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief)), 409,
                    "draw.observer_required")
    again = client.post(f"/api/v1/draws/{draw_id}/commitments", json={"commitment": digest},
                        headers=staff_headers(world.chief))
    assert_contract(again, 409, "draw.already_committed")


def test_reveal_not_matching_the_commitment_is_refused_and_logged(client, db_session, world):
    draw_id = _open(client, world)
    _commit_all(client, world, draw_id)
    client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief))
    bad = client.post(f"/api/v1/draws/{draw_id}/reveals", json={"secret": "not-the-secret-at-all"},
                      headers=staff_headers(world.observer))
    assert_contract(bad, 422, "draw.reveal_mismatch")
    assert audit_entries("draws:draw:reveal_refused", draw=draw_id)
    client.post(f"/api/v1/draws/{draw_id}/reveals", json={"secret": SECRETS["chief"]}, headers=staff_headers(world.chief))
    assert_contract(client.post(f"/api/v1/draws/{draw_id}/public-value", json={"public_value": "x"},
                                headers=staff_headers(world.chief)), 409, "draw.public_value_late")
    assert_contract(client.post(f"/api/v1/draws/{draw_id}/run", headers=staff_headers(world.chief)), 409,
                    "draw.reveals_incomplete")
    assert db_session.scalar(sa.select(sa.func.count(Inspection.id)).where(Inspection.draw_id == draw_id)) == 0


def test_plan_asking_for_more_targets_than_exist_changes_nothing(client, db_session):
    world = World(rule={"basis": "fixed", "value": decimal.Decimal("50")})
    draw_id = _open(client, world)
    _commit_all(client, world, draw_id)
    assert_contract(client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief)), 422,
                    "draw.not_enough_targets")
    draw = db_session.get(Draw, draw_id)
    assert draw.status.value == "committing" and draw.document is None


def test_too_few_eligible_inspectors_for_a_team_of_two(client, db_session):
    world = World(per_region=2)
    # one inspector of 611021 on leave, the other with a certificate expiring inside the window
    away, lapsing = world.inspectors["611021"]
    roster.add_absence(db_session, away, kind=AbsenceKind.LEAVE, starts_on=START, ends_on=START, by=world.chief)
    lapsing.certificates[0].valid_until = START + dt.timedelta(days=1)
    db_session.flush()
    draw_id = _open(client, world)
    _commit_all(client, world, draw_id)
    body = assert_contract(client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief)), 422,
                           "draw.not_enough_inspectors")
    assert body["context"]["region"] == "611021"


def test_conflicted_inspectors_are_excluded_and_cross_region_teams_come_from_elsewhere(client, db_session, world):
    conflicted = world.inspectors["611002"][0]
    for target in world.targets["611021"]:
        roster.declare_conflict(db_session, conflicted, uscc=target.uscc, relation=ConflictRelation.RELATIVE,
                                detail="亲属持股", by=world.chief)
    result = _ceremony(client, world, cross_region=True, joint_agencies=["商洛市水利局"])
    region_of = {u.id: code for code, people in world.inspectors.items() for u in people}
    target_region = {t.id: code for code, ts in world.targets.items() for t in ts}
    for item in result["assignments"]:
        assert all(region_of[u] != target_region[item["target"]] for u in item["team"])
        if target_region[item["target"]] == "611021":
            assert conflicted.id not in item["team"]
        assert item["joint_with"] == ["商洛市水利局"]
    doc = json.loads(client.get(f"/api/v1/draws/{result['id']}/document", headers=staff_headers(world.chief)).data)
    assert len(doc["conflicts"]) == 20


def test_redraw_needs_a_reason_and_a_second_approver_and_is_shown_publicly(client, db_session, world):
    first = _ceremony(client, world)
    request = client.post(f"/api/v1/draws/{first['id']}/redraw-requests", headers=staff_headers(world.chief),
                          json={"reason_code": "data_error", "reason": "名录库中两家企业已注销"})
    assert request.status_code == 201, request.json
    assert_contract(client.post(f"/api/v1/redraw-requests/{request.json['id']}/approve",
                                headers=staff_headers(world.chief)), 403, "draw.second_approver_required")
    approved = client.post(f"/api/v1/redraw-requests/{request.json['id']}/approve", headers=staff_headers(world.deputy))
    assert approved.status_code == 200, approved.json
    assert approved.json["attempt"] == 2 and approved.json["redraw_of"] == first["id"]
    statuses = set(db_session.scalars(sa.select(Inspection.status).where(Inspection.draw_id == first["id"])))
    assert statuses == {InspectionStatus.CANCELLED}
    public = client.get(f"/api/v1/public/draws/{approved.json['id']}").json
    assert public["attempt"] == 2 and public["redraws"][0]["reason"] == "名录库中两家企业已注销"
    assert client.get(f"/api/v1/public/draws/{first['id']}").json["status"] == "superseded"


@pytest.mark.parametrize("rule_specs,region,on,expected", [
    ([("city", "611000", "2026-01-01")], "611002", "2026-06-01", 0),
    ([("city", "611000", "2026-01-01"), ("city", "611002", "2026-03-01")], "611002", "2026-06-01", 1),
    ([("city", "611000", "2026-01-01"), ("city", "611002", "2026-09-01")], "611002", "2026-06-01", 0),
    ([("city", "611000", "2026-01-01"), ("city", "611000", "2026-04-01")], "611021", "2026-06-01", 1),
    ([("county", "611000", "2026-01-01")], "611021", "2026-06-01", None),
])
def test_rule_selection_prefers_the_region_and_the_latest_version(rule_specs, region, on, expected):
    views = [rules.RuleView(i, level, code, "key", dt.date.fromisoformat(start), None)
             for i, (level, code, start) in enumerate(rule_specs)]
    chosen = rules.pick(views, "city", region, "key", dt.date.fromisoformat(on))
    assert (chosen.id if chosen else None) == expected


@pytest.mark.parametrize("day,period,back,expected", [
    ("2026-11-30", "quarter", 0, "2026-10-01"), ("2026-11-30", "quarter", 1, "2026-07-01"),
    ("2026-02-15", "quarter", 1, "2025-10-01"), ("2026-01-31", "month", 2, "2025-11-01"),
    ("2026-05-05", "year", 1, "2025-01-01"),
])
def test_period_start(day, period, back, expected):
    from server.modules.draws.models import Period

    assert rules.period_start(dt.date.fromisoformat(day), Period(period), back) == dt.date.fromisoformat(expected)


def test_default_rules_load_once_with_their_sources(db_session):
    db_session.execute(sa.delete(SamplingRule))
    assert rules.load_defaults(db_session) == 6
    assert rules.load_defaults(db_session) == 0
    assert all(r.source.startswith("[") for r in db_session.scalars(sa.select(SamplingRule)))


def test_recently_drawn_targets_are_left_out(client, db_session):
    world = World(rule={"basis": "percent", "value": decimal.Decimal("10"), "exclude_recent_periods": 1})
    first = _ceremony(client, world)
    drawn = {item["target"] for item in first["assignments"]}
    second_id = _open(client, world, title="下季度抽查", **_next_quarter())
    _commit_all(client, world, second_id)
    client.post(f"/api/v1/draws/{second_id}/freeze", headers=staff_headers(world.chief))
    doc = json.loads(client.get(f"/api/v1/draws/{second_id}/document", headers=staff_headers(world.chief)).data)
    assert drawn.isdisjoint(row[0] for row in doc["targets"])
    assert db_session.get(Draw, second_id).exclusions["drawn_recently"] == len(drawn)


def test_another_units_supervisor_cannot_see_or_run_the_draw(client, db_session, world):
    draw_id = _open(client, world)
    stranger = factories.UserFactory(role=Role.SUPERVISOR)
    assert_contract(client.get(f"/api/v1/draws/{draw_id}", headers=staff_headers(stranger)), 403, "auth.forbidden")
    assert_contract(client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(stranger)), 403,
                    "auth.forbidden")


def test_the_plans_cap_per_enterprise_leaves_targets_out(client, db_session, world):
    from server.modules.inspections import operations as inspections
    from server.modules.inspections.models import InspectionKind, OutsidePlanReason

    plan = client.post("/api/v1/annual-plans", headers=staff_headers(world.chief),
                       json={"year": START.year, "title": "计划", "planned": {"general": 10},
                             "cap_per_enterprise": 1}).json
    assert_contract(client.post("/api/v1/draws", headers=staff_headers(world.chief), json={
        "title": "草案计划", "region_codes": ["611002"], "level": "county", "period_label": "2026Q4",
        "window_start": START.isoformat(), "window_end": END.isoformat(), "plan_id": plan["id"]}),
        409, "plan.not_approved")
    assert client.post(f"/api/v1/annual-plans/{plan['id']}/approve", headers=staff_headers(world.deputy)).status_code == 200
    visited = world.targets["611002"][0]
    a, b = world.inspectors["611002"][:2]
    inspections.create(db_session, target_id=visited.id, lead_id=a.id, member_ids=[b.id], window_start=START,
                       window_end=START, kind=InspectionKind.TIP, created_by=world.chief,
                       outside_plan_reason=OutsidePlanReason.COMPLAINT)
    draw_id = _open(client, world, plan_id=plan["id"])
    _commit_all(client, world, draw_id)
    assert client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief)).status_code == 200
    draw = db_session.get(Draw, draw_id)
    assert draw.exclusions["yearly_cap"] == 1
    assert visited.id not in {row[0] for row in json.loads(
        client.get(f"/api/v1/draws/{draw_id}/document", headers=staff_headers(world.chief)).data)["targets"]}


def test_a_concurrent_change_to_the_draw_makes_the_run_fail_whole(client, db_session, world):
    from server.modules.draws import operations as ops

    draw_id = _revealed(client, world)
    draw = db_session.get(Draw, draw_id)
    # another transaction ran it first: the row's version moved on
    db_session.execute(sa.update(Draw).where(Draw.id == draw_id).values(version=Draw.version + 1),
                       execution_options={"synchronize_session": False})
    with pytest.raises(ops.InvalidState):
        with db_session.begin_nested():
            ops.run(db_session, draw, world.chief)
    assert db_session.scalar(sa.select(sa.func.count(Inspection.id)).where(Inspection.draw_id == draw_id)) == 0


def test_a_run_refuses_stored_pools_that_are_not_the_frozen_ones(client, db_session, world):
    from server.modules.draws import operations as ops

    draw_id = _revealed(client, world)
    draw = db_session.get(Draw, draw_id)
    stored = ops._unpack(draw.run_input)
    stored["pool_hashes"]["targets"] = "0" * 64  # pools swapped after the freeze was logged
    draw.run_input = ops._pack(stored)
    db_session.flush()
    assert_contract(client.post(f"/api/v1/draws/{draw_id}/run", headers=staff_headers(world.chief)),
                    409, "draw.invalid_state")
    assert db_session.scalar(sa.select(sa.func.count(Inspection.id)).where(Inspection.draw_id == draw_id)) == 0


def test_migration_keeps_documents_whole_down_and_up(fresh_app):
    """e3c1d7a2b845 stores a run's outcome beside the frozen document: downgraded, an executed
    draw's document is one piece again, byte for byte; upgraded, it is the same published file,
    and a draw frozen before the upgrade can still be run and verified."""
    import zlib

    from flask_migrate import downgrade, upgrade

    from server.extensions import db
    from server.modules.draws import operations as ops

    app = fresh_app("draw-documents")
    with app.app_context():
        world = World()
        db.session.commit()
        client = app.test_client()
        executed = _ceremony(client, world)["id"]
        frozen = _open(client, world, title="下季度抽查", **_next_quarter())
        _commit_all(client, world, frozen)
        assert client.post(f"/api/v1/draws/{frozen}/freeze", headers=staff_headers(world.chief)).status_code == 200
        published = ops.document_bytes(db.session.get(Draw, executed))
        headers = {name: staff_headers(world.party(name)) for name in ("chief", "observer")}
        db.session.remove()

        downgrade(revision="4af6a18d44d0")
        stored = dict(db.session.execute(sa.text("SELECT id, document FROM draw")).all())
        db.session.remove()
        assert zlib.decompress(stored[executed]) == published
        assert "result" not in json.loads(zlib.decompress(stored[frozen]))

        upgrade()
        assert ops.document_bytes(db.session.get(Draw, executed)) == published
        for name in ("chief", "observer"):
            response = client.post(f"/api/v1/draws/{frozen}/reveals", json={"secret": SECRETS[name]},
                                   headers=headers[name])
            assert response.status_code == 201, response.json
        ran = client.post(f"/api/v1/draws/{frozen}/run", headers=headers["chief"])
        assert ran.status_code == 200, ran.json
        ok, checks = algorithm.verify(ops.document(db.session.get(Draw, frozen)))
        assert ok, checks
        assert ran.json["assignments"] == ops.outcome(db.session.get(Draw, frozen))["result"]["assignments"]


def _freeze(client, world, draw_id):
    _commit_all(client, world, draw_id)
    return client.post(f"/api/v1/draws/{draw_id}/freeze", headers=staff_headers(world.chief))


def test_a_rule_period_is_drawn_once_and_drawing_it_again_takes_an_approved_redraw(client, db_session, world):
    """A frozen draw whose secrets are out can be foreseen: another draw of the same strata in the
    same period is refused (no quiet re-roll); a re-draw with a reason and a second approver
    supersedes it, and the next period is free."""
    db_session.scalars(sa.select(SamplingRule)).one().period = Period.MONTH
    month = rules.period_start(TODAY, Period.MONTH, -2)
    window = {"window_start": (month + dt.timedelta(days=1)).isoformat(),
              "window_end": (month + dt.timedelta(days=5)).isoformat(), "period_label": f"{month:%Y-%m}"}
    first = _revealed(client, world, **window)

    later_same_month = _open(client, world, title="再抽一次", **{**window, "window_start": (month + dt.timedelta(days=10)).isoformat(),
                                                              "window_end": (month + dt.timedelta(days=14)).isoformat()})
    refused = _freeze(client, world, later_same_month)
    assert_contract(refused, 409, "draw.period_already_drawn")
    assert refused.json["context"]["strata"] == {"611002|general": first, "611021|general": first}
    assert db_session.get(Draw, later_same_month).status.value == "committing"

    next_month = rules.period_start(month, Period.MONTH, -1)
    free = _open(client, world, title="下月抽查", window_start=(next_month + dt.timedelta(days=1)).isoformat(),
                 window_end=(next_month + dt.timedelta(days=5)).isoformat(), period_label=f"{next_month:%Y-%m}")
    assert _freeze(client, world, free).status_code == 200

    request = client.post(f"/api/v1/draws/{first}/redraw-requests", headers=staff_headers(world.chief),
                          json={"reason_code": "data_error", "reason": "冻结后发现名录库有误"}).json
    redo = client.post(f"/api/v1/redraw-requests/{request['id']}/approve", headers=staff_headers(world.deputy)).json
    assert _freeze(client, world, redo["id"]).status_code == 200  # the superseded draw no longer holds the period
    assert client.get(f"/api/v1/public/draws/{redo['id']}").json["redraws"][0]["reason"] == "冻结后发现名录库有误"


def test_a_redraw_is_approved_within_the_drawing_unit(client, db_session, world):
    first = _ceremony(client, world)
    request = client.post(f"/api/v1/draws/{first['id']}/redraw-requests", headers=staff_headers(world.chief),
                          json={"reason_code": "data_error", "reason": "名录库有误"}).json
    stranger = factories.UserFactory(role=Role.SUPERVISOR)
    assert_contract(client.post(f"/api/v1/redraw-requests/{request['id']}/approve", headers=staff_headers(stranger)),
                    403, "draw.redraw_other_unit")
    assert db_session.get(Draw, first["id"]).status.value == "executed"


def test_a_visit_window_in_the_past_is_refused(client, db_session, world):
    yesterday = TODAY - dt.timedelta(days=1)
    response = client.post("/api/v1/draws", headers=staff_headers(world.chief), json={
        "title": "补录", "region_codes": ["611002"], "level": "county", "period_label": "2026Q4",
        "window_start": yesterday.isoformat(), "window_end": END.isoformat()})
    assert_contract(response, 422, "draw.window_past")
    assert db_session.scalar(sa.select(sa.func.count(Draw.id))) == 0


def test_a_plan_asking_for_more_inspections_than_the_directory_allows_is_refused(client, db_session, world):
    # 40 general targets in the directory, at most 2 inspections each a year
    body = {"year": START.year, "title": "计划", "planned": {"general": 81}, "cap_per_enterprise": 2}
    response = client.post("/api/v1/annual-plans", headers=staff_headers(world.chief), json=body)
    assert_contract(response, 422, "plan.more_than_exist")
    assert response.json["context"]["over"]["general"] == {"planned": 81, "targets": 40, "cap_per_enterprise": 2}
    assert client.post("/api/v1/annual-plans", headers=staff_headers(world.chief),
                       json={**body, "planned": {"general": 80}}).status_code == 201


def test_the_seed_is_disclosed_with_publication_or_to_the_drawing_units_managers(client, db_session, world):
    """Issue 14 item 2: a legal reviewer (here a party to the draw, and one who is not) reads no seed
    of an unpublished draw, on the API or the console page; the drawing unit's supervisors and
    administrators do; everyone allowed to read the draw does once it is published."""
    result = _ceremony(client, world)
    seed = db_session.get(Draw, result["id"]).seed
    assert seed and result["seed"] == seed  # the run answers the managers who ran it
    bystander = factories.UserFactory(role=Role.LEGAL_REVIEWER, unit=world.detachment)
    admin = factories.UserFactory(role=Role.ADMIN, unit=world.brigades["611002"])

    def seen(user):
        response = client.get(f"/api/v1/draws/{result['id']}", headers=staff_headers(user))
        assert response.status_code == 200, response.json
        assert seed not in response.get_data(as_text=True) or response.json["seed"] == seed
        return response.json["seed"]

    assert seen(world.observer) is None and seen(bystander) is None
    assert seen(world.chief) == seed and seen(world.deputy) == seed and seen(admin) == seed
    with client.session_transaction() as session:
        session.update({"user_id": world.observer.id, "g": world.observer.token_generation,
                        "since": int(utcnow().timestamp()), "seen": int(utcnow().timestamp())})
    page = client.get(f"/console/draws/{result['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and seed not in page.get_data(as_text=True)

    for inspection in db_session.scalars(sa.select(Inspection).where(Inspection.draw_id == result["id"])):
        inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    assert client.post(f"/api/v1/draws/{result['id']}/publish", headers=staff_headers(world.chief)).status_code == 200
    assert seen(world.observer) == seed and seen(bystander) == seed
    assert seed in client.get(f"/console/draws/{result['id']}", headers={"Accept": "text/html"}).get_data(as_text=True)


def test_the_audit_log_keeps_drawn_targets_secret_until_the_visit(client, db_session, world):
    """Rule 6 holds in the log too: other inspectors and the observer read neither the drawn
    inspections' entries nor the revealed secrets and seed until the visit or the publication."""
    result = _ceremony(client, world)
    inspections = db_session.scalars(sa.select(Inspection).where(Inspection.draw_id == result["id"])
                                     .order_by(Inspection.id)).all()
    drawn = {i.id for i in inspections}
    member = inspections[0].members[0].user
    on_team = {i.id for i in inspections if any(m.user_id == member.id for m in i.members)}
    outsider = next(u for people in world.inspectors.values() for u in people
                    if all(m.user_id != u.id for i in inspections for m in i.members))

    def assigned(user):
        entries = client.get("/api/v1/audit/entries?tag=inspection:inspection:assigned&page_size=100",
                             headers=staff_headers(user)).json
        return {s.split(":", 1)[1] for e in entries for s in e["body"]["subjects"] if s.startswith("inspection:")} & drawn

    def secrets(user):
        return [e["tag"] for tag in ("draws:draw:revealed", "draws:draw:executed")
                for e in client.get(f"/api/v1/audit/entries?tag={tag}", headers=staff_headers(user)).json]

    assert assigned(world.chief) == drawn and len(secrets(world.chief)) == 3  # two reveals and the run
    assert assigned(member) == on_team and assigned(outsider) == set() and assigned(world.observer) == set()
    assert secrets(world.observer) == [] and secrets(outsider) == []
    sealed = client.get("/api/v1/audit/entries?tag=inspection:inspection:assigned&page_size=100",
                        headers=staff_headers(world.chief)).json[0]["idx"]
    assert_contract(client.get(f"/api/v1/audit/entries/{sealed}", headers=staff_headers(world.observer)),
                    404, "audit.entry_not_found")
    history = client.get(f"/api/v1/audit/subjects/draw/{result['id']}/history", headers=staff_headers(world.observer))
    assert history.status_code == 200 and {e["tag"] for e in history.json} >= {"draws:draw:frozen"}
    assert not {"draws:draw:revealed", "draws:draw:executed"} & {e["tag"] for e in history.json}

    # the visit starts: that inspection is no longer secret; publication opens the rest
    inspections[0].status = InspectionStatus.IN_PROGRESS
    db_session.flush()
    assert assigned(outsider) == {inspections[0].id}
    for inspection in inspections:
        inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    assert client.post(f"/api/v1/draws/{result['id']}/publish", headers=staff_headers(world.chief)).status_code == 200
    assert assigned(world.observer) == drawn and len(secrets(world.observer)) == 3


def test_changes_to_a_drawn_result_are_published_with_their_reasons(client, db_session, world):
    """No quiet re-roll after the run either: a team changed or an inspection cancelled after the
    draw shows on the published draw, with the reason given."""
    from server.modules.inspections import operations as inspections

    result = _ceremony(client, world)
    drawn = db_session.scalars(sa.select(Inspection).where(Inspection.draw_id == result["id"])
                               .order_by(Inspection.id)).all()
    assert client.get(f"/api/v1/draws/{result['id']}", headers=staff_headers(world.chief)).json["changes"] == []
    first, second = drawn[0], drawn[1]
    lead, member = [m.user for m in first.members]
    region = first.target.region_code
    spare = next(u for u in world.inspectors[region] if u.id not in (lead.id, member.id))
    cert = {u.id: u.certificates[0].number for u in (member, spare)}
    inspections.reassign(db_session, first, lead_id=lead.id, member_ids=[spare.id], by=world.chief,
                         reason="执法人员病假 / sick leave")
    inspections.cancel(db_session, second, reason="企业已注销 / company deregistered")
    for inspection in drawn:
        if inspection.status is not InspectionStatus.CANCELLED:
            inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
    db_session.flush()
    assert client.get(f"/api/v1/public/draws/{result['id']}").json["changes"] is None  # not before publication
    assert client.post(f"/api/v1/draws/{result['id']}/publish", headers=staff_headers(world.chief)).status_code == 200

    changes = client.get(f"/api/v1/public/draws/{result['id']}").json["changes"]
    got = {(c["target"], c["change"], c["certificate"], c["reason"]) for c in changes}
    assert got == {(first.target.uscc, "member_removed", cert[member.id], "执法人员病假 / sick leave"),
                   (first.target.uscc, "member_added", cert[spare.id], None),
                   (second.target.uscc, "cancelled", None, "企业已注销 / company deregistered")}
    page = client.get(f"/public/draws/{result['id']}")
    assert page.status_code == 200 and "企业已注销" in page.text and "执法人员病假" in page.text
