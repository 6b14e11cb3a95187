from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, TimestampMixin, utcnow, value_enum
from server.modules.users.models import User


_enum = value_enum


class AbsenceKind(str, enum.Enum):
    LEAVE = "leave"  # 休假
    TRAINING = "training"  # 培训
    SECONDMENT = "secondment"  # 借调
    OTHER = "other"


class ConflictRelation(str, enum.Enum):
    RELATIVE = "relative"  # 近亲属任职或持股
    FORMER_EMPLOYER = "former_employer"  # 曾任职单位
    HOLDING = "holding"  # 本人持股
    OTHER = "other"  # 其他可能影响公正执法的关系
    RECUSAL = "recusal"  # 回避申请获准


class RecusalStatus(str, enum.Enum):
    PENDING = "pending"
    GRANTED = "granted"
    REJECTED = "rejected"


class Absence(TimestampMixin, Base):
    """A period in which an inspector cannot be drawn (leave, training)."""

    __tablename__ = "inspector_absence"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    kind: Mapped[AbsenceKind] = mapped_column(_enum(AbsenceKind))
    starts_on: Mapped[dt.date] = mapped_column(comment="first day away")
    ends_on: Mapped[dt.date] = mapped_column(comment="last day away")
    note: Mapped[str | None] = mapped_column(sa.String(400))
    recorded_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(comment="set instead of deleting")

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    __table_args__ = (sa.CheckConstraint("starts_on <= ends_on", name="period_ordered"),)


class ConflictDeclaration(TimestampMixin, Base):
    """Conflict register (DOMAIN-RULES rule 2): a relation between an inspector and an enterprise,
    linked by credit code so that it also covers targets added to the directory later."""

    __tablename__ = "conflict_declaration"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    uscc: Mapped[str] = mapped_column(sa.String(18), index=True, comment="统一社会信用代码 of the enterprise")
    relation: Mapped[ConflictRelation] = mapped_column(_enum(ConflictRelation))
    detail: Mapped[str] = mapped_column(sa.String(400), comment="e.g. 配偶任该公司财务负责人")
    valid_until: Mapped[dt.date | None] = mapped_column(comment="conflict ends after this day (null: open-ended)")
    recorded_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    withdrawn_at: Mapped[dt.datetime | None]
    withdrawn_reason: Mapped[str | None] = mapped_column(sa.String(400))

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    __table_args__ = (sa.CheckConstraint("length(uscc) = 18", name="uscc_length"),)

    @classmethod
    def in_force(cls, on: dt.date) -> sa.ColumnElement[bool]:
        """SQL condition: the entry is in force on ``on`` (not withdrawn, not expired)."""
        return sa.and_(cls.withdrawn_at.is_(None), sa.or_(cls.valid_until.is_(None), cls.valid_until >= on))


class RecusalRequest(TimestampMixin, Base):
    """A party's recusal request (行政处罚法 第43条); the agency head decides. Decided requests stay."""

    __tablename__ = "recusal_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True, comment="inspector concerned")
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id"), index=True)
    inspection_id: Mapped[str | None] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    requested_by: Mapped[str] = mapped_column(sa.String(200), comment="party or its representative")
    grounds: Mapped[str] = mapped_column(sa.String(1000), comment="reasons stated by the party (required)")
    status: Mapped[RecusalStatus] = mapped_column(_enum(RecusalStatus), default=RecusalStatus.PENDING)
    recorded_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(sa.String(1000))
    conflict_id: Mapped[int | None] = mapped_column(sa.ForeignKey("conflict_declaration.id"),
                                                    comment="register entry created when granted")

    __table_args__ = (
        sa.CheckConstraint("(status = 'pending') = (decided_at IS NULL)", name="decided_iff_not_pending"),
        sa.CheckConstraint("decided_by IS NULL OR decided_by <> user_id", name="not_own_decision"),
    )
