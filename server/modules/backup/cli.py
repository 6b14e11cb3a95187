"""``enforce backup DEST`` / ``enforce restore SRC`` (see ``operations`` for the layout)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app, g
from flask.cli import with_appcontext

from server.core.errors import DomainError
from server.core.storage import get_store
from server.extensions import db
from server.modules.backup import operations as ops


def _fail(exc: DomainError) -> click.ClickException:
    return click.ClickException(f"{exc.code}: {exc.message_zh} / {exc.message_en} {exc.detail or ''}")


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@with_appcontext
def backup_cli(dest: Path) -> None:
    """备份数据库、证据文件清单与审计记录头 / Back up the database, every blob (only new ones are copied),
    the audit head and the last signed checkpoint into DEST/snapshots/<time>."""
    try:
        result = ops.backup(db.engine, get_store(), dest)
    except DomainError as exc:
        raise _fail(exc) from None
    click.echo(f"备份完成 / backup written: {result.snapshot}\n"
               f"  audit entries: {result.audit_size}; last signed checkpoint: {result.checkpoint_size}\n"
               f"  blobs: {result.blobs_total} ({result.blobs_copied} copied, the rest already in {dest / 'blobs'})")


@click.command("restore")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--published-checkpoint", "published", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the latest checkpoint the public has seen (checkpoint.txt of a newer backup, or "
                   "GET /api/v1/audit/checkpoint); every snapshot's in SRC is checked too")
@with_appcontext
def restore_cli(src: Path, published: tuple[Path, ...]) -> None:
    """从备份恢复到空的数据库与存储 / Restore a backup (DEST or one snapshot) into an empty installation,
    then check every blob's hash and the whole audit log."""
    from server.modules.audit import operations as audit
    from server.modules.audit import rollback
    from server.modules.audit.integrity import verify_log

    g.audit_actor = "restore"
    try:
        snapshot = ops.find_snapshot(src)
        manifest = json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))
        ops.restore_database(db.engine, snapshot, manifest)
        db.session.remove()
        copied, bad = ops.restore_blobs(get_store(), snapshot, manifest)
        report = verify_log(db.session, current_app.config)
        db.session.rollback()
        size, _ = audit.head(db.session)
        problems = [] if report.ok else [str(p) for p in report.problems]
        if size != manifest["audit"]["size"]:
            problems.append(f"audit head {size} ≠ manifest {manifest['audit']['size']}")
        comparison = None
        for note in ops.published_notes(snapshot, list(published)):
            comparison = rollback.check_published(db.session, current_app.config, note, source=str(snapshot))
            if not comparison.consistent:
                break
        audit.record(db.session, "system:backup:restored", payload={
            "snapshot": snapshot.name, "audit_size": size, "blobs": len(manifest["blobs"]),
            "bad_blobs": bad, "log_verified": report.ok})
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise _fail(exc) from None
    click.echo(f"已恢复 / restored {snapshot}: {size} audit entries, {len(manifest['blobs'])} blobs ({copied} copied)")
    if comparison is not None and not comparison.consistent:
        click.echo(f"回退 / ROLLBACK: a published checkpoint has {comparison.published_size} entries, the restored log "
                   f"{comparison.restored_size}. No checkpoint is signed until an administrator runs\n"
                   "  enforce audit record-rollback --admin NAME --reason '…'", err=True)
    if bad or problems:
        for digest in bad:
            click.echo(f"证据文件损坏或缺失 / blob damaged or missing: {digest}", err=True)
        for problem in problems:
            click.echo(f"审计记录 / audit log: {problem}", err=True)
        sys.exit(1)
    click.echo("审计记录与全部证据文件核验通过 / audit log and every blob verified")
