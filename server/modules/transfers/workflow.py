"""The transfer state machine as data: each step, the kinds of transfer it belongs to, the states it
may start from, where it leads, who takes it, its legal source, the deadline clocks it starts and
meets (types in ``deadlines/deadline_types.json``) and which side must enter the decision on the
shared information platform (衔接办法 第34条). Guards raise one typed error naming the rule."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.core import errors
from server.modules.transfers.models import Transfer, TransferKind as K, TransferState as S

GuardFailed = errors.error_code("transfer.guard_failed", 409, "不满足移送程序的法定条件，操作被拒绝",
                                "A legal precondition of this transfer step is not met")
InvalidTransition = errors.error_code("transfer.invalid_transition", 409, "移送当前状态不允许该操作",
                                      "The transfer's current state does not allow this step")
WrongSide = errors.error_code("transfer.wrong_side", 403, "该步骤应由其他机关或负责人办理",
                             "This step belongs to another office or to the head")

BOTH = frozenset({K.CRIMINAL, K.DETENTION})
CRIMINAL = frozenset({K.CRIMINAL})
DETENTION = frozenset({K.DETENTION})


@dataclass(frozen=True)
class Step:
    action: str
    name_zh: str
    kinds: frozenset[K]
    sources: frozenset[S]
    target: S | None  # None: a recorded step that keeps the state
    side: str  # bureau | head | police | prosecutor | party (any of bureau, police, prosecutor)
    rule: str
    starts: tuple[str, ...] = ()  # deadline types started (those not of this kind are skipped)
    meets: tuple[str, ...] = ()  # deadline types met
    enters: str | None = None  # side that enters this decision on the shared platform within 7 days

    @property
    def sides(self) -> frozenset[str]:
        return PARTIES if self.side == "party" else frozenset({self.side})


PARTIES = frozenset({"bureau", "police", "prosecutor"})


# Which side owes each deadline (the unit shown as answerable on the dashboards); "decider" and
# "consulted" clocks belong to the side that made the decision or was consulted, per clock.
DEADLINE_OWNER: dict[str, str] = {
    "transfer_decision": "bureau", "transfer_handover": "bureau", "transfer_supplement": "bureau",
    "transfer_items_handover": "bureau", "transfer_reconsideration_request": "bureau",
    "transfer_on_procuratorate_opinion": "bureau", "detention_transfer": "bureau",
    "transfer_supplement_request": "police", "transfer_filing_decision": "police", "transfer_filing_notice": "police",
    "transfer_reconsideration_decision": "police", "detention_evidence_request": "police",
    "detention_decision": "police", "transfer_supplementary_investigation": "police",
    "transfer_platform_entry": "decider", "transfer_consultation_reply": "consulted",
}
DEADLINE_KINDS: dict[str, frozenset[K]] = {code: (DETENTION if code.startswith("detention_") else CRIMINAL)
                                           for code in DEADLINE_OWNER}
DEADLINE_KINDS["transfer_supplement"] = BOTH
DEADLINE_KINDS["transfer_decision"] = BOTH

_BEFORE_HANDOVER = frozenset({S.SUSPECTED, S.TEAM_FORMED, S.REPORT_SUBMITTED, S.APPROVED})
_ANY = frozenset(S)
_CASE_FILED = frozenset({S.AGENCY_NOTIFIED, S.RECONSIDERATION_DECIDED, S.ITEMS_HANDED_OVER, S.CLOSED})

STEPS: dict[str, Step] = {s.action: s for s in (
    Step("form_team", "成立专案组（两名以上执法人员）", BOTH, frozenset({S.SUSPECTED}), S.TEAM_FORMED, "bureau",
         "国务院令第310号 第5条; 行政处罚法 第42条"),
    Step("submit_report", "提交移送报告 / 审批表", BOTH, frozenset({S.TEAM_FORMED}), S.REPORT_SUBMITTED, "bureau",
         "衔接办法 (2017) 第5条; 行政拘留移送暂行办法 (2014) 第10条", starts=("transfer_decision",)),
    Step("approve", "负责人批准移送", BOTH, frozenset({S.REPORT_SUBMITTED}), S.APPROVED, "head",
         "衔接办法 (2017) 第5条; 国务院令第310号 第5条", starts=("transfer_handover", "detention_transfer"),
         meets=("transfer_decision",), enters="bureau"),
    Step("refuse", "负责人不批准移送（记录理由，法制审核）", BOTH, frozenset({S.REPORT_SUBMITTED}), S.REFUSED, "head",
         "国务院令第310号 第5条; 行政处罚法 第58条", meets=("transfer_decision",)),
    Step("procuratorate_recommends", "检察院建议移送", CRIMINAL, frozenset({S.REFUSED}), S.APPROVED, "prosecutor",
         "衔接办法 (2017) 第14条", starts=("transfer_on_procuratorate_opinion",), enters="prosecutor"),
    Step("add_material", "添加移送材料", BOTH, _BEFORE_HANDOVER | {S.SUPPLEMENT_REQUESTED}, None, "bureau",
         "衔接办法 (2017) 第6条; 行政拘留移送暂行办法 (2014) 第11条"),
    Step("hand_over", "移送公安机关并抄送检察院", BOTH, frozenset({S.APPROVED}), S.HANDED_OVER, "bureau",
         "衔接办法 (2017) 第6条 (24小时内; 抄送同级检察院); 行政拘留移送暂行办法 (2014) 第10条",
         meets=("transfer_handover", "detention_transfer", "transfer_on_procuratorate_opinion")),
    Step("sign_receipt", "公安签收回执", BOTH, frozenset({S.HANDED_OVER}), S.RECEIPT_SIGNED, "police",
         "衔接办法 (2017) 第7条; 国务院令第310号 第7条",
         starts=("transfer_supplement_request", "transfer_filing_decision", "detention_evidence_request",
                 "detention_decision")),
    Step("request_supplement", "公安书面要求补正材料", BOTH, frozenset({S.RECEIPT_SIGNED}), S.SUPPLEMENT_REQUESTED,
         "police", "衔接办法 (2017) 第8条 (24小时内); 行政拘留移送暂行办法 (2014) 第13条 (3个工作日内)",
         starts=("transfer_supplement",), meets=("transfer_supplement_request", "detention_evidence_request")),
    Step("supplement", "移送机关补正材料", BOTH, frozenset({S.SUPPLEMENT_REQUESTED}), S.RECEIPT_SIGNED, "bureau",
         "衔接办法 (2017) 第8条 (3日内补正; 公安不得以材料不全为由不接受)", meets=("transfer_supplement",)),
    Step("extend_filing_period", "延长立案审查期限 (7日 / 30日)", CRIMINAL,
         frozenset({S.RECEIPT_SIGNED, S.SUPPLEMENT_REQUESTED}), None, "police", "衔接办法 (2017) 第9条"),
    Step("decide", "公安作出立案 / 不予立案 / 移交 / 退回 (拘留 / 不予拘留) 决定", BOTH,
         frozenset({S.RECEIPT_SIGNED, S.SUPERVISION_REQUESTED}), S.DECIDED, "police",
         "衔接办法 (2017) 第9条; 行政拘留移送暂行办法 (2014) 第14、15条", starts=("transfer_filing_notice",),
         meets=("transfer_filing_decision", "transfer_supplement_request", "detention_evidence_request",
                "detention_decision"), enters="police"),
    Step("notify_agency", "书面通知移送机关（抄送检察院）", BOTH, frozenset({S.DECIDED}), S.AGENCY_NOTIFIED, "police",
         "衔接办法 (2017) 第9条 (3日内); 行政拘留移送暂行办法 (2014) 第14、15条", meets=("transfer_filing_notice",)),
    Step("hand_over_items", "移交涉案物品及有关材料", CRIMINAL,
         frozenset({S.AGENCY_NOTIFIED, S.RECONSIDERATION_DECIDED}), S.ITEMS_HANDED_OVER, "bureau",
         "衔接办法 (2017) 第10条; 国务院令第310号 第12条", meets=("transfer_items_handover",)),
    Step("request_reconsideration", "提请公安复议", CRIMINAL, frozenset({S.AGENCY_NOTIFIED}),
         S.RECONSIDERATION_REQUESTED, "bureau", "衔接办法 (2017) 第11条 (3个工作日内)",
         starts=("transfer_reconsideration_decision",), meets=("transfer_reconsideration_request",), enters="bureau"),
    Step("decide_reconsideration", "公安复议决定", CRIMINAL, frozenset({S.RECONSIDERATION_REQUESTED}),
         S.RECONSIDERATION_DECIDED, "police", "衔接办法 (2017) 第11条 (3个工作日内)",
         meets=("transfer_reconsideration_decision",), enters="police"),
    Step("request_supervision", "提请检察院立案监督", CRIMINAL,
         frozenset({S.RECEIPT_SIGNED, S.DECIDED, S.AGENCY_NOTIFIED, S.RECONSIDERATION_DECIDED}),
         S.SUPERVISION_REQUESTED, "bureau", "衔接办法 (2017) 第12、13条", enters="bureau"),
    Step("supervision_opinion", "检察院立案监督意见", CRIMINAL, frozenset({S.SUPERVISION_REQUESTED}), None, "prosecutor",
         "衔接办法 (2017) 第12、13条", enters="prosecutor"),
    Step("notify_non_prosecution", "检察院不起诉，通知移送机关", CRIMINAL,
         frozenset({S.ITEMS_HANDED_OVER, S.AGENCY_NOTIFIED}), S.NON_PROSECUTED, "prosecutor", "衔接办法 (2017) 第18条"),
    Step("resume_admin_penalty", "回到行政处罚程序", BOTH,
         frozenset({S.REFUSED, S.AGENCY_NOTIFIED, S.RECONSIDERATION_DECIDED, S.SUPERVISION_REQUESTED,
                    S.NON_PROSECUTED}), S.ADMIN_PENALTY_RESUMED, "head",
         "衔接办法 (2017) 第16、18条; 行政处罚法 第27条 (不得以罚代刑)"),
    Step("close", "移送办结", BOTH, frozenset({S.ITEMS_HANDED_OVER, S.AGENCY_NOTIFIED, S.ADMIN_PENALTY_RESUMED}),
         S.CLOSED, "head", "衔接办法 (2017) 第34条; 行政拘留移送暂行办法 (2014) 第16条"),
    Step("return_for_supplementary_investigation", "检察院退回补充侦查（附补充侦查提纲）", CRIMINAL, _CASE_FILED, None,
         "prosecutor", "衔接办法 (2017) 第19条", starts=("transfer_supplementary_investigation",)),
    Step("complete_supplementary_investigation", "公安补充侦查完毕", CRIMINAL, _CASE_FILED, None, "police",
         "衔接办法 (2017) 第19条 (一个月内)", meets=("transfer_supplementary_investigation",)),
    Step("consult", "书面咨询（环保部门与公安机关、检察院双向咨询）", CRIMINAL, _ANY - {S.CLOSED}, None, "party",
         "衔接办法 (2017) 第24条"),
    Step("request_early_involvement", "商请检察院提前介入（移送前）", CRIMINAL, _BEFORE_HANDOVER | {S.REFUSED}, None,
         "bureau", "衔接办法 (2017) 第4、24条"),
    Step("answer_consultation", "书面答复咨询（7日内）", CRIMINAL, _ANY, None, "party", "衔接办法 (2017) 第24条"),
    Step("record_platform_entry", "录入行政执法与刑事司法衔接信息共享平台", CRIMINAL, _ANY, None, "party",
         "衔接办法 (2017) 第34条 (作出相关决定之日起7日内)"),
)}


def fail(guard: str, rule: str, detail: str, **context: Any) -> GuardFailed:
    """The one guard error: ``raise fail("team_size", "国务院令第310号 第5条", "...")``."""
    return GuardFailed(detail, guard=guard, rule=rule, **context)


def check(transfer: Transfer, action: str) -> Step:
    """Raise unless ``action`` exists for this kind of transfer and may start from its state."""
    step = STEPS.get(action)
    if step is None or transfer.kind not in step.kinds:
        raise errors.NotFound(f"unknown step {action} for a {transfer.kind.value} transfer",
                              known=sorted(a for a, s in STEPS.items() if transfer.kind in s.kinds))
    if transfer.state not in step.sources:
        raise InvalidTransition(f"{action} is not allowed in state {transfer.state.value}", transfer=transfer.id,
                                action=action, state=transfer.state.value,
                                allowed_from=sorted(s.value for s in step.sources), rule=step.rule)
    return step


def steps_view() -> list[dict[str, Any]]:
    return [{"action": s.action, "name_zh": s.name_zh, "kinds": sorted(k.value for k in s.kinds),
             "from": sorted(x.value for x in s.sources), "to": s.target.value if s.target else None,
             "side": s.side, "sides": sorted(s.sides), "rule": s.rule, "starts": list(s.starts),
             "meets": list(s.meets), "platform_entry_by": s.enters}
            for s in STEPS.values()]
