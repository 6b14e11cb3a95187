"""GET /metrics (issue 16, item 5): for the operator's token only; request latency by endpoint and
status, sync, uploads, tasks, audit log and database pool; summed over gunicorn workers."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import db as testdb

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "operator-metrics-token-0123456789"


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in the scrape")


def test_metrics_answer_only_the_operator_token(app, client):
    app.config["METRICS_TOKEN"] = TOKEN
    try:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 404
        client.get("/healthz")
        client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
        scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scrape.status_code == 200
        text = scrape.get_data(as_text=True)
    finally:
        app.config["METRICS_TOKEN"] = None
    assert _value(text, "enforce_http_request_duration_seconds_count", endpoint="health.healthz", status="200") >= 1
    assert _value(text, "enforce_http_request_duration_seconds_count", endpoint="auth.Login", status="401") >= 1
    assert _value(text, "enforce_audit_log_entries") >= 0
    assert _value(text, "enforce_audit_checkpoint_age_seconds") != 0
    assert _value(text, "enforce_uploads_stalled") == 0
    assert _value(text, "enforce_task_queue_depth", queue="in-process") == 0
    assert "enforce_db_pool_connections_in_use" in text
    for name in ("enforce_sync_push_operations", "enforce_sync_bytes", "enforce_upload_bytes",
                 "enforce_uploads_receiving", "enforce_task_failures"):
        assert f"# TYPE {name}" in text


def test_with_no_token_configured_there_is_no_metrics_endpoint(client):
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(180)
def test_gunicorn_workers_are_added_up(fresh_app, tmp_path):
    app = fresh_app("metrics")
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "stale.db").write_bytes(b"left by an earlier run")  # cleared by on_starting
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORCE_")}
    env.update(ENFORCE_ENV="test", ENFORCE_DATABASE_URL=app.config["DATABASE_URL"],
               ENFORCE_SECRET_KEY=app.config["SECRET_KEY"], ENFORCE_INSTANCE_PATH=str(tmp_path),
               ENFORCE_AUDIT_LOG_KEY=app.config["AUDIT_LOG_KEY"], ENFORCE_LOG_JSON="false",
               ENFORCE_METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed after the server
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "python:server.gunicorn_conf",
                               "--workers", "3", "--bind", f"127.0.0.1:{port}", "server:create_app()"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=5).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.5)
        scrape = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        before = urllib.request.urlopen(scrape, timeout=30).read().decode()
        for _ in range(30):  # spread over the workers by the kernel
            urllib.request.urlopen(f"{base}/healthz", timeout=30).close()
        text = urllib.request.urlopen(scrape, timeout=30).read().decode()
        pids = {p.name.split("_")[-1] for p in multiproc.glob("*.db")}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    counted = [_value(t, "enforce_http_request_duration_seconds_count", endpoint="health.healthz", status="200")
               for t in (before, text)]
    assert counted[1] - counted[0] == 30
    assert not (multiproc / "stale.db").exists()
    assert len(pids) >= 1
