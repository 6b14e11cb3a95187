"""A real gunicorn (the deployed server/gunicorn_conf.py) over its own migrated database, for the tests
where the WSGI server matters: body reading, timeouts, slow clients, concurrency."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from flask import Flask

from tests import db as testdb
from tests.evidence.live import seed_team

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PORTS = range(8400, 8500)  # the upload tests' ports (tests/evidence/gunicorn.py uses 8500-8599)
SECRET = "test-secret-key-0123456789"


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8400-8499")


@dataclass
class Live:
    app: Flask  # same database and folders, for seeding and checking from the test
    base: str
    host: str
    port: int
    values: dict[str, Any]
    proc: subprocess.Popen[bytes]

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


@contextmanager
def gunicorn(tmp: Path, name: str, **settings: Any) -> Iterator[Live]:
    url = testdb.scratch_database_url(tmp, name)
    config = {"AUDIT_LOG_KEY": str(tmp / "audit-log-key.pem"), "UPLOAD_DIR": str(tmp / "uploads"), **settings}
    app = testdb.make_app(url, tmp, **config)
    testdb.migrate(app)
    values = seed_team(app)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENFORCE_")}
    env.update({"ENFORCE_ENV": "test", "ENFORCE_DATABASE_URL": url, "ENFORCE_SECRET_KEY": SECRET,
                "ENFORCE_STORAGE_URL": (tmp / "blobs").as_uri(), "ENFORCE_INSTANCE_PATH": str(tmp),
                "ENFORCE_LOG_JSON": "false", "ENFORCE_LOG_LEVEL": "WARNING", "ENFORCE_BROKER_URL": "memory://",
                "ENFORCE_TASK_THREADS": "0"})
    env.update({f"ENFORCE_{key}": str(value) for key, value in config.items()})
    port = free_port()
    log = open(tmp / f"gunicorn-{name}.log", "wb")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:server.gunicorn_conf", "--bind", f"127.0.0.1:{port}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(port, proc, tmp / f"gunicorn-{name}.log")
        yield Live(app, f"http://127.0.0.1:{port}", "127.0.0.1", port, values, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        from server.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()
    raise RuntimeError(f"gunicorn did not answer: {log.read_text()[-3000:]}")
