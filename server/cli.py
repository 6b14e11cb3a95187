"""The ``enforce`` command: Flask's CLI bound to the app factory, plus our admin groups."""
from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from server.config import ConfigError


def _create_app():  # type: ignore[no-untyped-def]
    from server import create_app
    from server.extensions import init_migrations

    try:
        app = create_app()
    except ConfigError as exc:
        click.echo(f"配置错误 / configuration error: {exc}", err=True)
        sys.exit(2)
    init_migrations(app)  # ``enforce db …``
    return app


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def cli() -> None:
    """秦岭移动执法 Qinling Field: run, migrate, and administer the enforcement backend."""


def main() -> None:
    from server.commands import register

    register(cli)
    cli(prog_name="enforce")
