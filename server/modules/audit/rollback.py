"""A restored log must not silently rewrite history.

After a restore from an older backup the log may be shorter than a checkpoint the public has already
seen, or differ from it. ``check_published`` compares the restored log with the latest published
checkpoint (kept in every backup; the operator may supply a newer one) and, when the log does not
extend it, records ``system:audit_log:rollback_detected``. From then on no checkpoint is signed
(``checkpoints.publish`` refuses) until an administrator records the rollback
(``admin:audit_log:rollback_recorded``, with a reason): the public sees the fork explained in the log
itself instead of a new checkpoint that contradicts the old one.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Role
from server.modules.audit import operations as audit
from server.modules.audit import verifier
from server.modules.audit.models import AuditEntry

DETECTED = "system:audit_log:rollback_detected"
RECORDED = "admin:audit_log:rollback_recorded"

RollbackUnrecorded = errors.error_code(
    "audit.rollback_unrecorded", 409,
    "恢复后的记录短于或不同于已公开的检查点；管理员登记回退之前不签署新的检查点",
    "The restored log is shorter than, or differs from, a checkpoint already published; no checkpoint "
    "is signed until an administrator records the rollback")
NoRollbackPending = errors.error_code("audit.no_rollback_pending", 409, "没有待登记的回退",
                                      "No detected rollback is waiting to be recorded")
BadPublishedCheckpoint = errors.error_code("audit.bad_published_checkpoint", 422,
                                           "所提供的检查点无法用本日志的公钥验证",
                                           "The checkpoint supplied does not verify with this log's key")
AdminRequired = errors.error_code("audit.rollback_needs_admin", 403, "只有管理员可以登记回退",
                                  "Only an administrator can record a rollback")


@dataclass(frozen=True)
class Comparison:
    published_size: int
    restored_size: int
    consistent: bool
    entry_idx: int | None = None  # the rollback_detected entry, when one was recorded


def _last_idx(session: Session, tag: str) -> int | None:
    return session.scalar(sa.select(sa.func.max(AuditEntry.idx)).where(AuditEntry.tag == tag))


def pending(session: Session) -> int | None:
    """The index of a detected rollback no administrator has recorded yet, if any."""
    detected = _last_idx(session, DETECTED)
    if detected is None:
        return None
    recorded = _last_idx(session, RECORDED)
    return detected if recorded is None or recorded < detected else None


def require_none_pending(session: Session) -> None:
    idx = pending(session)
    if idx is not None:
        raise RollbackUnrecorded(detected_entry=idx)


def check_published(session: Session, config: Any, note: str, *, source: str) -> Comparison:
    """Compare the stored log with a published checkpoint ``note`` (signed by this log's key)."""
    from server.modules.audit.checkpoints import check_log_signature, log_verifier_key

    try:
        published = check_log_signature(note, log_verifier_key(config))
    except verifier.VerificationError as exc:
        raise BadPublishedCheckpoint(exc.en) from None
    size, _ = audit.head(session)
    consistent = published.size <= size and audit.root_at(session, published.size) == published.root
    if consistent:
        return Comparison(published.size, size, True)
    audit.record(session, DETECTED, actor=audit.system("restore"), payload={
        "published_size": published.size, "published_root": base64.b64encode(published.root).decode(),
        "restored_size": size, "source": source,
        "why": "shorter" if published.size > size else "different_root"})
    session.flush()
    return Comparison(published.size, size, False)


def record_rollback(session: Session, *, admin_username: str, reason: str) -> int:
    from server.modules.users.operations import user_by_name

    user = user_by_name(session, admin_username)
    if user is None or user.role is not Role.ADMIN or not user.active:
        raise AdminRequired(username=admin_username)
    detected = pending(session)
    if detected is None:
        raise NoRollbackPending()
    if not reason.strip():
        raise errors.ValidationFailed(fields={"reason": ["必填 / required"]})
    detected_entry = audit.read_entry(session, detected, audit.EXPORT_READER)  # a system entry, never sealed
    detected_body = detected_entry.body if detected_entry is not None else b"{}"
    audit.record(session, RECORDED, subjects={"user": user.id}, actor=audit.Actor("user", str(user.id)),
                 payload={"detected_entry": detected, "reason": reason.strip(),
                          "detected": json.loads(detected_body).get("payload")})
    return detected
