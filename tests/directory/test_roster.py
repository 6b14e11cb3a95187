import datetime as dt

import pytest

from server.core.access import Role
from server.modules.roster import operations as roster
from server.modules.roster.models import AbsenceKind, ConflictRelation
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests import clock

TODAY = clock.today()


@pytest.fixture()
def people(db_session):
    unit = factories.UnitFactory()
    head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    a = factories.inspector(unit=unit)
    return head, a, factories.TargetFactory()


def test_absence_makes_an_inspector_unavailable(client, db_session, people):
    head, a, _ = people
    response = client.post(f"/api/v1/roster/{a.id}/absences", headers=staff_headers(head),
                           json={"kind": "training", "starts_on": TODAY.isoformat(),
                                 "ends_on": (TODAY + dt.timedelta(days=3)).isoformat()})
    assert response.status_code == 201, response.json
    assert roster.unavailable(db_session, [a.id], TODAY + dt.timedelta(days=2), TODAY + dt.timedelta(days=9)) == {a.id}
    assert roster.unavailable(db_session, [a.id], TODAY + dt.timedelta(days=4), TODAY + dt.timedelta(days=9)) == set()
    assert client.post(f"/api/v1/roster/{a.id}/absences", headers=staff_headers(a),
                       json={"kind": "leave", "starts_on": TODAY.isoformat(),
                             "ends_on": TODAY.isoformat()}).status_code == 403


def test_inspector_declares_own_conflict_with_a_valid_credit_code(client, db_session, people):
    head, a, target = people
    response = client.post(f"/api/v1/roster/{a.id}/conflicts", headers=staff_headers(a),
                           json={"uscc": target.uscc, "relation": "relative", "detail": "配偶任该公司会计"})
    assert response.status_code == 201, response.json
    assert roster.is_conflicted(db_session, a.id, target, TODAY)
    bad = client.post(f"/api/v1/roster/{a.id}/conflicts", headers=staff_headers(a),
                      json={"uscc": "91611002MA00000000", "relation": "holding", "detail": "持股"})
    assert_contract(bad, 422, "directory.uscc_invalid")
    client.post(f"/api/v1/roster/conflicts/{response.json['id']}/withdraw", headers=staff_headers(head),
                json={"reason": "配偶已离职"})
    assert not roster.is_conflicted(db_session, a.id, target, TODAY)
    assert audit_entries("roster:conflict:withdrawn", user=a.id)


def test_recusal_request_is_decided_by_the_head_and_enters_the_register(client, db_session, people):
    head, a, target = people
    request = client.post("/api/v1/recusals", headers=staff_headers(a),
                          json={"user_id": a.id, "target_id": target.id, "requested_by": "某公司法定代表人",
                                "grounds": "执法人员系我公司前员工"}).json
    assert request["status"] == "pending"
    own = roster.get_recusal(db_session, request["id"])
    with pytest.raises(roster.RecusalSelfDecision):
        roster.decide_recusal(db_session, own, granted=True, reason="x", by=a)
    decided = client.post(f"/api/v1/recusals/{request['id']}/decision", headers=staff_headers(head),
                          json={"granted": True, "reason": "确有曾任职关系"})
    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "granted" and decided.json["conflict_id"]
    assert roster.is_conflicted(db_session, a.id, target, TODAY)
    again = client.post(f"/api/v1/recusals/{request['id']}/decision", headers=staff_headers(head),
                        json={"granted": False, "reason": "再议"})
    assert_contract(again, 409, "recusal.already_decided")
    assert audit_entries("roster:recusal:decided", recusal=request["id"])[0]["payload"]["granted"] is True


def test_conflict_relation_and_absence_kinds_are_closed_sets():
    assert {r.value for r in ConflictRelation} >= {"relative", "former_employer", "holding"}
    assert {k.value for k in AbsenceKind} >= {"leave", "training"}
