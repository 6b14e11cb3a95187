"""A real gunicorn (several worker processes, threads) over an app's own migrated database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests
from flask import Flask

PORTS = range(int(os.environ.get("ENFORCE_TEST_PORT_FIRST", "8500")), int(os.environ.get("ENFORCE_TEST_PORT_LAST",
                                                                                       "8599")) + 1)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in the test range")


@contextmanager
def gunicorn(app: Flask, *, workers: int = 2, threads: int = 8) -> Iterator[str]:
    """Serve ``app``'s configuration (database, store, keys) from a gunicorn of its own."""
    config = app.config
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ENFORCE_")},
           "ENFORCE_ENV": "test", "ENFORCE_DATABASE_URL": config["DATABASE_URL"],
           "ENFORCE_STORAGE_URL": config["STORAGE_URL"], "ENFORCE_SECRET_KEY": config["SECRET_KEY"],
           "ENFORCE_AUDIT_LOG_KEY": str(config["AUDIT_LOG_KEY"]), "ENFORCE_INSTANCE_PATH": app.instance_path,
           "ENFORCE_UPLOAD_DIR": str(config["UPLOAD_DIR"]), "ENFORCE_BROKER_URL": "memory://",
           "ENFORCE_TASK_THREADS": "0", "ENFORCE_LOG_JSON": "false", "ENFORCE_LOG_LEVEL": "WARNING"}
    port = _free_port()
    log = Path(app.instance_path) / f"gunicorn-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--workers", str(workers), "--threads", str(threads),
             "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "server:create_app()"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=10).status_code < 500:
                    break
            except requests.RequestException:  # not listening yet, or a worker still booting
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
