"""gunicorn settings of the web process: ``gunicorn -c python:server.gunicorn_conf …``.

Slow clients must not exhaust the workers: a phone on a weak link may take minutes to send a
PATCH, and one that loses signal leaves its request waiting. Each such body holds one thread
(not a process) while it waits, at most ``ENFORCE_UPLOAD_READ_TIMEOUT_S`` (60 s) without a byte,
so the threaded worker gets many threads: 2 workers x 32 threads serve 64 requests at once, and
twenty stalled uploads leave the rest of the API answering (tests/evidence/test_tus_gunicorn.py).
A thread waiting on a socket costs a stack and no CPU; the database pool is only held while a
request talks to the database, never while an upload body streams in. In production a buffering
reverse proxy in front (see the README) takes slow bodies off gunicorn altogether.

Prometheus' multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its
metrics into that folder; the folder is emptied when the master starts (stale files from a
previous run would be added up), and a dead worker's live gauges are dropped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

wsgi_app = "server:create_app()"  # a positional app on the command line takes its place
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
keepalive = 5


def on_starting(server: Any) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
