"""Demo cases in several states, made through the real operations (so every guard applies)."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.modules.cases import operations as cases
from server.modules.directory.models import Target
from server.modules.discretion import operations as discretion
from server.modules.reviews import operations as reviews
from server.modules.reviews.models import ReviewOutcome
from server.modules.users.models import User

KILN = {"location": {"level": 3, "evidence": "功能区划文件"}, "gas_type": {"level": 3, "evidence": "排污许可证"},
        "exceedance": {"value": 60, "evidence": "在线监测数据"}, "flow": {"value": 30000, "evidence": "监测报告"},
        "period": {"level": 1, "evidence": "—"}, "violations_2y": {"value": 2, "evidence": "处罚记录查询"},
        "regional_impact": {"level": 1, "evidence": "调查报告"}}


def load(session: Session, today: dt.date) -> int:
    """Five cases: a lead, one under investigation, one notified, one in legal review, one served."""
    discretion.load_shipped(session)
    by_name = {u.username: u for u in session.scalars(sa.select(User).where(User.username.in_(
        ["supervisor", "inspector01", "inspector09", "reviewer1"])))}
    head, a, b, reviewer = (by_name[n] for n in ("supervisor", "inspector01", "inspector09", "reviewer1"))
    targets = list(session.scalars(sa.select(Target).order_by(Target.id).limit(5)))
    base = today - dt.timedelta(days=120)  # every clock of these cases ends before today
    made = []
    for n, target in enumerate(targets):
        case = cases.create_lead(session, by=head, title=f"{target.name} 超标排放大气污染物", target_id=target.id,
                                 violation_code="air_99_2", facts="在线监测显示氮氧化物小时均值超标60%，现场核实",
                                 act_ended_on=base - dt.timedelta(days=5), discovered_on=base, unit_id=head.unit_id)
        made.append(case)
        if n == 0:
            continue
        cases.file(session, case, by=head, on=base, handler_ids=[a.id, b.id])
        cases.start_investigation(session, case, by=a, on=base)
        cases.record_act(session, case, by=a, kind="on_site", act_date=base + dt.timedelta(days=1),
                         inspector_ids=[a.id, b.id], summary="现场检查，调取在线监测数据，制作现场检查笔录")
        cases.propose(session, case, by=a, on=base + dt.timedelta(days=5), inputs=KILN)
        cases.crime_check(session, case, by=a)  # no suspected crime on these facts (法释〔2023〕7号 第1条)
        if n == 1:
            continue
        cases.serve_notice(session, case, by=a, on=base + dt.timedelta(days=10))
        if n == 2:
            continue
        cases.waive_statement(session, case, by=a, on=base + dt.timedelta(days=11), note="当事人书面放弃陈述申辩和听证", hearing_too=True)
        review = reviews.submit(session, case, by=a, on=base + dt.timedelta(days=12))
        if n == 3:
            continue
        reviews.decide(session, review, reviewer=reviewer, outcome=ReviewOutcome.PASS, opinion="事实清楚，程序合法，裁量适当",
                       today=base + dt.timedelta(days=13))
        cases.decide(session, case, by=head, on=base + dt.timedelta(days=14), fine=case.notified_fine or 0)
        cases.serve_decision(session, case, by=a, on=base + dt.timedelta(days=15), method="in_person")
    return len(made)
