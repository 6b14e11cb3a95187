"""Periodic sync work (Celery beat): compacting the change log devices pull from.

Tasks take no objects, are idempotent and commit themselves; in the embedded default (memory://
broker) there is no beat process, so operators run ``enforce sync compact`` from cron instead.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from flask import Flask, current_app, g

COMPACT = "sync.compact_change_log"


@shared_task(name=COMPACT, ignore_result=True)
def compact_change_log() -> dict[str, Any]:
    """Drop changes older than ``SYNC_CHANGE_RETENTION_DAYS``; older cursors get a full resync."""
    from server.extensions import db
    from server.modules.sync import operations as ops

    g.audit_actor = COMPACT
    try:
        return ops.compact_expired(db.session, commit=db.session.commit,
                                   retention=dt.timedelta(days=current_app.config["SYNC_CHANGE_RETENTION_DAYS"]))
    except Exception:
        db.session.rollback()
        raise


def schedule(app: Flask) -> None:
    """Daily at 03:20 (Asia/Shanghai, the Celery time zone): the quiet hour of the field teams."""
    from celery.schedules import crontab

    app.config["BEAT_SCHEDULE"]["sync-compact-change-log"] = {"task": COMPACT,
                                                              "schedule": crontab(hour=3, minute=20)}
    celery_app = app.extensions.get("celery")
    if celery_app is not None:
        celery_app.conf.beat_schedule = dict(app.config["BEAT_SCHEDULE"])
