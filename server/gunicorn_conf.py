"""gunicorn settings for Prometheus' multiprocess mode: ``gunicorn -c python:server.gunicorn_conf …``.

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its metrics into that folder; the folder is
emptied when the master starts (stale files from a previous run would be added up), and a dead
worker's live gauges are dropped."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


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
