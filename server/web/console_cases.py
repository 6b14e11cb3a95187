"""Cases for bureau staff: the list (by scope) and one case with its clocks, history and evidence."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import render_template, request

from server.core.access import current_principal
from server.core.calendar import local_today
from server.extensions import db
from server.modules.cases import operations as cases
from server.modules.cases.models import Case, CaseEvent, CaseState
from server.modules.deadlines import operations as deadlines
from server.modules.deadlines.models import Deadline
from server.modules.reviews.models import LegalReview
from server.web import console
from server.web.common import paged


@console.get("/cases", endpoint="cases")
def cases_page() -> Any:
    """案件列表 / Cases"""
    state = request.args.get("state") or None
    query = cases.visible(db.session, current_principal())
    if state in {s.value for s in CaseState}:
        query = query.where(Case.state == CaseState(state))
    return render_template("console/cases.html", page=paged(query), state=state, states=[s.value for s in CaseState])



@console.get("/cases/<case_id>")
def case(case_id: str) -> Any:
    """一个案件：事实、期限、审核与办理记录 / One case: facts, clocks, reviews, history"""
    found = cases.get(db.session, case_id)
    cases.require_access(db.session, current_principal(), found)
    today = local_today()
    clocks = db.session.scalars(sa.select(Deadline).where(Deadline.case_id == found.id).order_by(Deadline.id)).all()
    history = db.session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == found.id).order_by(CaseEvent.id)).all()
    rounds = db.session.scalars(sa.select(LegalReview).where(LegalReview.case_id == found.id)
                                .order_by(LegalReview.round_no)).all()
    return render_template("console/case.html", case=found, clocks=[deadlines.view(c, today) for c in clocks],
                           history=history, rounds=rounds)
