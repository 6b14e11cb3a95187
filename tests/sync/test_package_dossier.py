"""The offline dossier's past violations: decided penalty cases against the target, as far as the
inspector may see them, read in one query however many targets the package holds."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from server.extensions import db
from server.modules.cases import documents
from server.modules.cases import operations as cases
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, OutsidePlanReason
from server.modules.reviews import operations as reviews
from server.modules.reviews.models import ReviewOutcome
from server.modules.sync import operations as ops
from tests import factories
from tests.cases.conftest import D, investigated, world  # noqa: F401  (fixture re-exported)
from tests.sync.conftest import make_phone
from tests import clock


def decided(db_session, w, *, fine=100_000, **lead):
    """A case decided on 13 August 2026 after notice, waiver and legal review."""
    case = investigated(db_session, w, **lead)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=fine)
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意",
                   today=D(2026, 8, 13))
    cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=fine)
    return case


def inspection_of(db_session, w, target, supervisor):
    today = clock.today()
    return inspections.create(db_session, target_id=target.id, lead_id=w.c.id, member_ids=[w.a.id],
                              window_start=today, window_end=today + dt.timedelta(days=7),
                              kind=InspectionKind.ROUTINE, created_by=supervisor,
                              outside_plan_reason=OutsidePlanReason.NON_SITE_CLUE)


@pytest.fixture()
def dossier(db_session, world):  # noqa: F811
    w = world
    other_unit = factories.UnitFactory()
    own = decided(db_session, w)  # w.c's unit; w.c did not handle it
    documents.generate(db_session, own, "decision", by_user_id=w.head.id, on=D(2026, 8, 13))
    cases.serve_decision(db_session, own, by=w.a, on=D(2026, 8, 14), method="in_person")
    cases.pay(db_session, own, by=w.a, on=D(2026, 8, 20), amount=100_000)
    public = decided(db_session, w, fine=120_000, unit_id=other_unit.id)
    cases.publish(db_session, public, by=w.a, on=D(2026, 8, 14))
    secret = decided(db_session, w, unit_id=other_unit.id)
    cases.publish(db_session, secret, by=w.a, on=D(2026, 8, 14), non_publication_reason="涉及商业秘密")
    revoked = decided(db_session, w, unit_id=other_unit.id)
    cases.publish(db_session, revoked, by=w.a, on=D(2026, 8, 14))
    cases.withdrawal_due(db_session, revoked, by=w.a, on=D(2026, 9, 30), reason="行政复议决定撤销原处罚决定")
    investigated(db_session, w)  # no decision yet
    supervisor = factories.UserFactory(role=w.head.role, unit=w.unit)
    inspection = inspection_of(db_session, w, w.target, supervisor)
    phone = make_phone(db_session, w.c)
    db_session.commit()
    return w, phone, inspection, {"own": own, "public": public}


def test_past_violations_list_what_the_inspector_may_see(client, db_session, dossier):
    w, phone, inspection, expected = dossier
    pkg = client.get("/mobile/v1/sync/package", headers=phone.headers).json
    (target,) = pkg["targets"]
    violations = target["past_violations"]
    # the other unit's published decision (made last) first; not its unpublished or revoked ones
    assert [v["case_number"] for v in violations] == [expected["public"].number, expected["own"].number]
    public, own = (next(v for v in violations if v["case_number"] == expected[k].number) for k in ("public", "own"))
    assert own == {"case_number": expected["own"].number, "decision_number": own["decision_number"],
                   "decision_date": "2026-08-13", "title": "超标排放氮氧化物", "violation_code": "air_99_2",
                   "legal_basis": expected["own"].legal_basis, "fine": 100_000, "measures": [], "status": "paid",
                   "closed_on": None, "decision_changed": False}
    assert own["decision_number"].startswith("商环罚〔2026〕")
    assert public["decision_number"] is None and public["fine"] == 120_000 and public["status"] == "decided"
    assert "facts" not in own and "party_name" not in own  # the dossier is not the case file


def test_past_violations_cost_one_query_for_all_targets(client, db_session, dossier):
    w, phone, _, _ = dossier
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def package_statements():
        db_session.commit()  # the same starting point: nothing loaded
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            ops.package(db_session, phone.device, today=clock.today())
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return list(statements)

    ops.package(db_session, phone.device, today=clock.today())  # allocates the device's document numbers
    one = package_statements()
    supervisor = factories.UserFactory(role=w.head.role, unit=w.unit)
    for _ in range(3):
        other = factories.TargetFactory()
        inspection_of(db_session, w, other, supervisor)
        decided(db_session, w).target_id = other.id  # the same facts, found at another enterprise
    four = package_statements()
    pkg = ops.package(db_session, phone.device, today=clock.today())
    assert len(pkg["targets"]) == 4 and sum(len(t["past_violations"]) for t in pkg["targets"]) == 2 + 3
    assert len(one) == len(four)  # the same statements for one inspection and target as for four
    assert len([s for s in four if "penalty_case" in s]) == 1
