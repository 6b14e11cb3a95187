"""Building evidence packages in the background (Celery), with progress the web console can poll."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from celery import shared_task
from flask import current_app, g
from sqlalchemy.orm import Session

from server.core.tasks import send_long_after_commit
from server.extensions import db
from server.modules.transfers import package as package_ops
from server.modules.transfers.models import EvidencePackage, PackageStatus


@shared_task(name="transfers.build_package", ignore_result=False)
def build_package(package_id: str) -> dict[str, Any]:
    """Idempotent: a package already built is returned as it is. The task is the boundary: it
    commits the seal entry, then the newer checkpoint, and progress on the way."""
    g.audit_actor = "transfers.build_package"
    try:
        package = package_ops.build(db.session, package_id, current_app.config, commit=db.session.commit)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        db.session.execute(sa.update(EvidencePackage).where(EvidencePackage.id == package_id)
                           .values(status=PackageStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]))
        db.session.commit()
        raise
    return {"package": package.id, "status": package.status.value, "volumes": package.volumes}


def send_build(session: Session, package_id: str) -> None:
    """After commit; in the embedded default on a thread of the web process, so the package page shows progress."""
    send_long_after_commit(session, build_package, package_id)
