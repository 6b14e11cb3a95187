"""Celery: a real worker process fed through Redis writes to the shared database; after-commit sending."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from server.core.tasks import send_after_commit
from server.extensions import db
from server.modules.system import tasks as system_tasks
from tests import db as testdb
from tests.helpers import audit_entries

BROKER = testdb.redis_url()
ROOT = Path(__file__).resolve().parent.parent


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_a_worker_process_does_the_work_through_redis(fresh_app, tmp_path):
    if not _redis_up():
        pytest.skip(f"Redis is not reachable at {BROKER} (.ci/run starts it; locally: redis-server)")
    app = fresh_app("celery", BROKER_URL=BROKER)
    celery_app = app.extensions["celery"]
    assert not celery_app.conf.task_always_eager
    # A queue of our own, so a concurrent test run or a stray worker cannot take the task.
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENFORCE_")}
    env.update({
        "ENFORCE_ENV": "test",
        "ENFORCE_DATABASE_URL": app.config["DATABASE_URL"],
        "ENFORCE_BROKER_URL": BROKER,
        "ENFORCE_SECRET_KEY": app.config["SECRET_KEY"],
        "ENFORCE_INSTANCE_PATH": str(tmp_path),
        "ENFORCE_STORAGE_URL": app.config["STORAGE_URL"],
        "ENFORCE_AUDIT_LOG_KEY": app.config["AUDIT_LOG_KEY"],
        "ENFORCE_LOG_JSON": "false",
    })
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below, after the worker
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "server.celery_app:celery", "worker",
         "--pool=solo", "-c1", "-Q", queue, "-n", f"{queue}@%h", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    beat_id = uuid.uuid4().hex
    try:
        result = celery_app.send_task(system_tasks.HEARTBEAT, args=[beat_id], queue=queue)
        try:
            outcome = result.get(timeout=60)
        except Exception:  # noqa: BLE001 - show the worker's log, then fail
            log.flush()
            pytest.fail("worker did not answer:\n" + (tmp_path / "worker.log").read_text(errors="replace")[-4000:])
        assert outcome["pid"] == worker.pid != os.getpid()
        assert outcome["hostname"].startswith(queue)
        assert outcome == {**outcome, "beat_id": beat_id, "recorded": True}

        # Redelivery is harmless: the second run finds the entry and writes nothing.
        again = celery_app.send_task(system_tasks.HEARTBEAT, args=[beat_id], queue=queue).get(timeout=60)
        assert again["recorded"] is False
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
        celery_app.connection_for_write().channel().queue_delete(queue)

    with app.app_context():
        [entry] = audit_entries("system:worker:heartbeat", heartbeat=beat_id)
        assert entry["payload"] == {"hostname": outcome["hostname"], "pid": worker.pid}
        assert entry["actor"] == {"kind": "system", "id": "system.record_heartbeat"}
        db.session.remove()


def _heartbeat(app):
    """The task bound to this app's Celery (the shared-task proxy follows the last app created)."""
    return app.extensions["celery"].tasks[system_tasks.HEARTBEAT]


def test_heartbeat_runs_in_process_in_the_embedded_default(app, db_session):
    assert app.extensions["celery"].conf.task_always_eager
    outcome = _heartbeat(app).delay("embedded-beat").get()
    assert outcome["pid"] == os.getpid() and outcome["recorded"] is True
    assert len(audit_entries("system:worker:heartbeat", heartbeat="embedded-beat")) == 1


def test_send_after_commit_sends_only_after_commit(app, db_session):
    send_after_commit(db_session, _heartbeat(app), "after-commit-beat")
    assert audit_entries("system:worker:heartbeat", heartbeat="after-commit-beat") == []  # not yet
    db_session.commit()
    assert len(audit_entries("system:worker:heartbeat", heartbeat="after-commit-beat")) == 1


def test_send_after_commit_drops_on_rollback(app, db_session):
    db_session.execute(sa.text("SELECT 1"))
    send_after_commit(db_session, _heartbeat(app), "rolled-back-beat")
    db_session.rollback()
    db_session.commit()  # a later commit must not send what the rollback dropped
    assert audit_entries("system:worker:heartbeat", heartbeat="rolled-back-beat") == []


@pytest.mark.redis
def test_healthz_checks_a_redis_broker(tmp_path):
    if not _redis_up():
        pytest.skip(f"Redis is not reachable at {BROKER}")
    app = testdb.make_app(f"sqlite:///{tmp_path / 'h.db'}", tmp_path, BROKER_URL=BROKER)
    response = app.test_client().get("/healthz")
    assert response.json["checks"]["broker"] == {**response.json["checks"]["broker"], "ok": True, "detail": "redis"}


def test_healthz_reports_a_dead_broker_quickly(tmp_path):
    app = testdb.make_app(f"sqlite:///{tmp_path / 'h.db'}", tmp_path, BROKER_URL="redis://127.0.0.1:1/0")
    started = time.monotonic()
    response = app.test_client().get("/healthz")
    assert time.monotonic() - started < 10
    assert response.status_code == 503 and response.json["status"] == "degraded"
    assert response.json["checks"]["broker"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True


def test_send_after_commit_uses_the_committing_apps_celery(app, db_session, tmp_path):
    """Another app created later (its Celery becomes the default) must not receive this app's task."""
    testdb.make_app(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    send_after_commit(db_session, system_tasks.record_heartbeat, "proxy-beat")  # the shared-task proxy
    db_session.commit()
    assert len(audit_entries("system:worker:heartbeat", heartbeat="proxy-beat")) == 1
