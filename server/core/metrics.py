"""Prometheus metrics at ``GET /metrics`` for operators (not the public).

* Access: only with ``ENFORCE_METRICS_TOKEN`` set, and only for a request carrying it as
  ``Authorization: Bearer <token>``; otherwise 404, so the endpoint does not exist for the public.
* gunicorn: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder writable by the service), every
  worker writes its counters there and a scrape adds them up (``server/gunicorn_conf.py`` clears the
  folder at start and drops a dead worker's gauges).
* Counted where they happen: request latency by endpoint, method and status; sync pushes (operations
  by result) and pulls (changes), and their bytes; upload bytes and uploads receiving now; task
  failures (in the worker: kept in Redis so that the web's scrape sees them); the database pool's
  connections in use, per process.
* Read at scrape time (one process answers, so these are not summed): task queue depth, the audit
  log's size and the age of its last signed checkpoint, stalled uploads.
"""
from __future__ import annotations

import hmac
import os
import time
from typing import Any, Iterator

from flask import Blueprint, Flask, Response, abort, current_app, g, request

MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROC:  # the worker and beat containers share the image's setting without gunicorn's hook
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
FAILURES_KEY = "enforce:metrics:task_failures"
STALLED_AFTER_S = 3600

blp = Blueprint("metrics", __name__)

from prometheus_client import Counter, Gauge, Histogram  # noqa: E402  (after MULTIPROC is read)

