"""``enforce draw ...``: verify a published draw; load the default sampling rules."""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from server.modules.draws import algorithm


@click.group("draw")
def draw_cli() -> None:
    """双随机抽取 / Random draws."""


@draw_cli.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def verify(path: str) -> None:
    """Re-run a published draw from its disclosed inputs and say whether it matches (exit 0 if so)."""
    sys.exit(algorithm.main(["verify", path]))


@draw_cli.command("load-rules")
@with_appcontext
def load_rules() -> None:
    """Write the shipped default sampling rules (with their sources) if there are none."""
    from server.extensions import db
    from server.modules.draws import rules

    count = rules.load_defaults(db.session)
    db.session.commit()
    click.echo(f"{count} default sampling rules loaded" if count else "sampling rules already present; nothing loaded")
