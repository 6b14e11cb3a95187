"""The transfer clocks of 衔接办法 (2017) 第19、24、34条: platform entry (7 natural days after each
listed decision, by the office that decided), supplementary investigation (one calendar month) and
written consultation (7 natural days): started by their steps, owed by one side, listed on the
transfer and the dashboards, overdue when late, met by the step that answers them."""
import datetime as dt

import pytest
import sqlalchemy as sa

from server.core.calendar import Calendar
from server.modules.deadlines import clock as deadline_clock
from server.modules.deadlines import operations as deadlines
from server.modules.deadlines.models import Deadline
from server.modules.transfers import operations as ops
from server.modules.transfers.workflow import GuardFailed, WrongSide
from tests.cases.conftest import D
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests.transfers.conftest import principal
from tests.transfers.test_workflow import H, handed_over

CAL = Calendar()
UTC = dt.timezone.utc


def at_10(day: dt.date) -> dt.datetime:
    """10:00 in Shangluo on ``day``."""
    return dt.datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)


def clocks(db_session, t, code):
    return db_session.scalars(sa.select(Deadline).where(Deadline.case_id == t.case_id, Deadline.type_code == code)
                              .order_by(Deadline.id)).all()


def filed(db_session, scene, *, notified_on: dt.date = D(2026, 8, 24)):
    """A criminal transfer the police opened a case on, the items handed over."""
    t = handed_over(db_session, scene)
    scene.step(db_session, t, "sign_receipt", scene.police, at=H(21), method="typed", typed_confirmation="已签收 李四")
    scene.step(db_session, t, "decide", scene.police, at=H(48), decision="filed")
    scene.step(db_session, t, "notify_agency", scene.police, at=at_10(notified_on))
    scene.step(db_session, t, "hand_over_items", scene.w.a, at=at_10(notified_on) + dt.timedelta(hours=3),
               items=["危险废物桶 30 只"])
    return t


def test_the_three_clocks_are_data_with_their_sources():
    types = deadline_clock.types()
    assert types["transfer_platform_entry"].calendar is deadline_clock.CalendarKind.NATURAL_DAY
    assert types["transfer_platform_entry"].amount == 7 and "第34条" in types["transfer_platform_entry"].source
    assert types["transfer_consultation_reply"].amount == 7 and "第24条" in types["transfer_consultation_reply"].source
    month = types["transfer_supplementary_investigation"]
    assert (month.calendar, month.amount, month.holiday_rollover) == (deadline_clock.CalendarKind.MONTH, 1, True)
    assert "第19条" in month.source and "民法典 第202条" in month.source


def test_platform_entry_is_owed_by_the_deciding_office_in_natural_days(db_session, scene):
    """衔接办法 第34条 + 第38条: 7 natural days from the decision (not counted), the last day rolled over
    a holiday; the head's approval (案件移送) is the bureau's to enter."""
    w = scene.w
    t = scene.create(db_session)
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    event = scene.step(db_session, t, "approve", w.head, at=at_10(D(2026, 9, 30)))  # National Day eve
    (bureau,) = clocks(db_session, t, "transfer_platform_entry")
    assert bureau.unit_id == t.bureau_unit_id and ops.owner(bureau, t) == "bureau"
    assert bureau.due_on == CAL.add_natural_days(D(2026, 9, 30), 7)  # 7 Oct is a holiday: rolled over
    assert bureau.due_on > D(2026, 10, 7) and CAL.is_working_day(bureau.due_on)
    assert bureau.due_on < CAL.add_working_days(D(2026, 9, 30), 7)  # natural days, not working days
    assert event.payload["platform_entry_due_on"] == bureau.due_on.isoformat()


def test_police_decisions_listed_in_article_34_start_the_police_clock(db_session, scene):
    t = filed(db_session, scene)
    owners = sorted(ops.owner(c, t) for c in clocks(db_session, t, "transfer_platform_entry"))
    assert owners == ["bureau", "police"]  # the approval and the decision to open the case
    (police,) = [c for c in clocks(db_session, t, "transfer_platform_entry") if c.unit_id == t.police_unit_id]
    assert police.started_on == H(48).date() and police.due_on == CAL.add_natural_days(H(48).date(), 7)


def test_forwarding_to_another_police_office_is_not_a_decision_to_enter(db_session, scene):
    t = handed_over(db_session, scene)
    scene.step(db_session, t, "sign_receipt", scene.police, at=H(21), method="typed", typed_confirmation="已签收 李四")
    scene.step(db_session, t, "decide", scene.police, at=H(30), decision="forwarded",
               reason="属于公安机关管辖但不属于本机关管辖，已移送有管辖权的公安机关")
    assert [ops.owner(c, t) for c in clocks(db_session, t, "transfer_platform_entry")] == ["bureau"]


