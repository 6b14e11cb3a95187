"""``enforce demo load``: a believable Shangluo, loaded once."""
from __future__ import annotations

import click
from flask import g
from flask.cli import with_appcontext

from server.extensions import db
from server.modules.demo import operations as ops


@click.group("demo")
def demo_cli() -> None:
    """演示数据 / Demo data."""


@demo_cli.command("load")
@click.option("--targets", default=2000, show_default=True, help="enterprises to create")
@click.option("--inspectors", default=60, show_default=True)
@with_appcontext
def load(targets: int, inspectors: int) -> None:
    """Create units, people, certificates and enterprises (skipped if already loaded)."""
    g.audit_actor = "demo-load"
    result = ops.load(db.session, targets=targets, inspectors=inspectors)
    db.session.commit()
    if result.loaded:
        click.echo(f"演示数据已载入 / demo data loaded: {len(result.logins)} accounts, {result.targets} enterprises")
    else:
        click.echo("演示数据此前已载入，未作改动 / demo data was already loaded; nothing changed")
    click.echo(f"\n演示账号（密码均为 / every password is: {ops.DEMO_PASSWORD}）:")
    for username, role, what in ops.demo_logins(db.session):
        click.echo(f"  {username:<24} {role:<15} {what}")
