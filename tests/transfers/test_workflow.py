"""The transfer state machine: guards naming their rules, sides, clocks in hours / days / working days."""
import base64
import datetime as dt

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.core.calendar import Calendar
from server.modules.cases import operations as cases
from server.modules.deadlines import operations as deadlines
from server.modules.reviews import operations as reviews
from server.modules.reviews.models import ReviewOutcome
from server.modules.transfers import operations as ops
from server.modules.transfers.models import TransferEvent, TransferKind, TransferState as S
from server.modules.transfers.workflow import STEPS, GuardFailed, InvalidTransition, WrongSide
from tests.cases.conftest import D
from tests.helpers import audit_entries
from tests.transfers.conftest import principal

T0 = dt.datetime(2026, 8, 20, 2, 0, tzinfo=dt.timezone.utc)  # 10:00 in Shangluo


def H(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def guard(exc: pytest.ExceptionInfo) -> tuple[str, str]:
    return exc.value.context["guard"], exc.value.context["rule"]


def clock(db_session, transfer, code):
    return deadlines.open_deadline(db_session, transfer.case_id, code) or db_session.scalars(
        sa.select(deadlines.Deadline).where(deadlines.Deadline.case_id == transfer.case_id,
                                            deadlines.Deadline.type_code == code)).first()


def handed_over(db_session, scene):
    w = scene.w
    t = scene.create(db_session)
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    scene.step(db_session, t, "approve", w.head, at=H(5))
    scene.add_required(db_session, t, at=H(6))
    scene.step(db_session, t, "hand_over", w.a, at=H(20))
    return t


def test_every_step_names_its_legal_source_and_deadline_types_exist():
    from server.modules.deadlines import clock as deadline_clock

    for step in STEPS.values():
        assert step.rule and ("第" in step.rule), step.action
        for code in step.starts + step.meets:
            assert deadline_clock.deadline_type(code).source
    assert deadline_clock.deadline_type("transfer_handover").calendar.value == "HOURS"
    assert deadline_clock.deadline_type("detention_transfer").calendar.value == "WORKING_DAY"


def test_criminal_transfer_end_to_end_with_clocks_receipt_supplement_and_reconsideration(db_session, scene):
    w = scene.w
    t = scene.create(db_session)
    assert scene.case.transfer_started_at is not None  # the cases module's hook ran
    with pytest.raises(GuardFailed) as exc:
        scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id])
    assert guard(exc) == ("team_size", "国务院令第310号 第5条")
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    assert [m["user_id"] for m in t.team] == [w.a.id, w.b.id] and all(m["certificate_number"] for m in t.team)
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    decision = clock(db_session, t, "transfer_decision")
    assert decision.due_on == Calendar().add_natural_days(D(2026, 8, 20), 3)  # natural days, first day not counted
    with pytest.raises(WrongSide):
        scene.step(db_session, t, "approve", w.a, at=H(5))  # the head decides
    scene.step(db_session, t, "approve", w.head, at=H(5))
    assert decision.status.value == "met" and decision.late is False
    handover = clock(db_session, t, "transfer_handover")
    assert handover.due_at == H(5 + 24)  # "24 hours" is literal (衔接办法 第38条)
    assert {m.code for m in ops.materials(db_session, t)} == {"transfer_letter", "investigation_report"}
    with pytest.raises(ops.MissingDocuments) as missing:
        scene.step(db_session, t, "hand_over", w.a, at=H(6))
    assert {m["code"] for m in missing.value.context["missing"]} == {"inspection_records", "items_list"}
    scene.add_required(db_session, t, at=H(6))
    scene.step(db_session, t, "hand_over", w.a, at=H(28))
    assert t.state is S.HANDED_OVER and handover.late is False
    # the police sign the receipt with a registered key over the canonical summary
    key = Ed25519PrivateKey.generate()
    registered = ops.register_key(db_session, scene.police, label="签收U盾", public_key=base64.b64encode(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode())
    with pytest.raises(WrongSide):
        scene.step(db_session, t, "sign_receipt", scene.other_police, at=H(29), method="typed",
                   typed_confirmation="已签收")
    with pytest.raises(ops.BadAcknowledgement):
        scene.step(db_session, t, "sign_receipt", scene.police, at=H(29), method="signature", key_id=registered.id,
                   signature=base64.b64encode(key.sign(b"something else")).decode())
    signature = key.sign(ops.summary_bytes(db_session, t))
    scene.step(db_session, t, "sign_receipt", scene.police, at=H(29), method="signature", key_id=registered.id,
               signature=base64.b64encode(signature).decode())
    assert t.state is S.RECEIPT_SIGNED and ops.acknowledgements(db_session, t)[0].method.value == "signature"
    assert clock(db_session, t, "transfer_filing_decision").due_on == Calendar().add_natural_days(D(2026, 8, 21), 3)
    # supplements: requested within 24 h, supplied within 3 days
    scene.step(db_session, t, "request_supplement", scene.police, at=H(40), items=["采样记录单"])
    assert clock(db_session, t, "transfer_supplement").unit_id == scene.case.unit_id  # owed by the bureau
    scene.step(db_session, t, "add_material", w.a, at=H(45), code="other_materials", title="采样记录单",
               filename="sampling.pdf", content_base64=base64.b64encode(b"%PDF-1.4 sampling").decode())
    scene.step(db_session, t, "supplement", w.a, at=H(46))
    assert t.state is S.RECEIPT_SIGNED
    assert any(m.supplement and m.code == "materials_list" for m in ops.materials(db_session, t))
    # incomplete materials are no ground to refuse (衔接办法 第8条)
    with pytest.raises(GuardFailed) as exc:
        scene.step(db_session, t, "decide", scene.police, at=H(50), decision="not_filed",
                   reason="材料不全，无法判断是否构成犯罪", reason_code="materials_incomplete")
    assert guard(exc)[1] == "衔接办法 (2017) 第8条"
    scene.step(db_session, t, "decide", scene.police, at=H(50), decision="not_filed",
               reason="经审查，现有证据不足以证明危险废物数量达到三吨")
    scene.step(db_session, t, "notify_agency", scene.police, at=H(52))
    scene.step(db_session, t, "request_reconsideration", w.a, at=H(53), reason="补充称重记录证明数量为4.5吨，提请复议")
    scene.step(db_session, t, "decide_reconsideration", scene.police, at=H(60), outcome="reversed")
    with pytest.raises(GuardFailed) as exc:  # no 以罚代刑 once the police open a case
        scene.step(db_session, t, "resume_admin_penalty", w.head, at=H(61), reason="恢复行政处罚程序，依法作出处罚决定")
    assert guard(exc)[0] == "criminal_case_open"
    scene.step(db_session, t, "hand_over_items", w.a, at=H(62), items=["危险废物桶 30 只"])
    scene.step(db_session, t, "close", w.head, at=H(63))
    events = db_session.scalars(sa.select(TransferEvent).where(TransferEvent.transfer_id == t.id)
                                .order_by(TransferEvent.seq)).all()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.rule for e in events)
    db_session.commit()
    tags = [e["tag"] for e in audit_entries(transfer=t.id)]
    assert "web:transfer:hand_over" in tags and "web:transfer:sign_receipt" in tags and tags.count("web:transfer:close") == 1


