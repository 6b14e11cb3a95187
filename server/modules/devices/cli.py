"""``enforce devices ...`` and ``enforce tokens issue``: for operators and scripts."""
from __future__ import annotations

import base64
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from flask.cli import with_appcontext

from server.core.errors import DomainError
from server.extensions import db
from server.modules.auth.operations import staff_token
from server.modules.devices import operations as ops
from server.modules.users import operations as users


def _fail(exc: DomainError) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(f"{exc.code}: {exc.message_zh} / {exc.message_en}")


def _user(username: str):  # type: ignore[no-untyped-def]
    user = users.user_by_name(db.session, username)
    if user is None:
        raise click.ClickException(f"user.not_found: 用户不存在 / no such user: {username}")
    return user


@click.group("devices")
def devices_cli() -> None:
    """移动设备 / Devices."""


@devices_cli.command("register")
@click.option("--user", "username", required=True)
@click.option("--label", required=True)
@click.option("--public-key", help="raw Ed25519 public key, base64; omit to generate a key pair")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write a generated private key (PEM)")
@with_appcontext
def register(username: str, label: str, public_key: str | None, key_out: Path | None) -> None:
    """Register a device for an inspector; prints the device id."""
    if public_key is None:
        private = Ed25519PrivateKey.generate()
        public_key = base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
        if key_out:
            key_out.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            key_out.chmod(0o600)
    try:
        device = ops.register(db.session, user=_user(username), public_key_b64=public_key, label=label)
        db.session.commit()
    except DomainError as exc:
        raise _fail(exc) from None
    click.echo(device.id)


@devices_cli.command("revoke")
@click.argument("device_id")
@click.option("--reason", required=True)
@with_appcontext
def revoke(device_id: str, reason: str) -> None:
    """Revoke a device (lost phone): its tokens stop working at once."""
    try:
        ops.revoke(db.session, ops.get_device(db.session, device_id), reason)
        db.session.commit()
    except DomainError as exc:
        raise _fail(exc) from None
    click.echo(f"revoked {device_id}")


@devices_cli.command("reenrol")
@click.argument("device_id")
@click.option("--reason", required=True)
@click.option("--by", "by_username", help="the supervisor who re-enrols (recorded in the audit log)")
@click.option("--public-key", help="a new raw Ed25519 public key, base64; omit to keep the device's key")
@with_appcontext
def reenrol(device_id: str, reason: str, by_username: str | None, public_key: str | None) -> None:
    """Re-enrol a device past its offline grace period; prints a one-time enrolment token (24 h) that
    the phone exchanges at /mobile/v1/auth/refresh. Its id, outbox and old signatures stay valid."""
    try:
        by = _user(by_username) if by_username else None
        result = ops.reenrol(db.session, ops.get_device(db.session, device_id), by=by, reason=reason,
                             public_key_b64=public_key)
        db.session.commit()
    except DomainError as exc:
        raise _fail(exc) from None
    click.echo(f"enrolment token (valid until {result['expires_at']:%Y-%m-%d %H:%M} UTC): {result['enrolment_token']}")


@click.group("tokens")
def tokens_cli() -> None:
    """令牌 / Tokens."""


@tokens_cli.command("issue")
@click.option("--user", "username", required=True)
@click.option("--device", "device_id", help="issue a device token for this device of the user")
@with_appcontext
def issue(username: str, device_id: str | None) -> None:
    """Print a bearer token (staff, or device with --device) for scripts and operators."""
    user = _user(username)
    try:
        if device_id is None:
            token = staff_token(user)["access_token"]
        else:
            device = ops.get_device(db.session, device_id)
            if device.user_id != user.id:
                raise click.ClickException("device.not_owned: 该设备不属于该用户 / the device belongs to another user")
            token = ops.issue_tokens(db.session, device)["access_token"]
        db.session.commit()
    except DomainError as exc:
        raise _fail(exc) from None
    click.echo(token)
