"""The case from filing to archive, and every gate refusing an illegal step with its rule."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from server.modules.audit.models import AuditEntry
from server.modules.cases import operations as cases
from server.modules.cases.models import CaseCorrection, CaseEvent, CaseState
from server.modules.cases.workflow import Archived, GuardFailed, InvalidTransition
from server.modules.deadlines.models import Deadline
from server.modules.discretion import calculator as calc
from server.modules.reviews import operations as reviews
from server.modules.reviews.models import LegalReviewDecision, ReviewOutcome
from tests.cases.conftest import KILN, KILN_W, D, investigated


def guard(exc_info):
    return exc_info.value.context["guard"], exc_info.value.context["rule"]


def clock(db_session, case, code):
    return db_session.scalars(sa.select(Deadline).where(Deadline.case_id == case.id, Deadline.type_code == code)
                              .order_by(Deadline.id.desc())).first()


def test_full_lifecycle_with_hearing_review_and_late_payment(db_session, world):
    w = world
    case = investigated(db_session, w)
    assert case.number and case.state is CaseState.INVESTIGATING
    # 90 natural days from 3 Aug end on Sun 1 Nov: rolled over to Mon 2 Nov
    assert clock(db_session, case, "decision").due_on == D(2026, 11, 2)

    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    assert case.notified_fine == 209_000 and case.hearing_rights
    assert clock(db_session, case, "statement").due_on == D(2026, 8, 14)
    assert clock(db_session, case, "hearing_request").due_on == D(2026, 8, 18)

    with pytest.raises(GuardFailed) as exc:  # no decision while the party may still speak
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 12), fine=209_000)
    assert guard(exc) == ("statement_period", "行政处罚法 第62条; 第45条")

    cases.record_statement(db_session, case, by=w.a, on=D(2026, 8, 13), summary="当事人称已整改")
    cases.request_hearing(db_session, case, by=w.a, on=D(2026, 8, 17))
    assert clock(db_session, case, "decision").due_on is None  # paused for the hearing

    with pytest.raises(GuardFailed) as exc:
        cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2026, 8, 18), hearing_date=D(2026, 8, 21),
                               presider_id=w.reviewer.id)
    assert guard(exc)[0] == "hearing_notice_7_days"
    with pytest.raises(GuardFailed) as exc:
        cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2026, 8, 18), hearing_date=D(2026, 8, 28),
                               presider_id=w.a.id)
    assert guard(exc) == ("presider_not_investigator", "行政处罚法 第64条第(四)项")
    # the first reviewer presides: later they may not review this case
    cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2026, 8, 18), hearing_date=D(2026, 8, 28),
                           presider_id=w.reviewer.id)
    cases.hold_hearing(db_session, case, by=w.a, on=D(2026, 8, 28), record_summary="听证笔录")
    assert clock(db_session, case, "decision").due_on == D(2026, 11, 12)  # 18–28 Aug (11 days) not counted

    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 31), fine=209_000)
    assert guard(exc) == ("legal_review_passed", "行政处罚法 第58条")

    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 31))
    assert {h["code"] for h in review.scope_hits} == {"fine_threshold", "hearing_held"}
    assert review.due_on == D(2026, 9, 7)
    with pytest.raises(reviews.OwnCase):
        reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意")
    with pytest.raises(reviews.NotQualified):
        reviews.decide(db_session, review, reviewer=w.unqualified, outcome=ReviewOutcome.PASS, opinion="同意")
    with pytest.raises(reviews.NotQualified):
        reviews.decide(db_session, review, reviewer=w.head, outcome=ReviewOutcome.PASS, opinion="同意")
    with pytest.raises(reviews.ReasonsRequired):
        reviews.decide(db_session, review, reviewer=w.reviewer2, outcome=ReviewOutcome.RETURN, opinion="退回")
    reviews.decide(db_session, review, reviewer=w.reviewer2, outcome=ReviewOutcome.RETURN, opinion="补充烟气量证据",
                   reason_codes=["facts_evidence"], today=D(2026, 9, 1))
    assert case.state is CaseState.REVIEW_RETURNED
    with pytest.raises(InvalidTransition):
        cases.decide(db_session, case, by=w.head, on=D(2026, 9, 2), fine=209_000)

    second = reviews.submit(db_session, case, by=w.a, on=D(2026, 9, 2))
    assert second.round_no == 2
    passed = reviews.decide(db_session, second, reviewer=w.reviewer2, outcome=ReviewOutcome.PASS, opinion="同意",
                            today=D(2026, 9, 3))
    assert passed.supersedes_id is not None
    assert db_session.scalar(sa.select(sa.func.count(LegalReviewDecision.id))) == 2

    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 9, 4), fine=250_000)
    assert guard(exc) == ("no_heavier_after_defence", "行政处罚法 第45条第2款")
    cases.decide(db_session, case, by=w.head, on=D(2026, 9, 4), fine=209_000)
    assert clock(db_session, case, "service").due_on == D(2026, 9, 15)
    assert clock(db_session, case, "publication_penalty").due_on == D(2026, 9, 15)

    with pytest.raises(GuardFailed) as exc:
        cases.serve_decision(db_session, case, by=w.a, on=D(2026, 9, 7), method="electronic")
    assert guard(exc) == ("electronic_service_consent", "行政处罚法 第61条第2款")
    cases.serve_decision(db_session, case, by=w.a, on=D(2026, 9, 7), method="electronic", consent_signed=True)
    assert clock(db_session, case, "payment").due_on == D(2026, 9, 22)

    with pytest.raises(GuardFailed) as exc:  # three days late: 3 % × 3 of the fine is owed too
        cases.pay(db_session, case, by=w.a, on=D(2026, 9, 25), amount=209_000)
    assert exc.value.context["late_fee"] == 18_810
    cases.pay(db_session, case, by=w.a, on=D(2026, 9, 25), amount=227_810)

    with pytest.raises(GuardFailed) as exc:
        cases.close(db_session, case, by=w.head, on=D(2026, 9, 28))
    assert guard(exc)[0] == "publication_recorded"
    cases.publish(db_session, case, by=w.a, on=D(2026, 9, 28))
    assert clock(db_session, case, "publication_penalty").late is True  # visible, not hidden
    cases.close(db_session, case, by=w.head, on=D(2026, 9, 28))
    cases.archive(db_session, case, by=w.head)

    with pytest.raises(Archived):
        cases.record_statement(db_session, case, by=w.a, on=D(2026, 10, 9), summary="x")
    correction = cases.correct(db_session, case, by=w.head, field="party_address", value="商州区新址", reason="笔误")
    assert correction.case_id == case.id and case.party_address != "商州区新址"
    assert db_session.scalar(sa.select(sa.func.count(CaseCorrection.id))) == 1
    actions = db_session.scalars(sa.select(CaseEvent.action).where(CaseEvent.case_id == case.id)
                                 .order_by(CaseEvent.id)).all()
    assert actions[0] == "file" and actions[-1] == "archive" and actions.count("submit_review") == 2


def test_expired_certificate_and_a_lone_inspector_are_refused(db_session, world):
    w = world
    case = investigated(db_session, w)
    with pytest.raises(GuardFailed) as exc:
        cases.record_act(db_session, case, by=w.a, kind="inquiry", act_date=D(2026, 8, 20),
                         inspector_ids=[w.a.id, w.expired.id], summary="询问")
    assert guard(exc) == ("inspector_certified", "行政处罚法 第42、55条")
    assert exc.value.context["cause"] == "certificate.invalid_on_date"
    with pytest.raises(GuardFailed) as exc:
        cases.record_act(db_session, case, by=w.a, kind="inquiry", act_date=D(2026, 8, 20),
                         inspector_ids=[w.a.id], summary="询问")
    assert guard(exc)[0] == "two_inspectors"
    # the same person before the certificate expired is fine
    cases.record_act(db_session, case, by=w.a, kind="inquiry", act_date=D(2026, 6, 20),
                     inspector_ids=[w.a.id, w.expired.id], summary="询问（证件有效期内）")


def test_illegal_transitions_name_their_rule(db_session, world):
    w = world
    case = cases.create_lead(db_session, by=w.head, title="线索", party_name="某公司")
    with pytest.raises(InvalidTransition) as exc:
        cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 3))
    assert exc.value.context["rule"] == "行政处罚法 第44条" and exc.value.context["state"] == "lead"
    cases.file(db_session, case, by=w.head, on=D(2026, 8, 3), handler_ids=[w.a.id, w.b.id])
    cases.start_investigation(db_session, case, by=w.a, on=D(2026, 8, 3))
    with pytest.raises(GuardFailed) as exc:
        cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 4), fine=100_000)
    assert guard(exc)[0] == "investigated"


def test_limitation_period_warns_after_two_years_and_refuses_after_five(db_session, world):
    w = world
    old = cases.create_lead(db_session, by=w.head, title="旧案", party_name="甲", act_ended_on=D(2023, 5, 1),
                            discovered_on=D(2026, 8, 1))
    cases.file(db_session, old, by=w.head, on=D(2026, 8, 3), handler_ids=[w.a.id, w.b.id])
    assert old.limitation_warning
    ancient = cases.create_lead(db_session, by=w.head, title="更旧", party_name="乙", act_ended_on=D(2020, 5, 1),
                                discovered_on=D(2026, 8, 1))
    with pytest.raises(GuardFailed) as exc:
        cases.file(db_session, ancient, by=w.head, on=D(2026, 8, 3), handler_ids=[w.a.id, w.b.id])
    assert guard(exc)[1] == "行政处罚法 第36条"


def test_fine_outside_the_statutory_range_needs_a_reduction_basis(db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=100_000)
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="当事人书面放弃", hearing_too=True)
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=80_000)
    assert guard(exc) == ("statutory_minimum", "大气污染防治法 第99条第(二)项; 行政处罚法 第32条")
    with pytest.raises(GuardFailed) as exc:  # with a basis, collective discussion is then required
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=80_000,
                     reduction_basis="行政处罚法 第32条第1项：主动消除危害后果")
    assert guard(exc)[0] == "collective_discussion"
    cases.collective_discussion(db_session, case, by=w.head, on=D(2026, 8, 13), minutes="同意减轻",
                                participants=["局长", "副局长", "法规科长"])
    cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=80_000,
                 reduction_basis="行政处罚法 第32条第1项：主动消除危害后果")
    assert case.state is CaseState.DECIDED and case.reduction_basis


def test_notified_fine_must_lie_in_the_statutory_range_article_44_and_32(db_session, world):
    """行政处罚法 第44条 with 第32条: a notice below the statutory minimum (100,000 for 大气污染防治法
    第99条第(二)项) without a recorded 减轻 ground is refused, so the case cannot deadlock between a
    lower decision (below the minimum) and a higher one (heavier than notified)."""
    w = world
    case = investigated(db_session, w)
    with pytest.raises(GuardFailed) as exc:
        cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=60_000)
    assert guard(exc) == ("statutory_minimum", "大气污染防治法 第99条第(二)项; 行政处罚法 第32条")
    assert case.notice_served_on is None and case.state is CaseState.INVESTIGATING
    with pytest.raises(GuardFailed) as exc:
        cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=1_000_001)
    assert guard(exc)[0] == "statutory_maximum"
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=60_000,
                       reduction_basis="行政处罚法 第32条第(一)项：主动消除或者减轻违法行为危害后果")
    assert case.notified_fine == 60_000 and case.state is CaseState.NOTIFIED


def test_benchmark_version_must_be_in_force_on_the_decision_date(db_session, world):
    w = world
    case = investigated(db_session, w)
    with pytest.raises(calc.NotInForce):
        cases.propose(db_session, case, by=w.a, on=D(2026, 8, 10), inputs=KILN, version="SL-AIR-2026.1")
    # a calculation made under the June version cannot carry a decision in August
    early = investigated(db_session, w, filed_on=D(2026, 6, 1), inputs=KILN_W)
    assert early.notified_fine is None
    cases.serve_notice(db_session, early, by=w.a, on=D(2026, 6, 10))
    cases.waive_statement(db_session, early, by=w.head, on=D(2026, 6, 11), note="放弃", hearing_too=True)
    early.measures = []
    with pytest.raises(calc.NotInForce) as exc:
        cases.decide(db_session, early, by=w.head, on=D(2026, 8, 3), fine=early.notified_fine)
    assert exc.value.context["in_force"] == "SL-AIR-2026.2"


def test_suspected_crime_blocks_a_decision_until_transfer_or_reviewed_refusal(db_session, world):
    w = world
    case = investigated(db_session, w)
    hits = cases.crime_check(db_session, case, by=w.a, facts={"hazardous_waste_t": 4.5,
                                                              "exceedance_multiples": {"Cd": 3.2, "Zn": 2}})
    assert [h["code"] for h in hits] == ["hazardous_waste_3t", "heavy_metal_3x"]
    assert all(h["source"].startswith("法释〔2023〕7号") for h in hits)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=100_000)
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=100_000)
    assert guard(exc)[0] in ("crime_transfer", "legal_review_passed")
    with pytest.raises(GuardFailed):
        cases.refuse_transfer(db_session, case, by=w.a, reason="短")
    cases.refuse_transfer(db_session, case, by=w.a, reason="经复检危险废物实际为2.1吨，鉴定报告见证据")
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 13))
    assert "transfer_refusal" in {h["code"] for h in review.scope_hits} and review.subject == "transfer_refusal"
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意不移送",
                   today=D(2026, 8, 14))
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 14), fine=100_000)
    assert guard(exc)[0] == "collective_discussion"


def test_transfer_hook_pauses_the_decision_clock(db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.crime_check(db_session, case, by=w.a, facts={"loss_cny": 350_000})
    cases.start_transfer(db_session, case, by=w.a, reason="涉嫌污染环境罪，移送公安", on=D(2026, 8, 20))
    assert case.transfer_started_at is not None
    assert clock(db_session, case, "decision").due_on is None


def test_daily_continuing_fines_worked_example(db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=250_000)
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意",
                   today=D(2026, 8, 13))
    cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=250_000)
    round_ = cases.daily_fine_order(db_session, case, by=w.a, order_served_on=D(2026, 9, 1))
    assert clock(db_session, case, "daily_fine_recheck").due_on == D(2026, 10, 8)  # 1 Oct → after National Day
    cases.daily_fine_recheck(db_session, case, by=w.a, round_no=round_.round_no, recheck_on=D(2026, 9, 21),
                             continuing=True)
    assert (round_.days, round_.amount) == (20, 5_000_000)


def test_every_step_writes_history_and_an_audit_entry(db_session, world):
    investigated(db_session, world)
    db_session.commit()  # sequences the audit entries (a savepoint in tests)
    tags = set(db_session.scalars(sa.select(AuditEntry.tag)))
    assert {"web:case:file", "web:case:record_act", "web:case:propose", "web:discretion:calculated"} <= tags


def test_the_workflow_table_names_a_source_for_every_step():
    steps = cases.steps_view()
    assert all(s["rule"] for s in steps) and {"decide", "archive", "submit_review"} <= {s["action"] for s in steps}


def test_publication_withdrawal_within_three_working_days(db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=100_000)
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意",
                   today=D(2026, 8, 13))
    cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=100_000)
    with pytest.raises(GuardFailed):
        cases.withdrawal_due(db_session, case, by=w.a, on=D(2026, 9, 30), reason="复议撤销")
    cases.publish(db_session, case, by=w.a, on=D(2026, 8, 14))
    cases.withdrawal_due(db_session, case, by=w.a, on=D(2026, 9, 30), reason="行政复议决定撤销原处罚决定")
    assert clock(db_session, case, "withdrawal").due_on == D(2026, 10, 10)  # holidays skipped, Sat 10 Oct worked
    cases.withdraw_publication(db_session, case, by=w.a, on=D(2026, 10, 9), reason="原决定已被撤销")
    assert clock(db_session, case, "withdrawal").late is False


def test_dropping_a_filed_case_starts_the_twenty_working_day_publication_clock(db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.drop(db_session, case, by=w.head, on=D(2026, 8, 20), reason="首违不罚：危害后果轻微并及时改正（第33条）")
    assert clock(db_session, case, "publication_other").due_on == D(2026, 9, 17)
    assert clock(db_session, case, "decision").status.value == "cancelled"
    cases.publish(db_session, case, by=w.a, on=D(2026, 8, 21))
    cases.archive(db_session, case, by=w.head)
    with pytest.raises(Archived):
        cases.crime_check(db_session, case, by=w.a, facts={"loss_cny": 1})


def test_supervised_special_case_reports_within_twenty_days_of_closure(db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.supervise(db_session, case, by=w.head, on=D(2026, 8, 5), level="province", special_case=True)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11), fine=100_000)
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意",
                   today=D(2026, 8, 13))
    cases.decide(db_session, case, by=w.head, on=D(2026, 8, 13), fine=100_000)
    cases.serve_decision(db_session, case, by=w.a, on=D(2026, 8, 14), method="in_person")
    with pytest.raises(GuardFailed) as exc:
        cases.enforce(db_session, case, by=w.head, on=D(2026, 8, 20), measure="申请法院强制执行")
    assert guard(exc) == ("payment_period_passed", "行政处罚法 第72条")
    cases.pay(db_session, case, by=w.a, on=D(2026, 8, 20), amount=100_000)
    cases.publish(db_session, case, by=w.a, on=D(2026, 8, 20), non_publication_reason="涉及商业秘密（广东公示办法 第14条）")
    cases.close(db_session, case, by=w.head, on=D(2026, 8, 24))
    assert case.special_case and clock(db_session, case, "supervised_report").due_on == D(2026, 9, 14)
