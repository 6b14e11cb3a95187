"""People, a target and loaded benchmarks for the case tests; dates are fixed in 2026."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from server.core.access import Role
from server.modules.cases import operations as cases
from server.modules.discretion import operations as discretion
from server.modules.users import operations as users
from server.modules.users.models import User
from tests import factories

D = dt.date


def certified(unit: Any, role: Role = Role.INSPECTOR, **kwargs: Any) -> User:
    user = factories.UserFactory(role=role, unit=unit, **kwargs)
    factories.CertificateFactory(user=user, valid_from=D(2025, 1, 1), valid_until=D(2028, 12, 31))
    factories.db.session.refresh(user)
    return user


@dataclass
class World:
    unit: Any
    head: User
    a: User
    b: User
    c: User
    expired: User
    reviewer: User
    reviewer2: User
    unqualified: User
    target: Any


@pytest.fixture()
def world(db_session: Any) -> World:
    unit = factories.UnitFactory()
    head = certified(unit, Role.SUPERVISOR)
    a, b, c = (certified(unit) for _ in range(3))
    expired = factories.UserFactory(role=Role.INSPECTOR, unit=unit)
    factories.CertificateFactory(user=expired, valid_from=D(2024, 1, 1), valid_until=D(2026, 6, 30))
    db_session.refresh(expired)
    reviewers = []
    for n in range(2):
        reviewer = factories.UserFactory(role=Role.LEGAL_REVIEWER, unit=unit)
        users.add_legal_qualification(db_session, reviewer, kind="法律职业资格证书",
                                      number=f"A2019{reviewer.id:08d}{n}", obtained_on=D(2019, 9, 1))
        reviewers.append(reviewer)
    unqualified = factories.UserFactory(role=Role.LEGAL_REVIEWER, unit=unit)
    target = factories.TargetFactory(name="商洛秦岭砖瓦有限公司")
    discretion.load_shipped(db_session)
    return World(unit, head, a, b, c, expired, reviewers[0], reviewers[1], unqualified, target)


KILN = {"location": {"level": 3, "evidence": "ev-zoning"}, "gas_type": {"level": 3, "evidence": "ev-permit"},
        "exceedance": {"value": 60, "evidence": "ev-monitoring"}, "flow": {"value": 30000, "evidence": "ev-monitoring"},
        "period": {"level": 1, "evidence": "n/a"}, "violations_2y": {"value": 2, "evidence": "ev-record"},
        "regional_impact": {"level": 1, "evidence": "ev-report"}}


KILN_W = {"exceedance": {"value": 60, "evidence": "ev-monitoring"}, "location": {"level": 3, "evidence": "ev-zoning"},
          "violations_2y": {"value": 2, "evidence": "ev-record"}, "period": {"level": 1, "evidence": "n/a"}}


def investigated(db_session: Any, w: World, *, filed_on: dt.date = D(2026, 8, 3), inputs: Any = None,
                 **lead: Any) -> Any:
    """A case filed on ``filed_on`` with one on-site act and the §2 kiln calculation (209,000)."""
    lead.setdefault("act_ended_on", filed_on - dt.timedelta(days=10))
    ground = lead.pop("limitation_ground", None)
    case = cases.create_lead(db_session, by=w.head, title="超标排放氮氧化物", target_id=w.target.id,
                             violation_code="air_99_2", facts="砖窑氮氧化物小时均值超标60%", **lead)
    cases.file(db_session, case, by=w.head, on=filed_on, handler_ids=[w.a.id, w.b.id], limitation_ground=ground)
    cases.start_investigation(db_session, case, by=w.a, on=filed_on)
    cases.record_act(db_session, case, by=w.a, kind="on_site", act_date=filed_on + dt.timedelta(days=1),
                     inspector_ids=[w.a.id, w.b.id], summary="现场检查，调取在线监测数据")
    cases.propose(db_session, case, by=w.a, on=filed_on + dt.timedelta(days=7), inputs=inputs or KILN)
    cases.crime_check(db_session, case, by=w.a)
    return case
