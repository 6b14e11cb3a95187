"""``enforce audit …``: verify the whole stored log, publish a checkpoint, export a proof."""
from __future__ import annotations

import sys
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from server.extensions import db


@click.group("audit")
def audit_cli() -> None:
    """执法全过程记录 / The tamper-evident audit log."""


@audit_cli.command("verify")
@click.option("--batch", default=10_000, show_default=True, help="rows fetched per round trip")
@with_appcontext
def verify(batch: int) -> None:
    """逐条核验记录、树、记录头与全部检查点 / Check every entry, node, the head and all checkpoints."""
    from server.modules.audit.integrity import verify_log

    started = time.monotonic()
    report = verify_log(db.session, current_app.config, batch=batch)
    db.session.rollback()
    elapsed = time.monotonic() - started
    if report.ok:
        click.echo(f"通过：{report.size} 个条目、{report.checkpoints} 个检查点均完好（{elapsed:.1f} 秒）\n"
                   f"OK: {report.size} entries and {report.checkpoints} checkpoints verified ({elapsed:.1f} s)")
        return
    first = report.problems[0]
    click.echo(f"失败：首个问题在条目 {first.entry}：{first.zh}\nFAILED: first bad entry {first.entry}: {first.en}",
               err=True)
    for problem in report.problems[1:]:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


@audit_cli.command("checkpoint")
@with_appcontext
def checkpoint() -> None:
    """签署并发布检查点 / Sign and publish a checkpoint of the current head."""
    from server.modules.audit import checkpoints

    cp = checkpoints.publish(db.session, current_app.config)
    db.session.commit()
    click.echo(checkpoints.served_note(db.session, cp), nl=False)


@audit_cli.command("proof")
@click.argument("index", type=int)
@with_appcontext
def proof(index: int) -> None:
    """导出条目的 tlog-proof 文件 / Print the tlog-proof of one entry under the latest checkpoint.

    A proof file is made to be handed on, so it is read as an export: a sealed entry is not found."""
    from server.modules.audit import checkpoints
    from server.modules.audit import operations as audit

    click.echo(checkpoints.proof_file(db.session, index, reader=audit.EXPORT_READER), nl=False)


@audit_cli.command("public-key")
@with_appcontext
def public_key() -> None:
    """打印日志公钥（vkey）/ Print the log's verifier key."""
    from server.modules.audit import checkpoints

    click.echo(checkpoints.log_verifier_key(current_app.config).vkey())
