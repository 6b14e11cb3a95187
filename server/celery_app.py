"""The Celery app for worker and beat processes: ``celery -A server.celery_app:celery worker``.

It is the Flask app's own Celery (same configuration, tasks run in an app context); importing the
task modules here registers every task with the worker.
"""
from __future__ import annotations

from server import create_app

app = create_app()
celery = app.extensions["celery"]

from server.modules.system import tasks as _system_tasks  # noqa: E402,F401  (registers the tasks)
