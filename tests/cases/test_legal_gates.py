"""Gates of the penalty procedure that the law has and the first version missed (legal fidelity).
Each test names its article; dates run across the 2026 National Day holiday where a window counts
working days (2026: 25 September and 1–7 October off; Sunday 20 September and Saturday 10 October worked)."""
from __future__ import annotations

import pytest

from server.modules.cases import operations as cases
from server.modules.cases.models import CaseState
from server.modules.cases.workflow import GuardFailed
from server.modules.reviews import operations as reviews
from server.modules.reviews.models import ReviewOutcome
from tests.cases.conftest import D, investigated


def guard(exc_info):
    return exc_info.value.context["guard"], exc_info.value.context["rule"]


def test_waiving_statement_keeps_the_hearing_right_xzcff_article_64(db_session, world):
    """行政处罚法 第64条: the hearing is waived only expressly or by the party's conduct; a party who
    waives 陈述申辩 may still request a hearing inside its 5-working-day window, and no decision is
    made while that window is open."""
    w = world
    case = investigated(db_session, w, filed_on=D(2026, 9, 1))
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 9, 28))  # 209,000: hearing right (第63条)
    assert case.hearing_rights
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 9, 29), note="当事人书面放弃陈述申辩")
    assert not case.hearing_waived
    with pytest.raises(GuardFailed) as exc:  # window: 29, 30 Sep, 8, 9, 10 Oct (a worked Saturday)
        cases.decide(db_session, case, by=w.head, on=D(2026, 10, 9), fine=209_000)
    assert guard(exc)[0] == "hearing_request_window"
    cases.request_hearing(db_session, case, by=w.a, on=D(2026, 10, 10))
    assert case.state is CaseState.HEARING_REQUESTED


def test_express_waiver_of_statement_and_hearing_closes_both_xzcff_article_64(db_session, world):
    """行政处罚法 第64条: an express written waiver of both ends the hearing window at once."""
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="当事人书面放弃陈述申辩和听证",
                          hearing_too=True)
    assert case.hearing_waived
    with pytest.raises(GuardFailed) as exc:
        cases.request_hearing(db_session, case, by=w.a, on=D(2026, 8, 13))
    assert guard(exc)[0] == "hearing_request_window"


def test_limitation_past_two_years_refuses_the_decision_without_a_five_year_ground_xzcff_article_36(db_session, world):
    """行政处罚法 第36条第1款: an act found more than two years after it ended is not punished, unless it
    harmed life, health or financial safety with harmful consequences (five years). A warning alone
    let a 100,000 yuan fine through; now the decision is refused until the ground is recorded, and
    the ground puts the decision in legal-review scope (第58条)."""
    w = world
    old = investigated(db_session, w, act_ended_on=D(2023, 5, 1), discovered_on=D(2026, 7, 20))
    assert old.limitation_warning and old.limitation_ground is None
    cases.serve_notice(db_session, old, by=w.a, on=D(2026, 8, 11), fine=100_000)
    cases.waive_statement(db_session, old, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, old, by=w.head, on=D(2026, 8, 13), fine=100_000)
    assert guard(exc) == ("limitation_period", "行政处罚法 第36条第1款")
    assert old.state is CaseState.NOTIFIED and old.decided_fine is None

    grounded = investigated(db_session, w, act_ended_on=D(2023, 5, 1), discovered_on=D(2026, 7, 20),
                            limitation_ground="life_health")
    cases.serve_notice(db_session, grounded, by=w.a, on=D(2026, 8, 11), fine=100_000)
    cases.waive_statement(db_session, grounded, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, grounded, by=w.head, on=D(2026, 8, 13), fine=100_000)
    assert guard(exc)[0] == "legal_review_passed"
    assert "five_year_limitation" in exc.value.context["scope"]
    review = reviews.submit(db_session, grounded, by=w.a, on=D(2026, 8, 13))
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="五年时效依据充分",
                   today=D(2026, 8, 14))
    cases.decide(db_session, grounded, by=w.head, on=D(2026, 8, 14), fine=100_000)
    assert grounded.state is CaseState.DECIDED


def test_unknown_limitation_ground_is_refused(db_session, world):
    w = world
    lead = cases.create_lead(db_session, by=w.head, title="旧案", party_name="甲", act_ended_on=D(2023, 5, 1),
                             discovered_on=D(2026, 8, 1))
    with pytest.raises(cases.errors.ValidationFailed):
        cases.file(db_session, lead, by=w.head, on=D(2026, 8, 3), handler_ids=[w.a.id, w.b.id],
                   limitation_ground="because")
    assert lead.state is CaseState.LEAD