def test_supplement_request_after_24_hours_is_refused(db_session, scene):
    t = handed_over(db_session, scene)
    scene.step(db_session, t, "sign_receipt", scene.police, at=H(21), method="typed", typed_confirmation="已签收 李四")
    with pytest.raises(GuardFailed) as exc:
        scene.step(db_session, t, "request_supplement", scene.police, at=H(21 + 25), items=["采样记录单"])
    assert guard(exc) == ("supplement_window", STEPS["request_supplement"].rule)


def test_state_and_side_checks(db_session, scene):
    t = scene.create(db_session)
    with pytest.raises(InvalidTransition) as exc:
        scene.step(db_session, t, "hand_over", scene.w.a, at=H(1))
    assert "approved" in exc.value.context["allowed_from"]
    with pytest.raises(ops.AlreadyTransferring):
        scene.create(db_session)
    assert ops.sides(db_session, principal(scene.other_police), t) == set()
    # still suspected: the receiving offices are not yet parties (issue 14 item 3, tests/transfers/test_visibility.py)
    assert ops.sides(db_session, principal(scene.police), t) == set()
    assert ops.sides(db_session, principal(scene.prosecutor), t) == set()
    t.handed_over_at = H(1)
    assert ops.sides(db_session, principal(scene.police), t) == {"police"}
    assert ops.sides(db_session, principal(scene.prosecutor), t) == {"prosecutor"}
    with pytest.raises(ops.BadReceiver):
        ops.create(db_session, scene.case, by=scene.w.head, kind=TransferKind.CRIMINAL,
                   police_unit_id=scene.procuratorate_unit.id, procuratorate_unit_id=scene.procuratorate_unit.id,
                   suspected_offence="x", legal_basis="x", reason="x" * 20, on=D(2026, 8, 20))


def test_refusal_is_legally_reviewed_before_the_penalty_procedure_resumes(db_session, scene):
    w = scene.w
    t = scene.create(db_session)
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    with pytest.raises(GuardFailed) as exc:  # a reason is required ...
        scene.step(db_session, t, "refuse", w.head, at=H(2), reason=" ")
    assert guard(exc)[0] == "reason_required"
    # ... of no set length: 证据不足 is a complete reason (国务院令第310号 第5条 asks for reasons, not a length)
    scene.step(db_session, t, "refuse", w.head, at=H(2), reason="证据不足")
    assert t.state is S.REFUSED and scene.case.transfer_refusal_reason
    with pytest.raises(GuardFailed) as exc:
        scene.step(db_session, t, "resume_admin_penalty", w.head, at=H(3), reason="不移送理由已记录，恢复处罚程序")
    assert guard(exc)[0] == "refusal_reviewed"
    cases.serve_notice(db_session, scene.case, by=w.a, on=D(2026, 8, 21), fine=100_000)
    cases.waive_statement(db_session, scene.case, by=w.a, on=D(2026, 8, 22), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, scene.case, by=w.a, on=D(2026, 8, 24))
    assert review.subject == "transfer_refusal"
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意不移送",
                   today=D(2026, 8, 25))
    scene.step(db_session, t, "resume_admin_penalty", w.head, at=H(150), reason="不移送经法制审核通过，恢复处罚程序")
    assert t.state is S.ADMIN_PENALTY_RESUMED


