"""System tasks: a worker heartbeat that proves the broker → worker → database path end to end."""
from __future__ import annotations

import os
import socket
from typing import Any

import sqlalchemy as sa
from celery import shared_task

HEARTBEAT = "system.record_heartbeat"


@shared_task(name=HEARTBEAT, bind=True)
def record_heartbeat(self: Any, beat_id: str) -> dict[str, Any]:
    """Write the audit entry ``system:worker:heartbeat`` for ``beat_id`` once (idempotent on redelivery);
    returns which worker process did it."""
    from server.extensions import db
    from server.modules.audit import operations as audit
    from server.modules.audit.models import AuditEntry, AuditSubject

    worker = {"hostname": self.request.hostname or socket.gethostname(), "pid": os.getpid()}
    seen = db.session.scalar(
        sa.select(AuditEntry.idx).join(AuditSubject, AuditSubject.entry_idx == AuditEntry.idx)
        .where(AuditEntry.tag == "system:worker:heartbeat", AuditSubject.subject_type == "heartbeat",
               AuditSubject.subject_id == beat_id))
    if seen is not None:
        return {**worker, "beat_id": beat_id, "recorded": False}
    try:
        audit.record(db.session, "system:worker:heartbeat", subjects={"heartbeat": beat_id}, payload=worker,
                     actor=audit.system(HEARTBEAT))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return {**worker, "beat_id": beat_id, "recorded": True}