def test_decision_needs_a_crime_check_on_the_final_facts_xzcff_article_27(db_session, world):
    """行政处罚法 第27条; 国务院令第310号 第3条: before deciding, the handler checks whether the facts
    amount to a suspected crime. A decision with no check, or with facts changed since the check,
    is refused; the check run shows on the review screen as run."""
    w = world
    case = cases.create_lead(db_session, by=w.head, title="超标排放", target_id=w.target.id,
                             violation_code="air_99_2", act_ended_on=D(2026, 7, 24))
    cases.file(db_session, case, by=w.head, on=D(2026, 8, 3), handler_ids=[w.a.id, w.b.id])
    cases.start_investigation(db_session, case, by=w.a, on=D(2026, 8, 3))
    cases.record_act(db_session, case, by=w.a, kind="on_site", act_date=D(2026, 8, 4),
                     inspector_ids=[w.a.id, w.b.id], summary="现场检查")
    from tests.cases.conftest import KILN
    cases.propose(db_session, case, by=w.a, on=D(2026, 8, 10), inputs=KILN)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 13))
    reviews.decide(db_session, review, reviewer=w.reviewer, outcome=ReviewOutcome.PASS, opinion="同意",
                   today=D(2026, 8, 14))
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 14), fine=209_000)
    assert guard(exc) == ("crime_check_run", "行政处罚法 第27条; 国务院令第310号 第3条")
    assert exc.value.context["checked"] is False
    cases.crime_check(db_session, case, by=w.a, facts={"hazardous_waste_t": 0.2})
    case.crime_facts = {**case.crime_facts, "hazardous_waste_t": 0.5}  # facts changed after the check
    with pytest.raises(GuardFailed) as exc:
        cases.decide(db_session, case, by=w.head, on=D(2026, 8, 14), fine=209_000)
    assert exc.value.context == {**exc.value.context, "guard": "crime_check_run", "checked": True}
    cases.crime_check(db_session, case, by=w.a)
    cases.decide(db_session, case, by=w.head, on=D(2026, 8, 14), fine=209_000)
    assert case.state is CaseState.DECIDED


def test_crime_facts_given_with_the_lead_are_evaluated_judicial_interpretation_2023_7(db_session, world):
    """法释〔2023〕7号 第1条第(二)项: 3 t of hazardous waste named when the lead is made marks it suspected
    at once, without waiting for a later check."""
    w = world
    lead = cases.create_lead(db_session, by=w.head, title="非法倾倒危险废物", party_name="某公司",
                             crime_facts={"hazardous_waste_t": 4.5})
    assert lead.suspected_crime and [h["code"] for h in lead.crime_hits] == ["hazardous_waste_3t"]
    assert lead.crime_checked_facts == {"hazardous_waste_t": 4.5}


def test_a_hearing_may_be_held_on_a_rest_day_xzcff_articles_64_and_85(db_session, world):
    """行政处罚法 第64条 sets 7 days' notice and 第85条 counts 'days' in working days; neither forbids a
    hearing on a Saturday, so it is not refused for its weekday (only the notice period counts)."""
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    cases.request_hearing(db_session, case, by=w.a, on=D(2026, 8, 17))
    cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2026, 8, 18), hearing_date=D(2026, 8, 29),
                           presider_id=w.reviewer.id)
    assert case.hearing_date == D(2026, 8, 29) and case.state is CaseState.HEARING_SCHEDULED


def test_the_partys_windows_are_never_the_bureau_overdue_xzcff_articles_45_and_64(db_session, world):
    """行政处罚法 第45、64条: 陈述申辩 and 听证申请 are the party's rights. Their windows passing unused is
    not the bureau being overdue: the boards list them apart, the daily scan does not count them, and
    a statement made at a hearing the party requested in time is not late."""
    from server.modules.deadlines import operations as deadlines

    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))  # statement to 14 Aug, hearing to 18 Aug
    later = D(2026, 8, 20)
    board = deadlines.dashboard(db_session, unit_id=case.unit_id, today=later, horizon_days=0)
    party = [item for person in board["by_person"].values() for item in person["party_windows"]]
    assert {item["type"] for item in party} == {"statement", "hearing_request"}
    assert all(item["window_closed"] and not item["overdue"] for item in party)
    assert board["totals"]["overdue"] == 0 and board["totals"]["party_windows"] == 2
    assert deadlines.scan(db_session, later)["overdue"] == 0

    heard = investigated(db_session, w)
    cases.serve_notice(db_session, heard, by=w.a, on=D(2026, 8, 11))
    cases.request_hearing(db_session, heard, by=w.a, on=D(2026, 8, 17))
    cases.schedule_hearing(db_session, heard, by=w.head, notice_on=D(2026, 8, 18), hearing_date=D(2026, 8, 28),
                           presider_id=w.reviewer.id)
    cases.record_statement(db_session, heard, by=w.a, on=D(2026, 8, 28), summary="听证中陈述申辩")
    statement = deadlines.open_deadline(db_session, heard.id, "statement")
    assert statement is None  # met
    from server.modules.deadlines.models import Deadline
    import sqlalchemy as sa
    row = db_session.scalars(sa.select(Deadline).where(Deadline.case_id == heard.id,
                                                       Deadline.type_code == "statement")).one()
    assert row.met_on == D(2026, 8, 28) and row.late is False