REQUEST_SECONDS = Histogram(
    "enforce_http_request_duration_seconds", "Time to answer a request (to the first byte of a streamed body)",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
SYNC_OPERATIONS = Counter("enforce_sync_push_operations", "Operations pushed by devices, by result status",
                          ["status"])
SYNC_CONFLICTS = Counter("enforce_sync_conflicts", "Pushed operations answered with a conflict")
SYNC_PULLED = Counter("enforce_sync_pull_changes", "Changes sent to devices by pulls")
SYNC_REQUESTS = Counter("enforce_sync_requests", "Sync pushes and pulls", ["direction"])
SYNC_BYTES = Counter("enforce_sync_bytes", "Sync bodies (decompressed), pushed and pulled", ["direction"])
UPLOAD_BYTES = Counter("enforce_upload_bytes", "Evidence bytes received by tus uploads")
UPLOADS_RECEIVING = Gauge("enforce_uploads_receiving", "tus PATCH requests streaming bytes in now",
                          multiprocess_mode="livesum")
TASK_FAILURES = Counter("enforce_task_failures", "Background tasks that raised (in-process tasks)", ["task"])
DB_POOL_IN_USE = Gauge("enforce_db_pool_connections_in_use", "Database connections checked out of the pool",
                       multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("enforce_db_pool_size", "Configured pool size per process", multiprocess_mode="livesum")


def init_app(app: Flask) -> None:
    """Time every request (registered before the access check, so refusals are timed too)."""

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None and request.endpoint != "metrics.metrics":
            REQUEST_SECONDS.labels(request.endpoint or "unmatched", request.method,
                                   str(response.status_code)).observe(time.perf_counter() - started)
        _pool(app)
        return response

    app.register_blueprint(blp)
    _count_task_failures(app)


def _pool(app: Flask) -> None:
    from server.extensions import db

    pool = getattr(db.engine, "pool", None)  # the test suite binds a Connection in its place
    checked_out = getattr(pool, "checkedout", None)
    if checked_out is not None:
        DB_POOL_IN_USE.set(checked_out())
        DB_POOL_SIZE.set(pool.size() if hasattr(pool, "size") else 0)


def _count_task_failures(app: Flask) -> None:
    from celery.signals import task_failure

    def failed(sender: Any = None, **_: Any) -> None:
        name = getattr(sender, "name", "unknown")
        TASK_FAILURES.labels(name).inc()
        broker = app.config["BROKER_URL"]
        if broker.startswith(("redis://", "rediss://")):
            try:
                import redis

                redis.Redis.from_url(broker, socket_connect_timeout=2).hincrby(FAILURES_KEY, name, 1)
            except Exception:  # noqa: BLE001 - a metric must never fail the task's own handling
                pass

    task_failure.connect(failed, weak=False)


# ---- sync and upload hooks (called by the device API) -------------------------------------------

def sync_pushed(results: list[dict[str, Any]], body_bytes: int) -> None:
    SYNC_REQUESTS.labels("push").inc()
    SYNC_BYTES.labels("push").inc(body_bytes)
    for result in results:
        status = str(result.get("status", "unknown"))
        SYNC_OPERATIONS.labels(status).inc()
        if status == "conflict":
            SYNC_CONFLICTS.inc()


def sync_pulled(changes: int, body_bytes: int) -> None:
    SYNC_REQUESTS.labels("pull").inc()
    SYNC_PULLED.inc(changes)
    SYNC_BYTES.labels("pull").inc(body_bytes)


# ---- the scrape ---------------------------------------------------------------------------------

class _StateCollector:
    """Values read from the database and the broker when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        audit_size, checkpoint_age, stalled = self._database()
        yield GaugeMetricFamily("enforce_audit_log_entries", "Entries in the audit log", value=audit_size)
        yield GaugeMetricFamily("enforce_audit_checkpoint_age_seconds",
                                "Seconds since the last signed checkpoint (-1: none yet)", value=checkpoint_age)
        yield GaugeMetricFamily("enforce_uploads_stalled",
                                f"Active uploads started over {STALLED_AFTER_S} s ago and not finished", value=stalled)
        depth = GaugeMetricFamily("enforce_task_queue_depth", "Tasks waiting in the broker's queue", labels=["queue"])
        failures = CounterMetricFamily("enforce_worker_task_failures", "Tasks that raised in Celery workers",
                                       labels=["task"])
        for queue, waiting in self._queues():
            depth.add_metric([queue], waiting)
        for task, count in self._worker_failures():
            failures.add_metric([task], count)
        yield depth
        yield failures

    def _database(self) -> tuple[int, float, int]:
        import datetime as dt

        import sqlalchemy as sa

        from server.core.db import utcnow
        from server.extensions import db
        from server.modules.audit.models import AuditCheckpoint, AuditHead
        from server.modules.evidence.models import Upload, UploadStatus

        try:
            size = db.session.scalar(sa.select(AuditHead.size).where(AuditHead.id == 1)) or 0
            last = db.session.scalar(sa.select(sa.func.max(AuditCheckpoint.created_at)))
            now = utcnow()
            stalled = db.session.scalar(sa.select(sa.func.count(Upload.id)).where(
                Upload.status == UploadStatus.ACTIVE,
                Upload.created_at < now - dt.timedelta(seconds=STALLED_AFTER_S))) or 0
        finally:
            db.session.rollback()
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        return size, (now - last).total_seconds() if last else -1.0, stalled

    def _redis(self) -> Any:
        broker = self.app.config["BROKER_URL"]
        if not broker.startswith(("redis://", "rediss://")):
            return None
        import redis

        return redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=2)

    def _queues(self) -> list[tuple[str, int]]:
        client = self._redis()
        if client is None:
            return [("in-process", 0)]
        names = {"celery"} | {q.name for q in (self.app.extensions["celery"].conf.task_queues or [])}
        return [(name, int(client.llen(name))) for name in sorted(names)]

    def _worker_failures(self) -> list[tuple[str, int]]:
        client = self._redis()
        if client is None:
            return []
        return sorted((k.decode(), int(v)) for k, v in client.hgetall(FAILURES_KEY).items())


@blp.get("/metrics")
def metrics() -> Any:
    """Prometheus text format, for the operator's scraper only (see the module docstring)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    token = current_app.config["METRICS_TOKEN"]
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(offered.encode(), token.encode()):
        abort(404)
    if MULTIPROC:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    state = CollectorRegistry()
    state.register(_StateCollector(current_app._get_current_object()))  # type: ignore[attr-defined]
    return Response(generate_latest(registry) + generate_latest(state), mimetype=CONTENT_TYPE_LATEST)
