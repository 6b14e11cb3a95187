"""``enforce uploads …``: upload housekeeping for operators."""
from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("uploads", help="断点续传上传的维护 / Resumable upload housekeeping")
def uploads_cli() -> None:
    pass


@uploads_cli.command("expire")
@with_appcontext
def expire_command() -> None:
    """删除已过期上传的部分文件 / Delete the partial files of expired uploads (any deployment)."""
    from server.extensions import db
    from server.modules.evidence import uploads

    count = uploads.expire(db.session)
    db.session.commit()
    click.echo(f"已删除过期上传 {count} 个 / expired uploads removed: {count}")