def test_bureau_not_on_the_platform_owes_no_entry_for_its_approval(app, db_session, scene, monkeypatch):
    monkeypatch.setitem(app.config, "TRANSFER_PLATFORM_SIDES", frozenset({"police"}))
    t = handed_over(db_session, scene)
    assert clocks(db_session, t, "transfer_platform_entry") == []


def test_overdue_entries_show_on_both_sides_and_the_entry_meets_only_its_office(client, db_session, scene):
    t = filed(db_session, scene)
    db_session.commit()
    decided = H(48).date()
    later = at_10(decided + dt.timedelta(days=12))
    police_board = ops.dashboard(db_session, principal(scene.police), later)
    overdue = [d for d in police_board["overdue"] if d["type"] == "transfer_platform_entry"]
    assert sorted(d["owner"] for d in overdue) == ["bureau", "police"] and all(d["transfer_id"] == t.id for d in overdue)
    listed = client.get(f"/api/v1/transfers/{t.id}/deadlines", headers=staff_headers(scene.prosecutor)).json
    assert {(d["type"], d["owner"]) for d in listed} >= {("transfer_platform_entry", "bureau"),
                                                        ("transfer_platform_entry", "police")}
    # the bureau's unit dashboard and the daily scan see its own entry clock as overdue
    unit_board = deadlines.dashboard(db_session, unit_id=t.bureau_unit_id, today=later.date())
    assert any(i["type"] == "transfer_platform_entry" for p in unit_board["by_person"].values() for i in p["overdue"])
    scan = deadlines.scan(db_session, later.date())
    assert scan["overdue_per_unit"][t.police_unit_id] >= 1 and scan["overdue_per_unit"][t.bureau_unit_id] >= 1
    entered = client.post(f"/api/v1/transfers/{t.id}/steps/record_platform_entry", headers=staff_headers(scene.police),
                          json={"reference": "SX-LFXJ-2026-0815", "on": later.date().isoformat()})
    assert entered.status_code == 200, entered.json
    by_unit = {c.unit_id: c for c in clocks(db_session, t, "transfer_platform_entry")}
    assert by_unit[t.police_unit_id].status.value == "met" and by_unit[t.police_unit_id].late is True
    assert by_unit[t.bureau_unit_id].status.value == "open"
    again = client.post(f"/api/v1/transfers/{t.id}/steps/record_platform_entry", headers=staff_headers(scene.police),
                        json={})
    assert assert_contract(again, 409, "transfer.guard_failed")["context"]["guard"] == "nothing_to_enter"
    (entry,) = [e for e in audit_entries("web:transfer:record_platform_entry", transfer=t.id)]
    assert entry["payload"]["side"] == "police" and entry["payload"]["platform_reference"] == "SX-LFXJ-2026-0815"
    assert entry["payload"]["entered"][0]["late"] is True


def test_supplementary_investigation_runs_one_calendar_month(db_session, scene):
    """衔接办法 第19条: returned with an outline, the police finish within one month; a month ends on
    the same day of the next month (民法典 第202条), rolled over a holiday (第38条)."""
    t = filed(db_session, scene)
    with pytest.raises(WrongSide):
        scene.step(db_session, t, "return_for_supplementary_investigation", scene.police, at=at_10(D(2026, 9, 1)),
                   outline="补充危险废物去向的证据")
    with pytest.raises(GuardFailed) as short:
        scene.step(db_session, t, "return_for_supplementary_investigation", scene.prosecutor,
                   at=at_10(D(2026, 9, 1)), outline=" ")
    assert short.value.context["guard"] == "outline_required"
    scene.step(db_session, t, "return_for_supplementary_investigation", scene.prosecutor, at=at_10(D(2026, 9, 1)),
               outline="补充侦查方向：危险废物最终去向及非法获利数额；要求：调取运输台账与银行流水")
    (investigation,) = clocks(db_session, t, "transfer_supplementary_investigation")
    assert investigation.unit_id == t.police_unit_id and ops.owner(investigation, t) == "police"
    assert deadline_clock.add_months(D(2026, 9, 1), 1) == D(2026, 10, 1)  # National Day: rolled over
    assert investigation.due_on == CAL.next_working_day(D(2026, 10, 1)) and investigation.due_on > D(2026, 10, 7)
    with pytest.raises(GuardFailed) as twice:
        scene.step(db_session, t, "return_for_supplementary_investigation", scene.prosecutor,
                   at=at_10(D(2026, 9, 2)), outline="再次退回补充侦查，要求补充鉴定意见")
    assert twice.value.context["guard"] == "investigation_open"
    board = ops.dashboard(db_session, principal(scene.prosecutor), at_10(D(2026, 10, 20)))
    assert [d["owner"] for d in board["overdue"] if d["type"] == "transfer_supplementary_investigation"] == ["police"]
    scene.step(db_session, t, "complete_supplementary_investigation", scene.police, at=at_10(D(2026, 10, 9)))
    assert investigation.status.value == "met" and investigation.late is True


