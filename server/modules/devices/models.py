from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.core.db import Base, new_uuid, utcnow
from server.modules.users.models import User


class Device(Base):
    """A phone or tablet registered to exactly one inspector; revoking it cuts it off at once."""

    __tablename__ = "device"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True, comment="raw Ed25519 public key")
    label: Mapped[str] = mapped_column(sa.String(100), comment="what the inspector calls it")
    platform: Mapped[str | None] = mapped_column(sa.String(40))
    app_version: Mapped[str | None] = mapped_column(sa.String(40))
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    registered_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"), comment="staff who registered it")
    last_seen_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(400))
    token_generation: Mapped[int] = mapped_column(
        default=1, server_default=sa.text("1"),
        comment="bump to end every access token issued so far (a reused refresh token)")

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    __table_args__ = (sa.CheckConstraint("length(public_key) = 32", name="ed25519_key_length"),)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class DeviceRefreshToken(Base):
    """A single-use refresh token; a used one is replaced by its successor (rotation)."""

    __tablename__ = "device_refresh_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, comment="sha256 hex of the token")
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(comment="end of the offline grace period")
    used_at: Mapped[dt.datetime | None] = mapped_column(comment="set when exchanged; reuse revokes the family")

    __table_args__ = (sa.CheckConstraint("length(token_hash) = 64", name="sha256_hex"),)


class DeviceKey(Base):
    """A key a device signed with before a re-enrolment gave it a new one. Its signatures stay valid
    for what it signed while it was the device's key (captured up to ``retired_at``)."""

    __tablename__ = "device_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("device.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True, comment="raw Ed25519 public key")
    retired_at: Mapped[dt.datetime] = mapped_column(comment="end of its validity: the re-enrolment")
    retired_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"), comment="supervisor who re-enrolled")
    reason: Mapped[str] = mapped_column(sa.String(400))

    __table_args__ = (sa.CheckConstraint("length(public_key) = 32", name="ed25519_key_length"),)
