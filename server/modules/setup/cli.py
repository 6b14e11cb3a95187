"""``enforce setup --org FILE``: make a fresh installation usable (see ``operations``)."""
from __future__ import annotations

import click
from flask import g
from flask.cli import with_appcontext

from server.core.errors import DomainError
from server.extensions import db
from server.modules.setup import operations as ops


@click.command("setup")
@click.option("--org", "org_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML of regions, agencies with their units, and the first administrator (deploy/shangluo.yaml)")
@with_appcontext
def setup_cli(org_file: str) -> None:
    """建立机构、单位与首个管理员（可重复执行）/ Create agencies, units and the first administrator (idempotent)."""
    g.audit_actor = "setup"
    try:
        result = ops.apply(db.session, ops.read(org_file))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.code}: {exc.message_zh} / {exc.message_en} {exc.fields or exc.detail or ''}") from None
    for line in result.created:
        click.echo(f"新建 / created: {line}")
    for line in result.updated:
        click.echo(f"更新 / updated: {line}")
    if not result.created and not result.updated:
        click.echo("已是最新，未作改动 / already up to date; nothing changed")
    if result.one_time_password:
        click.echo(f"\n管理员 / administrator: {result.admin}\n"
                   f"一次性密码 / one-time password: {result.one_time_password}\n"
                   "首次登录时必须修改；此密码不会再次显示 / it must be changed at first sign-in and is not shown again")