def test_written_consultations_are_answered_within_7_days_by_the_consulted_office(client, db_session, scene):
    """衔接办法 第24条: the bureau and the police or procuratorate consult each other in writing; the
    consulted office owes the written answer within 7 natural days."""
    t = handed_over(db_session, scene)
    db_session.commit()
    asked = client.post(f"/api/v1/transfers/{t.id}/steps/consult", headers=staff_headers(scene.w.a), json={
        "to": "police", "question": "危险废物跨省转移后再处置的，立案追诉标准如何计算数量？",
        "on": "2026-09-28"})
    assert asked.status_code == 200, asked.json
    (question,) = clocks(db_session, t, "transfer_consultation_reply")
    assert question.unit_id == t.police_unit_id and ops.owner(question, t) == "police"
    assert question.due_on == CAL.add_natural_days(D(2026, 9, 28), 7) and question.due_on > D(2026, 10, 5)
    police_board = client.get("/api/v1/transfers/deadlines", headers=staff_headers(scene.police)).json
    assert any(d["type"] == "transfer_consultation_reply" and d["owner"] == "police"
               for d in police_board["due"] + police_board["overdue"])
    # the police may not consult the procuratorate under this rule, nor may the asker answer itself
    with pytest.raises(GuardFailed) as pair:
        scene.step(db_session, t, "consult", scene.police, at=at_10(D(2026, 9, 29)), to="prosecutor",
                   question="是否需要提前介入引导取证？请予答复")
    assert pair.value.context["guard"] == "consultation_parties"
    not_yours = client.post(f"/api/v1/transfers/{t.id}/steps/answer_consultation", headers=staff_headers(scene.w.a),
                            json={"consultation": question.id, "answer": "按照实际非法处置的数量计算，包括转移途中遗撒的部分"})
    assert_contract(not_yours, 403, "transfer.wrong_side")
    answered = client.post(f"/api/v1/transfers/{t.id}/steps/answer_consultation", headers=staff_headers(scene.police),
                           json={"consultation": question.id, "on": "2026-10-09",
                                 "answer": "按照实际非法处置的数量计算，包括转移途中遗撒的部分"})
    assert answered.status_code == 200, answered.json
    db_session.refresh(question)
    assert question.status.value == "met" and question.late is True  # due on the first working day after the holiday
    closed = client.post(f"/api/v1/transfers/{t.id}/steps/answer_consultation", headers=staff_headers(scene.police),
                         json={"consultation": question.id, "answer": "再次答复，内容同上，仅作补充说明"})
    assert_contract(closed, 409, "deadline.closed")
    # the other way: the procuratorate asks the bureau a technical question, answered in time
    scene.step(db_session, t, "consult", scene.prosecutor, at=at_10(D(2026, 11, 2)), to="bureau",
               question="采样点位与排放口的对应关系如何认定？")
    back = [c for c in clocks(db_session, t, "transfer_consultation_reply") if c.status.value == "open"]
    assert [ops.owner(c, t) for c in back] == ["bureau"]
    scene.step(db_session, t, "answer_consultation", scene.w.b, at=at_10(D(2026, 11, 5)), consultation=back[0].id,
               answer="以现场勘验图标注的采样点位为准，见第3号证据")
    assert back[0].status.value == "met" and back[0].late is False
    db_session.commit()
    tags = [e["tag"] for e in audit_entries(transfer=t.id)]
    assert tags.count("web:transfer:consult") == 2 and tags.count("web:transfer:answer_consultation") == 2


def test_an_hours_clock_runs_from_the_steps_legal_time_not_its_entry_xianjie_article_6(db_session, scene):
    """衔接办法 (2017) 第6条: materials go to the police within 24 hours of the approval. An approval
    dated 8 October but entered two months later could not start its clock at the entry: a step on
    another day that starts or meets an hours clock must say when it happened, and a hand-over
    then recorded two months after that approval is shown late."""
    w = scene.w
    t = scene.create(db_session, on=D(2026, 10, 8))
    scene.step(db_session, t, "form_team", w.a, at=at_10(D(2026, 10, 8)), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=at_10(D(2026, 10, 8)))
    with pytest.raises(ops.TimeNeeded) as exc:  # only a past date: the 24-hour clock cannot start from it
        ops.step(db_session, t, "approve", by=w.head, principal=principal(w.head), on=D(2026, 10, 8))
    assert exc.value.context["clocks"] == ["transfer_handover"] and t.state.value == "report_submitted"
    scene.step(db_session, t, "approve", w.head, at=at_10(D(2026, 10, 8)))
    (handover,) = clocks(db_session, t, "transfer_handover")
    assert handover.due_at == at_10(D(2026, 10, 9))
    scene.add_required(db_session, t, at=at_10(D(2026, 10, 8)))
    scene.step(db_session, t, "hand_over", w.a, at=at_10(D(2026, 12, 8)))
    assert handover.late is True
