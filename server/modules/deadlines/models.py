"""Stored deadline clocks: one row per running clock, pauses and extensions as append-only events."""
from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, utcnow, value_enum


_enum = value_enum


class DeadlineStatus(str, enum.Enum):
    OPEN = "open"
    MET = "met"
    CANCELLED = "cancelled"


class DeadlineEventKind(str, enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"
    EXTEND = "extend"


class Deadline(Base):
    """A clock of one deadline type for one case (types and their calendars: deadline_types.json)."""

    __tablename__ = "deadline"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(sa.ForeignKey("penalty_case.id"), index=True)
    type_code: Mapped[str] = mapped_column(sa.String(40), comment="key of deadline_types.json")
    started_on: Mapped[dt.date] = mapped_column(comment="start day (not counted)")
    started_at: Mapped[dt.datetime | None] = mapped_column(comment="start instant, for HOURS clocks")
    due_on: Mapped[dt.date | None] = mapped_column(index=True, comment="computed due day; null while paused")
    due_at: Mapped[dt.datetime | None] = mapped_column(comment="computed due instant for HOURS clocks")
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"), index=True,
                                                    comment="person who must act")
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("unit.id"), index=True, comment="unit answerable for it")
    status: Mapped[DeadlineStatus] = mapped_column(_enum(DeadlineStatus), default=DeadlineStatus.OPEN)
    met_on: Mapped[dt.date | None] = mapped_column(comment="day the act was done")
    late: Mapped[bool | None] = mapped_column(comment="met after the due day")
    overdue_seen_on: Mapped[dt.date | None] = mapped_column(comment="first daily scan that found it overdue")
    provisional: Mapped[bool] = mapped_column(default=False, server_default=sa.false(),
                                              comment="counted with the provisional calendar rule: a year it "
                                                      "reaches has no official holiday schedule yet (D-1)")
    provisional_years: Mapped[list[int] | None] = mapped_column(sa.JSON(none_as_null=True),
                                                                comment="the years assumed; null unless provisional")
    version: Mapped[int] = mapped_column(default=1)

    events: Mapped[list[DeadlineEvent]] = relationship(order_by="DeadlineEvent.id", viewonly=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.Index("ix_deadline_open_due", "status", "due_on"),
        sa.CheckConstraint("status != 'met' OR met_on IS NOT NULL", name="met_has_day"),
        sa.CheckConstraint("provisional = (provisional_years IS NOT NULL)", name="provisional_names_years"),
    )


class DeadlineEvent(Base):
    """A pause, resume or reasoned extension of a clock (DOMAIN-RULES rule 24). Never edited."""

    __tablename__ = "deadline_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    deadline_id: Mapped[int] = mapped_column(sa.ForeignKey("deadline.id"), index=True)
    kind: Mapped[DeadlineEventKind] = mapped_column(_enum(DeadlineEventKind))
    on: Mapped[dt.date] = mapped_column(comment="day of the pause, resume or extension")
    at: Mapped[dt.datetime | None] = mapped_column(comment="instant, for HOURS clocks")
    reason_code: Mapped[str | None] = mapped_column(sa.String(30), comment="pause reason (hearing, appraisal…)")
    amount: Mapped[int | None] = mapped_column(comment="extension in the clock's unit")
    reason: Mapped[str] = mapped_column(sa.String(400))
    by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("kind != 'extend' OR amount > 0", name="extension_positive"),)