def _clock(db_session, case, code):
    import sqlalchemy as sa

    from server.modules.deadlines.models import Deadline
    return db_session.scalars(sa.select(Deadline).where(Deadline.case_id == case.id, Deadline.type_code == code)
                              .order_by(Deadline.id.desc())).first()


def test_a_lead_starts_the_filing_clock_and_filing_meets_it(db_session, world):
    """立案审查: the lead's discovery starts the filing clock (15 days, configurable and marked to
    confirm against 生态环境行政处罚办法 2023); filing meets it, late when filed after it."""
    w = world
    lead = cases.create_lead(db_session, by=w.head, title="群众举报夜间偷排", party_name="某公司",
                             discovered_on=D(2026, 8, 3))
    filing = _clock(db_session, lead, "filing")
    assert filing.started_on == D(2026, 8, 3) and filing.due_on == D(2026, 8, 18)
    cases.file(db_session, lead, by=w.head, on=D(2026, 8, 20), handler_ids=[w.a.id, w.b.id])
    assert filing.status.value == "met" and filing.late is True


def test_preservation_needs_the_heads_approval_and_a_decision_within_seven_working_days_xzcff_article_56(
        db_session, world):
    """行政处罚法 第56条: 先行登记保存 only with the head's approval, and a decision on the items within
    7 days (working days, 第85条): across National Day 2026 a preservation on 29 September is due 14
    October; a decision on 15 October is recorded late."""
    w = world
    case = investigated(db_session, w, filed_on=D(2026, 9, 1))
    with pytest.raises(GuardFailed) as exc:
        cases.record_act(db_session, case, by=w.a, kind="preservation", act_date=D(2026, 9, 29),
                         inspector_ids=[w.a.id, w.b.id], summary="先行登记保存账簿")
    assert guard(exc) == ("head_approval", "行政处罚法 第56条")
    with pytest.raises(GuardFailed):  # an inspector is not the head
        cases.record_act(db_session, case, by=w.a, kind="preservation", act_date=D(2026, 9, 29),
                         inspector_ids=[w.a.id, w.b.id], summary="先行登记保存账簿", approved_by_id=w.c.id)
    act = cases.record_act(db_session, case, by=w.a, kind="preservation", act_date=D(2026, 9, 29),
                           inspector_ids=[w.a.id, w.b.id], summary="先行登记保存账簿", approved_by_id=w.head.id)
    clock_row = _clock(db_session, case, "preservation")
    assert clock_row.due_on == D(2026, 10, 14)  # 30 Sep, 8, 9, 10 (a worked Saturday), 12, 13, 14 Oct
    cases.decide_on_items(db_session, case, by=w.head, act_id=act.id, on=D(2026, 10, 15), decision="解除登记保存，退还账簿")
    assert act.items_decided_on == D(2026, 10, 15) and clock_row.late is True
    with pytest.raises(GuardFailed) as exc:
        cases.decide_on_items(db_session, case, by=w.head, act_id=act.id, on=D(2026, 10, 16), decision="再次")
    assert guard(exc)[0] == "items_open"


def test_seizure_needs_its_decision_document_and_runs_thirty_days_administrative_compulsion_law_24_25(
        db_session, world):
    """行政强制法 第24条: a seizure is made by a decision document; 第25条: 30 days, extendable once by
    30 with the head's approval; lifting it meets the clock."""
    from server.modules.deadlines import operations as deadlines

    w = world
    case = investigated(db_session, w)
    with pytest.raises(GuardFailed) as exc:
        cases.record_act(db_session, case, by=w.a, kind="seizure", act_date=D(2026, 8, 5),
                         inspector_ids=[w.a.id, w.b.id], summary="查封锅炉", approved_by_id=w.head.id)
    assert guard(exc) == ("seizure_decision", "行政强制法 第24条")
    act = cases.record_act(db_session, case, by=w.a, kind="seizure", act_date=D(2026, 8, 5),
                           inspector_ids=[w.a.id, w.b.id], summary="查封锅炉", approved_by_id=w.head.id,
                           document_number="商环查封〔2026〕3号")
    row = _clock(db_session, case, "seizure")
    assert row.due_on == D(2026, 9, 4)
    deadlines.extend(db_session, row, amount=30, reason="情况复杂，负责人批准延长", by_user_id=w.head.id,
                     on=D(2026, 9, 1))
    assert row.due_on == D(2026, 10, 8)  # 4 October falls in the National Day holiday: rolled to 8 October
    with pytest.raises(deadlines.ExtensionRefused):  # one extension of at most 30 days in all
        deadlines.extend(db_session, row, amount=1, reason="再延长", by_user_id=w.head.id, on=D(2026, 9, 30))
    cases.decide_on_items(db_session, case, by=w.head, act_id=act.id, on=D(2026, 9, 20), decision="解除查封")
    assert row.status.value == "met" and row.late is False


