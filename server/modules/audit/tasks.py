"""Periodic signed checkpoints (Celery beat, every ``AUDIT_CHECKPOINT_INTERVAL_S`` seconds)."""
from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import Flask, current_app

PUBLISH = "server.modules.audit.tasks.publish_checkpoint"


@shared_task(name=PUBLISH, ignore_result=True)
def publish_checkpoint() -> int:
    """Sign the current head; idempotent (an unchanged head keeps its checkpoint). Returns its id."""
    from server.extensions import db
    from server.modules.audit import checkpoints

    try:
        checkpoint = checkpoints.publish(db.session, current_app.config)
        db.session.commit()
        return checkpoint.id
    except Exception:
        db.session.rollback()
        raise


def schedule(app: Flask) -> None:
    """Add the checkpoint task to the app's beat schedule (and to Celery's, already configured)."""
    entry: dict[str, Any] = {"task": PUBLISH, "schedule": float(app.config["AUDIT_CHECKPOINT_INTERVAL_S"])}
    app.config["BEAT_SCHEDULE"]["audit-checkpoint"] = entry
    celery_app = app.extensions.get("celery")
    if celery_app is not None:
        celery_app.conf.beat_schedule = dict(app.config["BEAT_SCHEDULE"])
