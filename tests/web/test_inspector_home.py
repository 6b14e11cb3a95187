"""An inspector's home page ("我的工作 / My work"): their open inspections (a drawn one shown only to
its team), their cases with each one's next deadline, evidence their phone still has to upload and
flagged evidence, their sync conflicts and devices; never another inspector's work."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from server.core.access import Role
from server.extensions import db
from server.modules.cases import operations as cases
from server.modules.evidence import operations as evidence
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import InspectionKind, InspectionStatus, OutsidePlanReason
from tests import factories
from tests.evidence.helpers import Team, make_device, manifest
from tests.sync.conftest import make_phone
from tests.web.conftest import HTML, sign_in
from tests import clock

TODAY = clock.today()
DAY = dt.timedelta(days=1)


def _inspection(supervisor: Any, target: Any, lead: Any, *members: Any, start: int, end: int,
                **extra: Any) -> Any:
    """An inspection of ``target`` whose window runs from ``start`` to ``end`` days from today."""
    kind = extra.pop("kind", InspectionKind.ROUTINE)
    if kind is not InspectionKind.RANDOM:  # by hand, outside any annual plan (rule 51)
        extra.setdefault("outside_plan_reason", OutsidePlanReason.SUPERIOR_ASSIGNMENT)
    return inspections.create(db.session, target_id=target.id, lead_id=lead.id, member_ids=[m.id for m in members],
                              window_start=TODAY + start * DAY, window_end=TODAY + end * DAY, created_by=supervisor,
                              kind=kind, **extra)


def drawn_by(head: Any) -> str:
    """The draw a random inspection comes from (only a draw creates one)."""
    return factories.DrawFactory(unit_id=head.unit_id, created_by=head.id).id


def _case(supervisor: Any, target: Any, handlers: list[Any], filed: int) -> Any:
    """A case filed ``filed`` days from today: its decision clock (90 natural days) starts then."""
    session = db.session
    case = cases.create_lead(session, by=supervisor, title=f"{target.name} 超标排放", target_id=target.id,
                             act_ended_on=TODAY + (filed - 5) * DAY, discovered_on=TODAY + filed * DAY,
                             unit_id=supervisor.unit_id)
    cases.file(session, case, by=supervisor, on=TODAY + filed * DAY, handler_ids=[h.id for h in handlers])
    return case


@pytest.fixture()
def world(client: Any, db_session: Any) -> dict[str, Any]:
    unit = factories.UnitFactory()
    head = factories.UserFactory(role=Role.SUPERVISOR, unit=unit)
    me, partner, other = (factories.inspector(unit=unit, username=name) for name in ("me", "partner", "other"))
    helper = factories.UserFactory(role=Role.AUXILIARY, unit=unit, username="helper")
    names = ["商洛明日化工有限公司", "山阳抽查钒矿有限公司", "丹凤他人造纸有限公司", "商南已完成冶炼有限公司",
             "镇安已撤销水泥有限公司", "柞水立案一号有限公司", "柞水立案二号有限公司", "洛南他人案件有限公司"]
    t = [factories.TargetFactory(name=name) for name in names]
    w: dict[str, Any] = {"me": me, "partner": partner, "other": other, "helper": helper, "names": names}
    w["soon"] = _inspection(head, t[0], me, partner, helper, start=1, end=7, purpose="废水排放口检查")
    w["drawn"] = _inspection(head, t[1], me, partner, start=-2, end=3, kind=InspectionKind.RANDOM, secret=True,
                             draw_id=drawn_by(head))
    w["others"] = _inspection(head, t[2], other, partner, start=-5, end=2, kind=InspectionKind.RANDOM, secret=True,
                              draw_id=drawn_by(head))
    done = _inspection(head, t[3], me, partner, start=-20, end=-10)
    done.status = InspectionStatus.COMPLETED  # as the team's status push leaves it
    inspections.cancel(db_session, _inspection(head, t[4], me, partner, start=-1, end=5), reason="企业已停产")
    # filed later but decided sooner: the overdue one comes first whatever the order of filing
    w["due_case"] = _case(head, t[5], [me, partner], filed=-85)
    w["overdue_case"] = _case(head, t[6], [partner, me], filed=-120)
    w["others_case"] = _case(head, t[7], [other, partner], filed=-100)

    device, key = make_device(me)
    team = Team(head, me, partner, other, w["soon"], device, key, t[0])
    w["waiting"] = evidence.announce(db_session, device=device, user=me, inspection_id=w["soon"].id,
                                     manifest=manifest(team, b"photo of the outlet"))
    _, stranger = make_device(partner)
    w["flagged"] = evidence.announce(db_session, device=device, user=me, inspection_id=w["soon"].id,
                                     manifest=manifest(team, b"signed by another key", key=stranger))
    partner_device, partner_key = make_device(partner)
    w["partners"] = evidence.announce(
        db_session, device=partner_device, user=partner, inspection_id=w["soon"].id,
        manifest=manifest(Team(head, partner, me, other, w["soon"], partner_device, partner_key, t[0]), b"partner's"))
    w["device"], w["partner_device"] = device, partner_device
    db_session.commit()

    # the two phones edit the same field of the record offline: a conflict for the supervisor
    phone_me, phone_partner = make_phone(db_session, me), make_phone(db_session, partner)
    db_session.commit()
    for phone, text in ((phone_partner, "废水未经处理外排"), (phone_me, "废水经暗管直排")):
        op = phone.op("inspection_record", "edit", {"inspection_id": w["soon"].id, "template": "on_site_record",
                                                    "base_version": 0, "fields": {"findings": text}})
        assert client.post("/mobile/v1/sync/push", json={"ops": [op]}, headers=phone.headers).status_code == 200
    w["phone"] = phone_me.device
    return w


def _rows_html(html: str, table: str) -> str:
    body = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S)
    assert body, f"no table {table}"
    return body.group(1)


def _rows(html: str, table: str, attribute: str) -> list[str]:
    return re.findall(rf'data-{attribute}="([^"]+)"', _rows_html(html, table))


def _row(html: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr data-{attribute}="{value}">(.*?)</tr>', html, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(1)


def test_an_inspector_lands_on_their_work_and_sees_only_their_own(client, world):
    signed_in = sign_in(client, "me", factories.PASSWORD)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/console/my-work"
    response = client.get("/console/my-work", headers=HTML)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<title>我的工作 · 秦岭移动执法</title>" in html

    # open inspections, soonest window first; the drawn one shown to its team, marked confidential
    assert _rows(html, "my-inspections", "inspection") == [world["drawn"].id, world["soon"].id]
    assert "抽查对象保密" in _row(html, "inspection", world["drawn"].id)
    assert "废水排放口检查" in _row(html, "inspection", world["soon"].id)
    names = world["names"]
    for absent in (names[2], names[3], names[4]):  # another's drawn target, a completed and a cancelled one
        assert absent not in html, absent

    # cases handled, the overdue decision first; someone else's case not at all
    assert _rows(html, "my-cases", "case") == [world["overdue_case"].id, world["due_case"].id]
    overdue = _row(html, "case", world["overdue_case"].id)
    assert "作出处罚决定期限" in overdue and "逾期" in overdue
    assert "逾期" not in _row(html, "case", world["due_case"].id)
    assert names[7] not in html and 'href="/console/cases"' in html
    assert re.search(r'id="total-overdue">1<', html)

    # evidence waiting for its file (mine only), and the flagged item with its flag
    assert _rows(html, "my-awaiting", "item") == [world["waiting"].id, world["flagged"].id]
    assert "未开始上传" in _row(html, "item", world["waiting"].id)
    assert _rows(html, "my-flagged", "item") == [world["flagged"].id]
    assert "signature_invalid" in _rows_html(html, "my-flagged")
    assert world["partners"].id not in html

    # the open conflict on our inspection, both values kept, mine marked
    conflict = _rows_html(html, "my-conflicts")
    assert "<div>废水经暗管直排 <span class=\"tag\">我的修改</span></div>" in conflict
    assert "<div>废水未经处理外排 <span class=\"tag\">当前记录</span></div>" in conflict
    assert "现场检查情况" in conflict and names[0] in conflict
    assert re.search(r'id="total-conflicts">1<', html)

    # my devices (the tablet and the phone), not my partner's
    assert set(_rows(html, "my-devices", "device")) == {world["device"].id, world["phone"].id}
    assert world["partner_device"].id not in html


def test_another_inspector_does_not_see_the_drawn_target_and_sees_their_own(client, world):
    sign_in(client, "other", factories.PASSWORD)
    html = client.get("/console/my-work", headers=HTML).get_data(as_text=True)
    assert _rows(html, "my-inspections", "inspection") == [world["others"].id]
    assert _rows(html, "my-cases", "case") == [world["others_case"].id]
    names = world["names"]
    assert names[0] not in html and names[1] not in html
    assert _rows(html, "my-awaiting", "item") == [] and _rows(html, "my-conflicts", "conflict") == []


def test_an_auxiliary_sees_the_inspections_they_assist_in_english(client, world):
    assert sign_in(client, "helper", factories.PASSWORD).headers["Location"] == "/console/my-work"
    client.set_cookie("lang", "en")
    html = client.get("/console/my-work", headers=HTML).get_data(as_text=True)
    assert "<title>My work · Qinling Field</title>" in html and "Inspections to do" in html
    assert _rows(html, "my-inspections", "inspection") == [world["soon"].id]
    assert world["names"][1] not in html  # the drawn target: the auxiliary is not on that team
    assert _rows(html, "my-cases", "case") == []


def test_lists_are_short_and_page(client, db_session, world):
    head = factories.UserFactory(role=Role.SUPERVISOR, unit=world["me"].unit)
    for n in range(11):
        _inspection(head, factories.TargetFactory(), world["me"], world["partner"], start=10 + n, end=20 + n)
    db_session.commit()
    sign_in(client, "me", factories.PASSWORD)
    first = client.get("/console/my-work", headers=HTML).get_data(as_text=True)
    assert len(_rows(first, "my-inspections", "inspection")) == 10 and re.search(r'id="total-inspections">13<', first)
    assert 'href="/console/my-work?inspections_page=2"' in first
    second = client.get("/console/my-work?inspections_page=2", headers=HTML).get_data(as_text=True)
    assert len(_rows(second, "my-inspections", "inspection")) == 3


@pytest.mark.parametrize("username", ["head", "reviewer"])
def test_other_roles_are_refused(client, db_session, username):
    role = {"head": Role.SUPERVISOR, "reviewer": Role.LEGAL_REVIEWER}[username]
    factories.UserFactory(role=role, username=username)
    db_session.commit()
    sign_in(client, username, factories.PASSWORD)
    response = client.get("/console/my-work", headers=HTML)
    assert response.status_code == 403 and "may not call" in response.get_data(as_text=True)
