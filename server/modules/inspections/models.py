from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, TimestampMixin, new_uuid, utcnow, value_enum
from server.modules.directory.models import Target
from server.modules.users.models import Unit, User


class InspectionKind(str, enum.Enum):
    RANDOM = "random"  # 双随机抽查
    ROUTINE = "routine"  # 日常检查
    TIP = "tip"  # 举报核查
    SPECIAL = "special"  # 专项检查
    JOINT = "joint"  # 联合检查


class OutsidePlanReason(str, enum.Enum):
    """Why a task lies outside its unit's annual plan (DOMAIN-RULES §M rule 51)."""

    COMPLAINT = "complaint"  # 投诉举报
    NON_SITE_CLUE = "non_site_clue"  # 非现场监管线索
    SPECIAL_CAMPAIGN = "special_campaign"  # 专项行动
    SUPERIOR_ASSIGNMENT = "superior_assignment"  # 上级交办


OUTSIDE_PLAN_REASONS: dict[OutsidePlanReason, tuple[str, str]] = {
    OutsidePlanReason.COMPLAINT: ("投诉举报", "Complaint or report"),
    OutsidePlanReason.NON_SITE_CLUE: ("非现场监管线索", "Lead from non-site supervision"),
    OutsidePlanReason.SPECIAL_CAMPAIGN: ("专项行动", "Special campaign"),
    OutsidePlanReason.SUPERIOR_ASSIGNMENT: ("上级交办", "Assigned by a superior authority"),
}
"""Each reason's label, Chinese then English: the one list clients and error messages show."""


class InspectionStatus(str, enum.Enum):
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class TeamRole(str, enum.Enum):
    LEAD = "lead"  # 主办
    MEMBER = "member"  # 协办
    AUXILIARY = "auxiliary"  # 协管员: assists, never counts toward the two inspectors


_enum = value_enum

IN_PLAN_OR_REASON = ("(kind = 'random' AND outside_plan_reason IS NULL) OR "
                     "(kind <> 'random' AND (plan_id IS NULL) <> (outside_plan_reason IS NULL))")


class Inspection(TimestampMixin, Base):
    """One inspection of one target. Ids are UUIDs so that devices can refer to them offline."""

    __tablename__ = "inspection"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id"), index=True)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="responsible unit")
    kind: Mapped[InspectionKind] = mapped_column(_enum(InspectionKind))
    status: Mapped[InspectionStatus] = mapped_column(_enum(InspectionStatus), default=InspectionStatus.ASSIGNED)
    window_start: Mapped[dt.date] = mapped_column(comment="first day the visit may happen")
    window_end: Mapped[dt.date] = mapped_column(comment="last day the visit may happen")
    secret: Mapped[bool] = mapped_column(default=False, comment="drawn target: hidden from others until the visit")
    draw_id: Mapped[str | None] = mapped_column(sa.String(36), index=True, comment="the draw that created it")
    plan_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("annual_plan.id"), comment="the annual plan it counts against (年度现场检查计划)")
    outside_plan_reason: Mapped[OutsidePlanReason | None] = mapped_column(
        _enum(OutsidePlanReason), comment="计划外任务的原因: why it is outside the annual plan")
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    purpose: Mapped[str | None] = mapped_column(sa.String(400), comment="检查事项 / what is to be checked")
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    cancelled_reason: Mapped[str | None] = mapped_column(sa.String(400))
    version: Mapped[int] = mapped_column(default=1, comment="bumped on every change; offline edits name their base")

    target: Mapped[Target] = relationship()
    unit: Mapped[Unit] = relationship()
    members: Mapped[list[InspectionMember]] = relationship(
        order_by="InspectionMember.id",
        primaryjoin="and_(Inspection.id == InspectionMember.inspection_id, InspectionMember.removed_at.is_(None))",
        viewonly=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint("window_start <= window_end", name="window_ordered"),
        # rule 51: a task by hand is in the plan or says why not; a drawn one is never "outside"
        sa.CheckConstraint(IN_PLAN_OR_REASON, name="in_plan_or_reason"),
    )


class InspectionMember(Base):
    """A team member. Removal sets ``removed_at`` (the device then gets a tombstone); rows stay."""

    __tablename__ = "inspection_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    team_role: Mapped[TeamRole] = mapped_column(_enum(TeamRole))
    certificate_number: Mapped[str | None] = mapped_column(sa.String(40), comment="certificate valid on assignment")
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    assigned_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    removed_at: Mapped[dt.datetime | None]
    removed_reason: Mapped[str | None] = mapped_column(sa.String(400))

    inspection: Mapped[Inspection] = relationship(foreign_keys=[inspection_id])
    user: Mapped[User] = relationship(foreign_keys=[user_id])

    __table_args__ = (
        sa.Index("uq_inspection_member_active", "inspection_id", "user_id", unique=True,
                 sqlite_where=sa.text("removed_at IS NULL"), postgresql_where=sa.text("removed_at IS NULL")),
    )
