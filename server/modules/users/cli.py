"""``enforce users ...``: create accounts from the command line."""
from __future__ import annotations

import datetime as dt

import click
from flask import g
from flask.cli import with_appcontext

from server.core.access import Role
from server.core.calendar import local_today
from server.core.errors import DomainError
from server.extensions import db
from server.modules.users import operations as ops


@click.group("users")
def users_cli() -> None:
    """账号管理 / Accounts."""


@users_cli.command("create")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="display name, e.g. 张三")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--unit", "unit_id", type=int, required=True, help="unit id (see GET /api/v1/units)")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--certificate", help="enforcement certificate number (inspectors)")
@click.option("--valid-until", type=click.DateTime(["%Y-%m-%d"]), help="certificate expiry")
@with_appcontext
def create(username: str, display_name: str, role: str, unit_id: int, password: str,
           certificate: str | None, valid_until: dt.datetime | None) -> None:
    """Create a staff account (and optionally its certificate)."""
    try:
        user = ops.create_user(db.session, username=username, display_name=display_name, role=role,
                               unit_id=unit_id, password=password)
        if certificate:
            ops.add_certificate(db.session, user, number=certificate, issuer="商洛市人民政府", scope="生态环境保护",
                                valid_from=local_today(),
                                valid_until=(valid_until.date() if valid_until else local_today() + dt.timedelta(days=3 * 365)))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.code}: {exc.message_zh} / {exc.message_en} {exc.fields or ''}") from None
    click.echo(f"created user {user.id} {user.username} ({user.role.value})")


@users_cli.command("end-sessions")
@click.argument("username")
@with_appcontext
def end_sessions(username: str) -> None:
    """End every console session and bearer token of an account (a lost laptop, a leaver)."""
    g.audit_actor = "cli:users:end-sessions"
    user = ops.user_by_name(db.session, username)
    if user is None:
        raise click.ClickException(f"user.not_found: 用户不存在 / No such user: {username}")
    ops.end_sessions(db.session, user, "admin:user:sessions_ended", via="cli")
    db.session.commit()
    click.echo(f"ended every session of user {user.id} {user.username}")
