"""The case state machine as data: every step, the states it may start from, where it leads,
and the legal source that governs it. One helper applies a step; guards raise one typed error
that names the rule (``case.guard_failed`` with context {guard, rule, …})."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from server.core import errors
from server.modules.audit import operations as audit
from server.modules.cases.models import Case, CaseEvent, CaseState as S

GuardFailed = errors.error_code("case.guard_failed", 409, "不满足法定程序条件，操作被拒绝",
                                "A legal precondition of this step is not met")
InvalidTransition = errors.error_code("case.invalid_transition", 409, "案件当前状态不允许该操作",
                                      "The case's current state does not allow this step")
Archived = errors.error_code("case.archived", 409, "案件已归档，案卷不得修改；更正须另立关联记录（环境行政处罚办法2010第70条）",
                             "The case is archived and its file cannot change; record a linked correction instead")


@dataclass(frozen=True)
class Step:
    action: str
    name_zh: str
    sources: frozenset[S]
    target: S | None  # None: a recorded step that keeps the state
    rule: str


_OPEN_BEFORE_DECISION = frozenset({S.FILED, S.INVESTIGATING, S.NOTIFIED, S.HEARING_REQUESTED, S.HEARING_SCHEDULED,
                                   S.HEARING_HELD, S.IN_REVIEW, S.REVIEW_RETURNED, S.REVIEWED})
_AFTER_DECISION = frozenset({S.DECIDED, S.SERVED, S.PAID, S.ENFORCEMENT})
_ACTIVE = _OPEN_BEFORE_DECISION | _AFTER_DECISION | {S.LEAD, S.CLOSED}

STEPS: dict[str, Step] = {s.action: s for s in (
    Step("file", "立案", frozenset({S.LEAD}), S.FILED, "行政处罚法 第54条; 第36条 (追责时效)"),
    Step("start_investigation", "调查取证", frozenset({S.FILED}), S.INVESTIGATING, "行政处罚法 第54、55条"),
    Step("record_act", "调查取证行为", frozenset({S.FILED, S.INVESTIGATING, S.REVIEW_RETURNED}), None,
         "行政处罚法 第42、55条 (两名以上执法人员，持证)"),
    Step("decide_on_items", "先行登记保存物品处理 / 解除查封、扣押", _OPEN_BEFORE_DECISION | _AFTER_DECISION, None,
         "行政处罚法 第56条; 行政强制法 第27、28条"),
    Step("link_evidence", "关联证据", _OPEN_BEFORE_DECISION - {S.IN_REVIEW, S.REVIEWED}, None, "行政处罚法 第46条"),
    Step("propose", "裁量计算", frozenset({S.INVESTIGATING, S.REVIEW_RETURNED}), None,
         "行政处罚法 第34条; DOMAIN-RULES rule 38"),
    Step("crime_check", "涉嫌犯罪审查", _OPEN_BEFORE_DECISION, None, "行政处罚法 第27条; 法释〔2023〕7号 第1条"),
    Step("start_transfer", "启动移送", _ACTIVE - {S.LEAD}, None, "行政处罚法 第27、82条; 国务院令第310号 第3条"),
    Step("refuse_transfer", "不予移送（说明理由）", _OPEN_BEFORE_DECISION - {S.IN_REVIEW, S.REVIEWED}, None,
         "国务院令第310号 第5条; 行政处罚法 第58条 (法制审核)"),
    Step("serve_notice", "送达行政处罚事先告知书", frozenset({S.INVESTIGATING, S.REVIEW_RETURNED}), S.NOTIFIED,
         "行政处罚法 第44条"),
    Step("record_statement", "记录陈述申辩及复核", frozenset({S.NOTIFIED, S.HEARING_REQUESTED, S.HEARING_SCHEDULED,
                                                       S.HEARING_HELD}), None, "行政处罚法 第45条"),
    Step("waive_statement", "当事人放弃陈述申辩", frozenset({S.NOTIFIED}), None, "行政处罚法 第44、62条"),
    Step("request_hearing", "当事人申请听证", frozenset({S.NOTIFIED}), S.HEARING_REQUESTED, "行政处罚法 第63、64条"),
    Step("schedule_hearing", "通知听证", frozenset({S.HEARING_REQUESTED}), S.HEARING_SCHEDULED, "行政处罚法 第64条"),
    Step("hold_hearing", "举行听证", frozenset({S.HEARING_SCHEDULED}), S.HEARING_HELD, "行政处罚法 第64、65条"),
    Step("waive_hearing", "放弃听证或无正当理由不到场", frozenset({S.HEARING_REQUESTED, S.HEARING_SCHEDULED}), S.NOTIFIED,
         "行政处罚法 第64条第(六)项"),
    Step("submit_review", "提交法制审核", frozenset({S.NOTIFIED, S.HEARING_HELD, S.REVIEW_RETURNED}), S.IN_REVIEW,
         "行政处罚法 第58条"),
    Step("review_pass", "法制审核通过", frozenset({S.IN_REVIEW}), S.REVIEWED, "行政处罚法 第58条"),
    Step("review_return", "法制审核退回", frozenset({S.IN_REVIEW}), S.REVIEW_RETURNED, "行政处罚法 第58条; 广东法制审核办法 第19条"),
    Step("collective_discussion", "集体讨论", frozenset({S.NOTIFIED, S.HEARING_HELD, S.REVIEWED}), None,
         "行政处罚法 第57条第2款"),
    Step("decide", "作出行政处罚决定", frozenset({S.NOTIFIED, S.HEARING_HELD, S.REVIEWED}), S.DECIDED,
         "行政处罚法 第57、62条"),
    Step("serve_decision", "送达处罚决定书", frozenset({S.DECIDED}), S.SERVED, "行政处罚法 第61条"),
    Step("pay", "缴纳罚款", frozenset({S.SERVED, S.ENFORCEMENT}), S.PAID, "行政处罚法 第67、72条"),
    Step("enforce", "强制执行 / 申请法院强制执行", frozenset({S.SERVED}), S.ENFORCEMENT, "行政处罚法 第72条"),
    Step("publish", "公开处罚决定", _AFTER_DECISION | {S.DROPPED}, None, "行政处罚法 第48条; 国办发〔2018〕118号"),
    Step("withdrawal_due", "已公开决定被变更、撤销或确认违法", _AFTER_DECISION | {S.CLOSED, S.DROPPED}, None,
         "行政处罚法 第48条第2款"),
    Step("withdraw_publication", "撤回已公开的决定并说明理由", _AFTER_DECISION | {S.CLOSED, S.DROPPED}, None,
         "行政处罚法 第48条第2款"),
    Step("daily_fine", "按日连续处罚", _AFTER_DECISION, None, "环境保护法 第59条; 部令第28号"),
    Step("close", "结案", frozenset({S.PAID, S.ENFORCEMENT}), S.CLOSED, "行政处罚法 第47条; 国办发〔2018〕118号"),
    Step("archive", "归档", frozenset({S.CLOSED, S.DROPPED}), S.ARCHIVED, "环境行政处罚办法 (2010) 第69、70条"),
    Step("drop", "不予处罚 / 撤销立案", frozenset({S.LEAD}) | (_OPEN_BEFORE_DECISION - {S.IN_REVIEW}), S.DROPPED,
         "行政处罚法 第57条第1款第(二)、(三)项"),
    Step("add_agency", "联合办案机关", _ACTIVE, None, "DOMAIN-RULES rule 47; 衔接办法 第28条"),
    Step("supervise", "挂牌督办 / 专案", _ACTIVE, None, "衔接办法 (2017) 第31条; DOMAIN-RULES rule 48"),
)}


def fail(guard: str, rule: str, detail: str, **context: Any) -> GuardFailed:
    """The one guard error: ``raise fail("notice_period", "行政处罚法 第62条", "...")``."""
    return GuardFailed(detail, guard=guard, rule=rule, **context)


def check(case: Case, action: str) -> Step:
    """Raise unless ``action`` may start from the case's state (archived files never change)."""
    step = STEPS[action]
    if case.state is S.ARCHIVED:
        raise Archived(case=case.id, action=action, rule="环境行政处罚办法 (2010) 第70条")
    if case.state not in step.sources:
        raise InvalidTransition(f"{action} is not allowed in state {case.state.value}", case=case.id,
                                action=action, state=case.state.value, allowed_from=sorted(s.value for s in step.sources),
                                rule=step.rule)
    return step


def apply(session: Session, case: Case, action: str, *, by_user_id: int | None, on: dt.date | None = None,
          payload: dict[str, Any] | None = None) -> CaseEvent:
    """Apply a checked step: move the state, append the history row and the audit entry."""
    step = check(case, action)
    before = case.state
    if step.target is not None:
        case.state = step.target
    event = CaseEvent(case_id=case.id, action=action, from_state=before.value, to_state=case.state.value,
                      rule=step.rule, on=on, by_user_id=by_user_id, payload=payload or {})
    session.add(event)
    session.flush()
    audit.record(session, f"web:case:{action}", subjects={"case": case.id},
                 payload={"from": before.value, "to": case.state.value, "rule": step.rule,
                          "on": on.isoformat() if on else None, **(payload or {})})
    return event