def test_a_second_extension_of_the_case_period_needs_collective_discussion(client, db_session, world):
    """行政处罚法 第60条 lets the rules extend the 90 days: the 2023 rule allows 30 more with the head's
    approval and any further extension only by the heads' collective discussion (负责人集体讨论). The
    article is to be confirmed, so the approvals are configuration (deadline_types.json), defaulting
    to that reading; the approval is recorded on the extension."""
    from tests.helpers import assert_contract, staff_headers

    w = world
    case = investigated(db_session, w)
    decision = _clock(db_session, case, "decision")
    url = f"/api/v1/deadlines/{decision.id}/events"
    first = client.post(url, json={"action": "extend", "amount": 30, "reason": "需补充鉴定"}, headers=staff_headers(w.head))
    assert first.status_code == 200, first.json
    due_after_first = first.json["due_on"]
    refused = client.post(url, json={"action": "extend", "amount": 30, "reason": "案情复杂"}, headers=staff_headers(w.head))
    assert_contract(refused, 422, "deadline.extension_needs_collective_discussion")
    assert decision.due_on.isoformat() == due_after_first
    second = client.post(url, json={"action": "extend", "amount": 30, "reason": "经局务会集体讨论决定延长",
                                    "approval": "collective_discussion"}, headers=staff_headers(w.head))
    assert second.status_code == 200 and second.json["due_on"] > due_after_first
    third = client.post(url, json={"action": "extend", "amount": 1, "reason": "再延", "approval": "collective_discussion"},
                        headers=staff_headers(w.head))
    assert_contract(third, 422, "deadline.extension_refused")
    assert [e.reason_code for e in decision.events if e.kind.value == "extend"] == ["head", "collective_discussion"]


def test_unconfirmed_rules_are_listed_for_administrators(client, db_session, world):
    """Rules whose source is not in force or not confirmed are configuration, listed with the question
    to ask the bureau: the 2023 hearing threshold's citizen figure, the review catalogue's amount,
    the 法制审核 period (formerly taken from another province's rule)."""
    from tests import factories
    from tests.helpers import assert_contract, staff_headers

    admin = factories.UserFactory(role=cases.Role.ADMIN, unit=world.unit)
    rows = client.get("/api/v1/system/unconfirmed-rules", headers=staff_headers(admin)).json
    keys = {(row["area"], row["key"]) for row in rows}
    assert {("procedure", "hearing_thresholds.1"), ("legal_review_scope", "rules.0"),
            ("deadlines", "legal_review")} <= keys
    assert all(row["question"] and "广东" not in row["source"] for row in rows)
    assert_contract(client.get("/api/v1/system/unconfirmed-rules", headers=staff_headers(world.head)), 403,
                    "auth.forbidden")


def test_the_hearing_threshold_in_force_is_the_2023_rule_article_89(db_session, world):
    """生态环境行政处罚办法 (2023) 第89条 replaced the 2010 rule's 50,000 for organisations with 200,000
    from 1 July 2023: a 100,000 fine notified in 2026 carries no hearing right; 209,000 does."""
    w = world
    case = investigated(db_session, w)
    assert cases.hearing_triggered(case, 100_000, [], D(2026, 8, 11)) is None
    trigger = cases.hearing_triggered(case, 209_000, [], D(2026, 8, 11))
    assert trigger["threshold"] == 200_000 and "第89条" in trigger["source"]
    assert cases.hearing_triggered(case, 60_000, [], D(2023, 6, 30))["threshold"] == 50_000  # the old rule, before
    assert cases.hearing_triggered(case, 0, ["suspend_licence"], D(2026, 8, 11))["reason"] == "measure"  # 暂扣许可证件


def test_the_readme_lists_every_rule_to_confirm():
    """Each unconfirmed rule is in the README's list with its question, so the bureau is asked."""
    from pathlib import Path

    from server.modules.system import rules

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [f"{r['area']}:{r['key']}" for r in rules.unconfirmed()
               if f"`{r['area']}:{r['key']}`" not in readme or r["question"] not in readme]
    assert not missing, missing
