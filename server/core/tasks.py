"""Celery bound to the Flask app (pallets' celery_init_app pattern) and after-commit sending.

Tasks take ids, never objects, and are idempotent. They are sent only after the transaction
that made their work visible has committed; in the embedded default (broker ``memory://``)
they run in-process right then, long ones on a thread of the process (``send_long_after_commit``).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery, Task
from celery import _state as celery_state
from flask import Flask, appcontext_pushed, current_app, g, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

_AFTER_COMMIT = "tasks_after_commit"
_LONG_AFTER_COMMIT = "long_tasks_after_commit"
_THREADS = "task_threads"
log = logging.getLogger(__name__)


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    broker = app.config["BROKER_URL"]
    eager = broker.startswith("memory://")
    backend = app.config["RESULT_BACKEND"] or (None if eager else broker)
    celery_app = Celery(app.name, task_cls=FlaskTask, set_as_current=False)  # contexts choose (below)
    celery_app.conf.update(
        broker_url=broker,
        result_backend=backend,
        task_always_eager=eager,
        task_eager_propagates=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,  # acknowledged when done: a killed worker's task is delivered again
        task_reject_on_worker_lost=True,
        task_time_limit=app.config["TASK_TIME_LIMIT_S"],
        task_soft_time_limit=app.config["TASK_TIME_LIMIT_S"] - 30,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Redis redelivers an unacknowledged task after the visibility timeout (default: one hour):
        # just longer than any task may run, so a running task is never delivered twice.
        broker_transport_options={"socket_connect_timeout": 3,
                                  "visibility_timeout": app.config["TASK_TIME_LIMIT_S"] + 300},
        timezone="Asia/Shanghai",
        enable_utc=True,
        beat_schedule=app.config.get("BEAT_SCHEDULE", {}),
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    if eager and app.config.get("TASK_THREADS"):
        app.extensions[_THREADS] = ThreadPoolExecutor(app.config["TASK_THREADS"], thread_name_prefix="long-task")
    _follow_app_context(app, celery_app)
    return celery_app


def _follow_app_context(app: Flask, celery_app: Celery) -> None:
    """While one of this app's contexts is active, ``shared_task`` proxies (``task.delay()``) resolve
    to this app's Celery, not to whichever app a process (a test run, a CLI) created last."""

    def enter(sender: Flask, **_: Any) -> None:
        g._celery_previous = celery_state.get_current_app()
        celery_app.set_current()

    def leave(_exc: BaseException | None) -> None:
        previous = g.pop("_celery_previous", None)
        if previous is not None:
            previous.set_current()

    appcontext_pushed.connect(enter, app, weak=False)
    app.teardown_appcontext(leave)


def send_after_commit(session: Session, task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue ``task.delay(*args)`` to run once ``session`` commits; dropped on rollback. The task is
    sent on the Celery of the app whose context is active then (see ``_follow_app_context``)."""
    session.info.setdefault(_AFTER_COMMIT, []).append((task, args, kwargs))


def send_long_after_commit(session: Session, task: Any, *args: Any) -> None:
    """As ``send_after_commit``, for a task that takes long and stores its own progress (an import,
    a package build). With a broker it goes to a worker like any task. In the embedded default it
    runs on one of the web process's ``TASK_THREADS`` threads, so the request that asked for it
    returns at once and its page can poll the progress; ``TASK_THREADS=0`` runs it in the request."""
    session.info.setdefault(_LONG_AFTER_COMMIT, []).append((task, args))


@event.listens_for(Session, "after_commit")
def _send(session: Session) -> None:
    queued = session.info.pop(_AFTER_COMMIT, [])
    for task, args, kwargs in queued:
        task.apply_async(args=args, kwargs=kwargs)
    for task, args in session.info.pop(_LONG_AFTER_COMMIT, []):
        threads = current_app.extensions.get(_THREADS) if has_app_context() else None
        if threads is None:
            task.apply_async(args=args)
        else:  # the thread has no Flask or Celery context of its own: name this app's task
            threads.submit(_run_on_thread, current_app.extensions["celery"].tasks[task.name], args)


def _run_on_thread(task: Task, args: tuple[Any, ...]) -> None:
    try:
        task.apply(args=args)  # FlaskTask pushes the app context; the task records its own failure
    except Exception:
        log.exception("long task %s%r failed", task.name, args)


@event.listens_for(Session, "after_transaction_end")
def _drop(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_AFTER_COMMIT, None)
        session.info.pop(_LONG_AFTER_COMMIT, None)
