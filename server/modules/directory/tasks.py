"""Directory imports as a task (Celery; a thread of the web process in the embedded default), with
progress the console polls."""
from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import g
from sqlalchemy.orm import Session

from server.core import errors
from server.core.tasks import send_long_after_commit
from server.extensions import db
from server.modules.directory import operations as ops
from server.modules.directory import schemas


@shared_task(name="directory.run_import", ignore_result=False)
def run_import(import_id: str) -> dict[str, Any]:
    """Idempotent: an import already finished is returned as it is. The task is the boundary: it
    commits the start, the progress, and the targets with their report and audit entry."""
    g.audit_actor = "directory.run_import"
    try:
        job = ops.run_import(db.session, import_id, schema=schemas.TargetInputSchema(), commit=db.session.commit)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        ops.fail_import(db.session, import_id, errors.InternalError(f"{type(exc).__name__}: {exc}"[:2000]))
        db.session.commit()
        raise
    return {"import": job.id, "status": job.status.value, "total": job.total_rows}


def send_import(session: Session, import_id: str) -> None:
    send_long_after_commit(session, run_import, import_id)
