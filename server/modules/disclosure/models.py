from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, TimestampMixin, value_enum


def _enum(cls: type[enum.Enum], length: int = 30) -> sa.Enum:
    return value_enum(cls, length)


class Outcome(str, enum.Enum):
    NO_PROBLEM = "no_problem"  # 未发现问题
    RECTIFICATION_ORDERED = "rectification_ordered"  # 发现问题，已责令整改
    CASE_FILED = "case_filed"  # 发现违法行为，已立案查处
    TRANSFERRED = "transferred"  # 移送有关部门
    NOT_FOUND = "not_found"  # 查无下落 / 已停产关闭


class SamplingItem(TimestampMixin, Base):
    """随机抽查事项清单 (DOMAIN-RULES rule 3): what may be inspected at random, on what basis, by whom, how."""

    __tablename__ = "sampling_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    legal_basis: Mapped[str] = mapped_column(sa.String(1000))
    implementing_body: Mapped[str] = mapped_column(sa.String(200), comment="抽查主体")
    content: Mapped[str] = mapped_column(sa.String(1000), comment="抽查内容")
    method: Mapped[str] = mapped_column(sa.String(400), comment="抽查方式")
    active: Mapped[bool] = mapped_column(default=True)


class ResultDisclosure(TimestampMixin, Base):
    """A published random-inspection result (rule 8): within 20 working days of the inspection's end."""

    __tablename__ = "result_disclosure"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[str] = mapped_column(sa.ForeignKey("inspection.id"), unique=True)
    draw_id: Mapped[str | None] = mapped_column(sa.ForeignKey("draw.id"), index=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id"), index=True)
    target_name: Mapped[str] = mapped_column(sa.String(200), comment="as published")
    target_uscc: Mapped[str] = mapped_column(sa.String(18))
    inspected_on: Mapped[dt.date]
    team_certificates: Mapped[list[Any]] = mapped_column(comment="certificate numbers of the team")
    findings: Mapped[str] = mapped_column(sa.String(2000))
    outcome: Mapped[Outcome] = mapped_column(_enum(Outcome))
    due_on: Mapped[dt.date] = mapped_column(comment="20 working days after the inspection")
    published_at: Mapped[dt.datetime]
    published_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    on_time: Mapped[bool]
