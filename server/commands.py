"""Collects each domain's CLI group under ``enforce``."""
from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from server.modules.demo.cli import demo_cli
    from server.modules.draws.cli import draw_cli
    from server.modules.devices.cli import devices_cli, tokens_cli
    from server.modules.users.cli import users_cli
    from server.modules.audit.cli import audit_cli

    for group in (users_cli, devices_cli, tokens_cli, demo_cli):
        cli.add_command(group)
    cli.add_command(draw_cli)
    cli.add_command(audit_cli)
    from sync.simulate import simulate_cli

    cli.add_command(simulate_cli)
    from server.modules.sync.cli import sync_cli

    cli.add_command(sync_cli)
    from server.modules.discretion.cli import discretion_cli

    cli.add_command(discretion_cli)
    from server.modules.transfers.cli import transfers_cli

    cli.add_command(transfers_cli)
    from server.modules.deadlines.cli import deadlines_cli

    cli.add_command(deadlines_cli)
    from server.modules.setup.cli import setup_cli

    cli.add_command(setup_cli)
    from server.modules.backup.cli import backup_cli, restore_cli

    cli.add_command(backup_cli)
    cli.add_command(restore_cli)
    from server.modules.evidence.cli import uploads_cli

    cli.add_command(uploads_cli)
