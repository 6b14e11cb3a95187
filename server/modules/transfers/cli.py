"""``enforce transfers package CASE_OR_TRANSFER_ID --out FILE``: build an evidence package offline."""
from __future__ import annotations

import shutil
from pathlib import Path

import click
from flask import current_app, g
from flask.cli import with_appcontext

from server.extensions import db
from server.modules.cases.models import Case
from server.modules.transfers import package as package_ops
from server.modules.transfers.models import Transfer


@click.group("transfers")
def transfers_cli() -> None:
    """移送公安与检察院 / Transfers to police and prosecutors."""


@transfers_cli.command("package")
@click.argument("case_or_transfer_id")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ZIP file to write (volumes: FILE stem + .volNNN.zip)")
@click.option("--max-volume-mib", type=int, default=None, help="split into volumes of at most this size")
@with_appcontext
def package(case_or_transfer_id: str, out: Path, max_volume_mib: int | None) -> None:
    """Build the evidence package of a transfer (or of any case) and write it to FILE."""
    g.audit_actor = "cli:transfers.package"
    transfer = db.session.get(Transfer, case_or_transfer_id)
    case_id = transfer.case_id if transfer else case_or_transfer_id
    if transfer is None and db.session.get(Case, case_id) is None:
        raise click.ClickException(f"no transfer or case {case_or_transfer_id}")
    requested = package_ops.request(db.session, case_id=case_id, transfer_id=transfer.id if transfer else None,
                                    by_user_id=None, max_volume_bytes=max_volume_mib << 20 if max_volume_mib else None)
    db.session.commit()
    try:
        built = package_ops.build(db.session, requested.id, current_app.config, commit=db.session.commit)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    source = package_ops.package_dir() / built.id
    out.parent.mkdir(parents=True, exist_ok=True)
    volumes = built.volumes
    for volume in volumes:
        target = out if len(volumes) == 1 else out.with_name(f"{out.stem}.vol{volume['number']:03d}.zip")
        shutil.move(str(source / volume["name"]), target)
        click.echo(f"{target}  {volume['size']} bytes  sha256 {volume['sha256']}")
    shutil.rmtree(source, ignore_errors=True)
    click.echo(f"证据包 / package {built.id}: index sha256 {built.manifest_sha256}, seal entry {built.seal_idx}")
