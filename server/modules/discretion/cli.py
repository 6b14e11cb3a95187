"""``enforce discretion load FILE`` and ``enforce discretion shipped``: load benchmark versions."""
from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from server.core.errors import DomainError
from server.extensions import db
from server.modules.discretion import operations as ops

discretion_cli = click.Group("discretion", help="自由裁量基准 / discretion benchmarks")


@discretion_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def load_command(path: str) -> None:
    """Load a new benchmark version (JSON) with its effective date."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    try:
        row = ops.load(db.session, data, loaded_by="console")
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.code}: {exc.message_zh} / {exc.message_en} {exc.detail or ''}") from None
    click.echo(f"loaded {row.violation_code}@{row.version} effective {row.effective_from} sha256 {row.sha256}")


@discretion_cli.command("shipped")
@with_appcontext
def shipped_command() -> None:
    """Load the benchmarks shipped with the code (idempotent)."""
    rows = ops.load_shipped(db.session)
    db.session.commit()
    click.echo(f"loaded {len(rows)} benchmark version(s)")
