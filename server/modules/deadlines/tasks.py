"""Daily deadline scan (Celery beat): lists what is due and overdue per person and unit."""
from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import Flask

from server.core.calendar import local_today
from server.extensions import db
from server.modules.audit import operations as audit
from server.modules.deadlines import operations as ops


@shared_task(name="deadlines.scan", ignore_result=False)
def scan() -> dict[str, Any]:
    """Idempotent: an overdue clock is stamped once; the summary goes to the audit log."""
    try:
        summary = ops.scan(db.session, local_today())
        audit.record(db.session, "task:deadline:scanned", payload={
            k: summary[k] for k in ("today", "overdue", "newly_overdue", "due_within_3_days")},
            actor=audit.system("deadlines.scan"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return summary


def schedule(app: Flask) -> None:
    from celery.schedules import crontab

    app.config["BEAT_SCHEDULE"].setdefault("deadlines-daily-scan", {
        "task": "deadlines.scan", "schedule": crontab(hour=6, minute=30)})
    celery = app.extensions.get("celery")
    if celery is not None:
        celery.conf.beat_schedule = app.config["BEAT_SCHEDULE"]
