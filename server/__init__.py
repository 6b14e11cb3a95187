"""Qinling Field (秦岭移动执法): backend of the Shangluo mobile ecological-environment enforcement system."""
from __future__ import annotations

import ctypes
import datetime as dt
import os
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from server import config as config_module

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The one application factory: configuration, extensions, both APIs, pages and CLI."""
    app = Flask(__name__, instance_path=os.environ.get("ENFORCE_INSTANCE_PATH") or None,
                instance_relative_config=True)
    app.config.update(config_module.load(app.instance_path, test_config))
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Chinese messages stay readable
    _configure_flask(app)
    _return_large_buffers()

    from server import models  # noqa: F401  (registers every table)
    from server.core import access, headers, http
    from server.core.tasks import celery_init_app
    from server.extensions import db, mobile_api, web_api

    http.configure_logging(app)
    http.init_app(app)
    headers.init_app(app)
    db.init_app(app)
    from server.core import metrics

    metrics.init_app(app)  # before the access check, so that refused requests are timed too
    with app.app_context():
        _tune_engine(db.engine)
    web_api.init_app(app, spec_kwargs=_spec_kwargs("Qinling Field web API / 秦岭移动执法 管理端接口"))
    mobile_api.init_app(app, spec_kwargs=_spec_kwargs("Qinling Field device API / 秦岭移动执法 移动端接口"))
    celery_init_app(app)
    from server.modules.audit.tasks import schedule as schedule_audit_checkpoints
    schedule_audit_checkpoints(app)
    from server.modules.deadlines.tasks import schedule as schedule_deadline_scan
    schedule_deadline_scan(app)

    from server.modules.auth.operations import load_principal, load_session_principal
    from server.routes import register_routes

    access.init_app(app, load_principal, load_session_principal)
    register_routes(app)
    from server.core import ratelimit

    ratelimit.init_app(app)  # after the routes: the public blueprints get their limit by name
    return app


def _return_large_buffers() -> None:
    """glibc serves a freed block's size from the thread's heap once its dynamic mmap threshold has
    grown past it, and keeps that memory: each upload thread held 10–20 MiB of 1 MiB request and
    file blocks. A fixed threshold maps such blocks and returns them when freed."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_mmap_threshold = -3  # malloc.h
    libc.mallopt(m_mmap_threshold, 256 * 1024)


def _configure_flask(app: Flask) -> None:
    cfg = app.config
    cfg["SQLALCHEMY_DATABASE_URI"] = cfg["DATABASE_URL"]
    connect_args: dict[str, Any] = {}
    if cfg["DATABASE_URL"].startswith("postgresql"):
        connect_args["connect_timeout"] = cfg["DB_CONNECT_TIMEOUT_S"]
        # A frozen or unreachable server is noticed by TCP keepalives instead of hanging the request;
        # a runaway statement or an abandoned transaction is ended by the server.
        connect_args.update(keepalives=1, keepalives_idle=10, keepalives_interval=3, keepalives_count=3)
        connect_args["options"] = (f"-c statement_timeout={cfg['DB_STATEMENT_TIMEOUT_S'] * 1000} "
                                   f"-c idle_in_transaction_session_timeout="
                                   f"{cfg['DB_IDLE_IN_TRANSACTION_TIMEOUT_S'] * 1000}")
    else:
        connect_args["timeout"] = 15  # SQLite busy timeout, seconds
    cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": connect_args, "pool_pre_ping": True}
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax"
    cfg["SESSION_COOKIE_SECURE"] = cfg["ENV"] == "production"
    # Not Flask's 31 days: the browser drops the cookie at the absolute limit; the idle limit is
    # checked on every request (server.modules.auth.operations.load_session_principal).
    cfg["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(hours=cfg["SESSION_MAX_HOURS"])
    cfg["TESTING"] = cfg["TESTING"] or cfg["ENV"] == "test"  # Flask's own default is False, never missing
    for prefix, url in (("WEB_", "/api/v1"), ("MOBILE_", "/mobile/v1")):
        cfg[f"{prefix}API_TITLE"] = "Qinling Field"
        cfg[f"{prefix}API_VERSION"] = "v1"
        cfg[f"{prefix}OPENAPI_VERSION"] = "3.0.3"
        cfg[f"{prefix}OPENAPI_URL_PREFIX"] = url
        cfg[f"{prefix}OPENAPI_JSON_PATH"] = "openapi.json"
        cfg[f"{prefix}OPENAPI_SWAGGER_UI_PATH"] = "docs"
        cfg[f"{prefix}OPENAPI_SWAGGER_UI_URL"] = "/static/swagger-ui/"
    cfg.setdefault("BEAT_SCHEDULE", {})


def _spec_kwargs(title: str) -> dict[str, Any]:
    from server.openapi import ContractDocs

    return {
        "title": title,
        "extra_plugins": [ContractDocs()],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    }


def _tune_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()
