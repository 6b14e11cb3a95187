"""``enforce sync compact``: the change-log compaction of the beat schedule, run by hand or cron."""
from __future__ import annotations

import datetime as dt

import click
from flask import current_app, g
from flask.cli import with_appcontext

from server.extensions import db
from server.modules.sync import operations as ops


@click.group("sync")
def sync_cli() -> None:
    """离线同步 / Offline sync."""


@sync_cli.command("compact")
@click.option("--retention-days", type=click.IntRange(min=1), default=None,
              help="keep changes of the last N days (default: ENFORCE_SYNC_CHANGE_RETENTION_DAYS)")
@with_appcontext
def compact(retention_days: int | None) -> None:
    """压缩同步变更日志：更早的游标需重新下载离线包 / Compact the change log; older cursors must fully resync."""
    g.audit_actor = "cli:sync.compact"
    days = retention_days or current_app.config["SYNC_CHANGE_RETENTION_DAYS"]
    try:
        result = ops.compact_expired(db.session, retention=dt.timedelta(days=days), commit=db.session.commit)
    except Exception:
        db.session.rollback()
        raise
    click.echo(f"floor {result['floor_seq']}  deleted {result['deleted']}  (changes before {result['cutoff']}, "
               f"{days} days)")
