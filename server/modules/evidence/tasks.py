"""Background work on evidence: metadata and plausibility, thumbnails, Merkle roots, fixity, expiry.

Tasks take ids (digests), are idempotent and are sent after commit
(``server.core.tasks.send_after_commit``); in the embedded default they run in-process.
Periodic ones (fixity sweep, upload expiry) are in the beat schedule added by ``schedule``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import sqlalchemy as sa
from celery import shared_task
from flask import Flask

FIXITY = "server.modules.evidence.tasks.fixity_sweep"
EXPIRE = "server.modules.evidence.tasks.expire_uploads"
log = logging.getLogger(__name__)


# Transient failures a retry cures: a lost or deadlocked database connection (psycopg's
# TransactionRollback and OperationalError both arrive as SQLAlchemy's OperationalError), a store
# that did not answer (OSError covers the local disk and socket errors; botocore retries itself).
TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 300, "retry_jitter": True,
         "max_retries": 6}


@shared_task(bind=True, name="server.modules.evidence.tasks.process_blob", ignore_result=True, **RETRY)
def process_blob(self: Any, digest: str) -> None:
    """Everything to do once new bytes are stored: EXIF, plausibility flags, thumbnail, chunk tree.
    The task is the boundary: it commits once, and rolls back before any retry. On a worker a
    transient failure is retried by Celery with backoff; run eagerly (the embedded default), where
    Celery propagates instead of retrying, it is retried here, briefly."""
    from server.extensions import db
    from server.modules.evidence import pipeline

    attempts = 1 + (RETRY["max_retries"] if self.request.is_eager else 0)
    for attempt in range(attempts):
        try:
            pipeline.process_blob(db.session, digest)
            db.session.commit()
            return
        except TRANSIENT:
            db.session.rollback()
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
        except Exception:
            db.session.rollback()
            raise


@shared_task(name=FIXITY, ignore_result=True, **RETRY)
def fixity_sweep(batch: int = 500) -> int:
    """Re-hash the stored blobs checked longest ago (never-checked first); alerts on any mismatch."""
    from server.extensions import db
    from server.modules.evidence import operations as ops
    from server.modules.evidence.models import Blob, EvidenceItem, EvidenceStatus

    live = sa.select(EvidenceItem.blob_sha256).where(EvidenceItem.status != EvidenceStatus.DELETED)
    blobs = db.session.scalars(sa.select(Blob).where(Blob.sha256.in_(live))
                               .order_by(Blob.last_fixity_at.is_not(None), Blob.last_fixity_at).limit(batch)).all()
    try:
        for blob in blobs:
            ops.fixity_check(db.session, blob)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return len(blobs)


@shared_task(name=EXPIRE, ignore_result=True)
def expire_uploads() -> int:
    from server.extensions import db
    from server.modules.evidence import uploads

    count = uploads.expire(db.session)
    db.session.commit()
    return count


def schedule(app: Flask) -> None:
    """Add the fixity sweep (hourly, 500 blobs) and upload expiry (hourly) to the beat schedule; in
    the embedded default (no beat runs) each web process expires uploads on a thread of its own."""
    entries: dict[str, Any] = {"evidence-fixity": {"task": FIXITY, "schedule": 3600.0},
                               "evidence-expire-uploads": {"task": EXPIRE, "schedule": 3600.0}}
    app.config["BEAT_SCHEDULE"].update(entries)
    celery_app = app.extensions.get("celery")
    if celery_app is not None:
        celery_app.conf.beat_schedule = dict(app.config["BEAT_SCHEDULE"])
    if app.config["BROKER_URL"].startswith("memory://") and app.config["UPLOAD_EXPIRE_INTERVAL_S"] > 0:
        _expire_in_process(app, app.config["UPLOAD_EXPIRE_INTERVAL_S"])


def _expire_in_process(app: Flask, interval: int) -> None:
    """Start the expiry thread at the first request of each process (gunicorn forks after import)."""
    started: dict[str, int] = {}
    guard = threading.Lock()

    def ensure_started() -> None:
        if started.get("pid") == os.getpid():
            return
        with guard:
            if started.get("pid") != os.getpid():
                started["pid"] = os.getpid()
                threading.Thread(target=_expire_loop, args=(app, interval), name="upload-expiry", daemon=True).start()

    app.before_request(ensure_started)


def _expire_loop(app: Flask, interval: int) -> None:
    from server.extensions import db
    from server.modules.evidence import uploads

    while True:
        time.sleep(interval)
        with app.app_context():
            try:
                if uploads.expire(db.session):
                    db.session.commit()
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                db.session.rollback()
                log.exception("expiring uploads failed")
            finally:
                db.session.remove()
