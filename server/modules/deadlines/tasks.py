"""Daily deadline tasks (Celery beat): the overdue scan, and the recount of provisional clocks once
a year's official holiday schedule is loaded (DOMAIN-RULES D-1)."""
from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import Flask, g

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
            k: summary[k] for k in ("today", "overdue", "newly_overdue", "due_within_3_days",
                                    "overdue_provisional", "provisional")},
            actor=audit.system("deadlines.scan"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return summary


@shared_task(name="deadlines.recompute_provisional", ignore_result=False)
def recompute_provisional() -> dict[str, Any]:
    """Idempotent: a recounted clock is no longer provisional for the loaded year, so a second run
    finds nothing to change. One audit entry per changed clock, in the same transaction."""
    g.audit_actor = "deadlines.recompute_provisional"
    try:
        changed = ops.recompute_provisional(db.session)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return {"recomputed": len(changed), "changes": changed}


def schedule(app: Flask) -> None:
    from celery.schedules import crontab

    # the recount runs first, so the scan that follows reads official dates
    app.config["BEAT_SCHEDULE"].setdefault("deadlines-daily-recompute", {
        "task": "deadlines.recompute_provisional", "schedule": crontab(hour=6, minute=20)})
    app.config["BEAT_SCHEDULE"].setdefault("deadlines-daily-scan", {
        "task": "deadlines.scan", "schedule": crontab(hour=6, minute=30)})
    celery = app.extensions.get("celery")
    if celery is not None:
        celery.conf.beat_schedule = app.config["BEAT_SCHEDULE"]