def test_procuratorate_recommendation_reopens_a_refused_transfer(db_session, scene):
    w = scene.w
    t = scene.create(db_session)
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    scene.step(db_session, t, "refuse", w.head, at=H(2), reason="复检称重为2.1吨，未达三吨标准，鉴定报告附后")
    with pytest.raises(WrongSide):
        scene.step(db_session, t, "procuratorate_recommends", scene.police, at=H(30), reason="建议移送公安机关立案侦查")
    scene.step(db_session, t, "procuratorate_recommends", scene.prosecutor, at=H(30), reason="建议移送公安机关立案侦查")
    assert t.state is S.APPROVED
    assert clock(db_session, t, "transfer_on_procuratorate_opinion").due_on is not None


def test_detention_transfer_counts_working_days(db_session, scene):
    w = scene.w
    t = scene.create(db_session, kind=TransferKind.DETENTION)
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    national_day_eve = dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.timezone.utc)
    scene.step(db_session, t, "approve", w.head, at=national_day_eve)
    due = clock(db_session, t, "detention_transfer").due_on
    assert due == Calendar().add_working_days(D(2026, 9, 30), 3) and due > D(2026, 10, 3)
    with pytest.raises(ops.MissingDocuments) as missing:  # 2014 rules: the approval form is required
        scene.step(db_session, t, "hand_over", w.a, at=national_day_eve)
    assert "approval_form" in {m["code"] for m in missing.value.context["missing"]}
    with pytest.raises(Exception) as exc:
        scene.step(db_session, t, "request_reconsideration", w.a, at=national_day_eve, reason="x" * 12)
    assert exc.value.status == 404  # not a step of a detention transfer


def test_dashboard_shows_police_overdue_and_paused_clocks(db_session, scene):
    t = handed_over(db_session, scene)
    scene.step(db_session, t, "sign_receipt", scene.police, at=H(21), method="typed", typed_confirmation="已签收 李四")
    later = H(24 * 10)
    board = ops.dashboard(db_session, principal(scene.police), later)
    overdue = {d["type"]: d for d in board["overdue"]}
    assert overdue["transfer_filing_decision"]["owner"] == "police"
    assert overdue["transfer_supplement_request"]["overdue"] is True
    assert ops.dashboard(db_session, principal(scene.other_police), later)["totals"] == {"overdue": 0, "due": 0,
                                                                                       "paused": 0}
    bureau = ops.dashboard(db_session, principal(scene.w.head), later)
    assert {d["type"] for d in bureau["overdue"]} >= {"transfer_filing_decision"}


def test_items_list_and_photo_index_only_where_items_were_seized_xianjie_article_6(db_session, scene):
    """衔接办法 (2017) 第6条第(四)、(五)项: the list of items (and the photo index with it) describes items
    sealed or seized by an administrative compulsory measure; a transfer of a case where nothing was
    seized does not need them (they were required 'always')."""
    w = scene.w
    case = cases.create_lead(db_session, by=w.head, title="暗管排放含铬废水", target_id=w.target.id,
                             violation_code="air_99_2", act_ended_on=D(2026, 7, 20))
    cases.file(db_session, case, by=w.head, on=D(2026, 8, 3), handler_ids=[w.a.id, w.b.id])
    cases.start_investigation(db_session, case, by=w.a, on=D(2026, 8, 3))
    cases.record_act(db_session, case, by=w.a, kind="sampling", act_date=D(2026, 8, 4), inspector_ids=[w.a.id, w.b.id],
                     summary="采样")
    cases.crime_check(db_session, case, by=w.a, facts={"exceedance_multiples": {"Cr": 5}})
    plain = ops.create(db_session, case, by=w.a, kind=TransferKind.CRIMINAL, police_unit_id=scene.police_unit.id,
                       procuratorate_unit_id=scene.procuratorate_unit.id, suspected_offence="污染环境罪",
                       legal_basis="刑法 第338条", reason="铬超标五倍", on=D(2026, 8, 20))
    generated = {"transfer_letter", "investigation_report", "materials_list"}  # made at the head's approval
    assert {m["code"] for m in ops.missing_documents(db_session, plain)} == generated | {"inspection_records"}
    cases.record_act(db_session, case, by=w.a, kind="preservation", act_date=D(2026, 8, 6),
                     inspector_ids=[w.a.id, w.b.id], summary="先行登记保存暗管及阀门", approved_by_id=w.head.id)
    assert {m["code"] for m in ops.missing_documents(db_session, plain)} == generated | {
        "inspection_records", "items_list", "photo_index"}
