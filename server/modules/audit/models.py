from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, utcnow


class AuditEntry(Base):
    """One leaf of the audit log. Never updated, never deleted: a correction is a new entry."""

    __tablename__ = "audit_entry"

    idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False,
                                     comment="0-based leaf index; gap-free, in commit order")
    tag: Mapped[str] = mapped_column(sa.String(120), index=True, comment="source:subject:action")
    actor_kind: Mapped[str] = mapped_column(sa.String(16), comment="user | device | system | anonymous")
    actor_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(index=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    supersedes: Mapped[int | None] = mapped_column(sa.BigInteger, comment="entry this one corrects")
    body: Mapped[bytes] = mapped_column(sa.LargeBinary, comment="canonical JSON: the leaf data")
    leaf_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), comment="SHA-256(0x00 || body)")

    __table_args__ = (
        sa.CheckConstraint("idx >= 0", name="idx_nonnegative"),
        sa.CheckConstraint("length(leaf_hash) = 32", name="leaf_hash_sha256"),
        sa.CheckConstraint("tag LIKE '%:%:%'", name="tag_typed"),
    )


class AuditSubject(Base):
    """Index of the entities an entry is about, so each case/evidence/inspection shows its history.

    No foreign key to ``audit_entry``: the sequencer writes both in one statement and entries are
    never deleted, while PostgreSQL's per-row key check ran a plan cached for an empty log (a
    sequential scan per subject row: 11 s for a draw's 40,000 subjects)."""

    __tablename__ = "audit_subject"

    entry_idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    subject_type: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    subject_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)

    __table_args__ = (sa.Index("ix_audit_subject_lookup", "subject_type", "subject_id", "entry_idx"),)


class AuditNode(Base):
    """Hash of a perfect subtree of height ``level`` >= 1 covering leaves [idx·2^level, (idx+1)·2^level)."""

    __tablename__ = "audit_node"

    level: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))

    __table_args__ = (sa.CheckConstraint("level >= 1", name="level_positive"),)


class AuditHead(Base):
    """The single row whose lock sequences writers; holds the current size and root."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(
        sa.LargeBinary, default=b"", server_default=sa.text("''"),
        comment="right-edge perfect-subtree hashes, largest first, 32 bytes each (read with the lock)")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)


class AuditCheckpoint(Base):
    """A signed checkpoint (C2SP tlog-checkpoint signed note). Every one is kept."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    note: Mapped[str] = mapped_column(sa.Text, comment="the signed note text, byte for byte")
    key_id: Mapped[str] = mapped_column(sa.String(16), comment="hex key hash of the log key")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditCosignature(Base):
    """A witness's cosignature (for example the procuratorate's) over a stored checkpoint."""

    __tablename__ = "audit_cosignature"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("audit_checkpoint.id"), index=True)
    witness_name: Mapped[str] = mapped_column(sa.String(200))
    signature_line: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any] | None]


class AuditWitness(Base):
    """An outside party (for example the procuratorate) whose Ed25519 key may cosign checkpoints."""

    __tablename__ = "audit_witness"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True,
                                      comment="signed-note key name, e.g. witness.example.gov.cn/w1")
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary(32), comment="raw 32-byte Ed25519 public key")
    added_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"), comment="the admin who added it")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("length(public_key) = 32", name="public_key_ed25519"),)
