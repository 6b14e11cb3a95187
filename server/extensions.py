"""Extension objects, created unbound and initialised in ``create_app``."""
from __future__ import annotations

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from server.core.db import Base
from server.core.http import ContractApi

db = SQLAlchemy(model_class=Base)
web_api = ContractApi(config_prefix="WEB")
mobile_api = ContractApi(config_prefix="MOBILE")


def migrations_directory() -> str:
    """``server/migrations`` in an installed wheel (``setup.py`` copies them in), else the
    repository's top-level ``migrations/`` (a checkout or an editable install)."""
    package = os.path.dirname(__file__)
    packaged = os.path.join(package, "migrations")
    if os.path.isfile(os.path.join(packaged, "env.py")):
        return packaged
    return os.path.join(os.path.dirname(package), "migrations")


def init_migrations(app: Flask) -> None:
    """Bind Flask-Migrate where migrations run (the ``enforce`` command, tests, benchmarks), not in
    every gunicorn worker: Alembic with Mako and Pygments is 14 MiB of a worker's memory."""
    if "migrate" in app.extensions:
        return
    from flask_migrate import Migrate

    Migrate(app, db, directory=migrations_directory(),
            render_as_batch=True, compare_type=True)
