"""``enforce deadlines recompute``: the beat's daily recount of provisional clocks, run by hand
right after a new year's holiday schedule is loaded."""
from __future__ import annotations

import click
from flask import g
from flask.cli import with_appcontext

from server.extensions import db
from server.modules.deadlines import operations as ops


@click.group("deadlines")
def deadlines_cli() -> None:
    """期限 / Deadlines."""


@deadlines_cli.command("recompute")
@with_appcontext
def recompute() -> None:
    """按已载入的节假日安排重算暂定期限 / Recount provisional deadlines on the holiday schedules now loaded."""
    g.audit_actor = "cli:deadlines.recompute"
    try:
        changed = ops.recompute_provisional(db.session)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    for change in changed:
        before, after = change["before"], change["after"]
        click.echo(f"#{change['deadline']} {change['case']} {change['type']}: "
                   f"{before['due_on'] or before['due_at']} -> {after['due_on'] or after['due_at']}"
                   + (f"  (still provisional: {after['provisional_years']})" if after["provisional"] else ""))
    click.echo(f"重算 {len(changed)} 个期限 / {len(changed)} deadline(s) recomputed")
