"""Legal review of major decisions (法制审核): submissions and reviewer decisions, append-only."""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, utcnow, value_enum


_enum = value_enum


class ReviewStatus(str, enum.Enum):
    PENDING = "pending"
    PASSED = "passed"
    RETURNED = "returned"


class ReviewOutcome(str, enum.Enum):
    PASS = "pass"
    RETURN = "return"


class LegalReview(Base):
    """One submission of a case for legal review. A resubmission is a new row (``round_no`` + 1)."""

    __tablename__ = "legal_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    round_no: Mapped[int] = mapped_column(comment="1 for the first submission")
    subject: Mapped[str] = mapped_column(sa.String(20), default="decision", comment="decision | transfer_refusal")
    scope_hits: Mapped[list[Any]] = mapped_column(comment="scope rules that put the case in review, with sources")
    proposal: Mapped[dict[str, Any]] = mapped_column(comment="the draft decision submitted: fine, measures, discretion record")
    submitted_on: Mapped[dt.date]
    submitted_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[ReviewStatus] = mapped_column(_enum(ReviewStatus), default=ReviewStatus.PENDING, index=True)
    due_on: Mapped[dt.date] = mapped_column(comment="5 working days; +3 when extended (广东 第18条)")
    extended: Mapped[bool] = mapped_column(default=False)
    extension_reason: Mapped[str | None] = mapped_column(sa.String(400))

    decisions: Mapped[list[LegalReviewDecision]] = relationship(order_by="LegalReviewDecision.id", viewonly=True)

    __table_args__ = (
        sa.UniqueConstraint("case_id", "round_no", name="uq_legal_review_case_round"),
        sa.Index("ix_legal_review_status_due", "status", "due_on"),
    )


class LegalReviewDecision(Base):
    """A reviewer's opinion: pass, or return with coded reasons (广东 第19–20条). Never edited."""

    __tablename__ = "legal_review_decision"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(sa.ForeignKey("legal_review.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    qualification_number: Mapped[str] = mapped_column(sa.String(60), comment="reviewer's LegalQualification")
    outcome: Mapped[ReviewOutcome] = mapped_column(_enum(ReviewOutcome))
    reason_codes: Mapped[list[Any]] = mapped_column(default=list)
    opinion: Mapped[str] = mapped_column(sa.Text)
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    supersedes_id: Mapped[int | None] = mapped_column(sa.ForeignKey("legal_review_decision.id"))

    __table_args__ = (sa.CheckConstraint("outcome = 'pass' OR reason_codes IS NOT NULL", name="return_has_reasons"),)
