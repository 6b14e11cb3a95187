"""GET /healthz: is the database, the broker and the blob store reachable; and warnings that need
an operator but do not make the service unhealthy (a missing holiday schedule)."""
from __future__ import annotations

import time
from typing import Any, Callable

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from server.core import storage
from server.core.calendar import get_calendar, local_today, schedule_warnings

blp = Blueprint("health", __name__)


def _check(probe: Callable[[], str | None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable", reported, not raised
        return {"ok": False, "error": f"{exc.__class__.__name__}: {str(exc)[:200]}",
                "ms": round((time.perf_counter() - started) * 1000, 1)}
    return {"ok": True, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> str:
    from server.extensions import db

    db.session.execute(sa.text("SELECT 1"))
    db.session.rollback()
    return db.session.get_bind().dialect.name


def _broker() -> str:
    celery_app = current_app.extensions["celery"]
    if celery_app.conf.task_always_eager:
        return "in-process (memory://)"
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=3)
    return connection.transport_cls if isinstance(connection.transport_cls, str) else "redis"


def _storage() -> str:
    url = current_app.config["STORAGE_URL"]
    storage.get_store().health()
    return url.split("://", 1)[0]


def space_warnings() -> list[dict[str, object]]:
    """The upload folder and local blobs with less free space than ``STORAGE_MIN_FREE_BYTES``: a full
    disk refuses uploads (507 storage.full) until space returns, so warn before it does."""
    from pathlib import Path

    folders = {"uploads": Path(current_app.config["UPLOAD_DIR"])}
    store = storage.get_store()
    if isinstance(store, storage.LocalStore):
        folders["blobs"] = store.root
    threshold = current_app.config["STORAGE_MIN_FREE_BYTES"]
    warnings: list[dict[str, object]] = []
    for name, folder in folders.items():
        try:
            free = storage.free_bytes(folder)
        except OSError as exc:
            free, error = 0, f"{exc.__class__.__name__}: {exc}"
        else:
            error = None
        if free < threshold:
            warnings.append({"code": "storage.low_space", "folder": name, "free_bytes": free,
                             "threshold_bytes": threshold, **({"error": error} if error else {}),
                             "message_zh": f"存储空间不足（{name}：剩余 {free // 2**20} MiB）：空间用尽时上传将被拒绝（507）",
                             "message_en": f"Low free space ({name}: {free // 2**20} MiB left): uploads are refused "
                                           "with 507 once it runs out"})
    return warnings


@blp.get("/healthz")
def healthz() -> Any:
    checks = {"database": _check(_database), "broker": _check(_broker), "storage": _check(_storage)}
    ok = all(check["ok"] for check in checks.values())
    warnings = schedule_warnings(get_calendar(), local_today()) + space_warnings()
    response = jsonify({"status": "ok" if ok else "degraded", "checks": checks, "warnings": warnings})
    response.status_code = 200 if ok else 503
    return response
