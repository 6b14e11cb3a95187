"""Legal reviewers (法制审核): the queue by deadline, the one-screen case review, pass or return, history."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for

from server.core import errors
from server.core.access import current_principal
from server.core.calendar import local_today
from server.extensions import db
from server.modules.cases import operations as cases
from server.modules.cases.models import Case
from server.modules.reviews import operations as reviews
from server.modules.reviews.models import LegalReview, LegalReviewDecision, ReviewOutcome
from server.web import console, i18n
from server.web.common import PER_PAGE, me, page_number, paged, paged_list, render_error, required, run


@console.get("/reviews")
def review_queue() -> Any:
    """法制审核队列（按到期日）/ The review queue, most urgent first"""
    wanted = page_number() * PER_PAGE + 1  # the queue is ordered by due date in the operation; page its head
    return render_template("console/review_queue.html",
                           page=paged_list(reviews.queue(db.session, local_today(), limit=wanted)))


def _screen(review_id: int) -> tuple[LegalReview, dict[str, Any]]:
    review = reviews.get(db.session, review_id)
    case = cases.get(db.session, review.case_id)
    cases.require_access(db.session, current_principal(), case)
    return review, reviews.screen(db.session, case, local_today())


@console.get("/reviews/<int:review_id>")
def review(review_id: int) -> Any:
    """案件审核一屏 / The case review screen"""
    found, screen = _screen(review_id)
    return render_template("console/review.html", review=found, s=screen)


@console.post("/reviews/<int:review_id>/decision")
def review_decide(review_id: int) -> Any:
    """审核结论：通过或附编码理由退回 / Pass, or return with coded reasons"""
    outcome = request.form.get("outcome", "")
    opinion = (request.form.get("opinion") or "").strip()
    codes = request.form.getlist("reason_codes")

    def decide() -> Any:
        required("opinion")
        if outcome not in {o.value for o in ReviewOutcome}:
            raise errors.ValidationFailed(fields={"outcome": ["pass / return"]})
        return reviews.decide(db.session, reviews.get(db.session, review_id), reviewer=me(),
                              outcome=ReviewOutcome(outcome), opinion=opinion, reason_codes=codes)

    _, error = run(decide)
    if error is not None:
        found, screen = _screen(review_id)
        return render_error("console/review.html", error, review=found, s=screen)
    flash(f"{i18n.t('pass') if outcome == 'pass' else i18n.t('return')} ✓")
    return redirect(url_for("console.review_queue"))


@console.get("/reviews/history")
def review_history() -> Any:
    """本人审核记录 / The reviewer's own decisions"""
    query = (sa.select(LegalReviewDecision, LegalReview, Case)
             .join(LegalReview, LegalReview.id == LegalReviewDecision.review_id)
             .join(Case, Case.id == LegalReview.case_id)
             .where(LegalReviewDecision.reviewer_id == current_principal().user_id)
             .order_by(LegalReviewDecision.id.desc()))
    return render_template("console/review_history.html", page=paged(query, scalars=False))
