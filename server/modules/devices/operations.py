"""Device registration, token issue and refresh, revocation (lost phone)."""
from __future__ import annotations

import base64
import binascii
import datetime as dt

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session, object_session

from server.core import errors, tokens
from server.core.access import Role
from server.core.db import utcnow
from server.modules.audit import operations as audit
from server.modules.devices.models import Device, DeviceKey, DeviceRefreshToken
from server.modules.users.models import User
from server.modules.users.operations import AccountInactive

DeviceNotFound = errors.error_code("device.not_found", 404, "设备不存在", "No such device")
DeviceRevoked = errors.error_code("device.revoked", 401, "设备已被注销（如遗失），不能再使用",
                                  "The device has been revoked (for example lost) and can no longer be used")
DeviceKeyInvalid = errors.error_code("device.key_invalid", 422, "设备公钥不是有效的 Ed25519 公钥（32 字节，Base64）",
                                     "The device key is not a valid Ed25519 public key (32 bytes, base64)")
DeviceKeyTaken = errors.error_code("device.key_taken", 409, "该公钥已注册到其他设备",
                                   "This public key is already registered to a device")
DeviceOwnerRole = errors.error_code("device.owner_not_inspector", 422, "设备只能绑定到执法人员或协管员",
                                    "A device can only be bound to an inspector or auxiliary")
RefreshInvalid = errors.error_code("device.refresh_invalid", 401, "刷新令牌无效或已超过离线宽限期，请重新登录注册",
                                   "The refresh token is invalid or past the offline grace period; sign in again")
SignatureBad = errors.error_code("device.signature_invalid", 401, "设备签名验证失败", "The device signature does not verify")

DEVICE_ROLES = {Role.INSPECTOR, Role.AUXILIARY, Role.SUPERVISOR}


# cryptography is imported where a key is used: it is 8 MiB of every web worker that never
# checks a signature (uploads, pages, the staff API).

def decode_public_key(text: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise DeviceKeyInvalid(fields={"public_key": ["32 字节 Ed25519 公钥 / 32-byte Ed25519 key"]}) from None
    return raw


def verify_signature(device: Device, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(device.public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def register(session: Session, *, user: User, public_key_b64: str, label: str, platform: str | None = None,
             app_version: str | None = None, registered_by: int | None = None) -> Device:
    if user.role not in DEVICE_ROLES:
        raise DeviceOwnerRole()
    raw = decode_public_key(public_key_b64)
    if session.scalar(sa.select(Device.id).where(Device.public_key == raw)) is not None or session.scalar(
            sa.select(DeviceKey.id).where(DeviceKey.public_key == raw)) is not None:
        raise DeviceKeyTaken()
    device = Device(user_id=user.id, public_key=raw, label=label, platform=platform, app_version=app_version,
                    registered_by=registered_by)
    session.add(device)
    session.flush()
    audit.record(session, "mobile:device:registered", subjects={"device": device.id, "user": user.id},
                 payload={"label": label, "platform": platform, "app_version": app_version,
                          "public_key": public_key_b64})
    return device


def get_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound()
    return device


def revoke(session: Session, device: Device, reason: str) -> Device:
    """Lost phone: every token of the device stops working at the next request."""
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        device.revoked_reason = reason
        session.execute(sa.update(DeviceRefreshToken)
                        .where(DeviceRefreshToken.device_id == device.id, DeviceRefreshToken.used_at.is_(None))
                        .values(used_at=device.revoked_at))
        session.flush()
        audit.record(session, "admin:device:revoked", subjects={"device": device.id, "user": device.user_id},
                     payload={"reason": reason})
    return device


def issue_tokens(session: Session, device: Device) -> dict[str, object]:
    """A short-lived access token and a single-use refresh token valid for the offline grace period."""
    if device.revoked_at is not None:
        raise DeviceRevoked()
    config = current_app.config
    refresh, digest = tokens.new_opaque()
    expires = utcnow() + dt.timedelta(days=config["DEVICE_OFFLINE_GRACE_DAYS"])
    session.add(DeviceRefreshToken(device_id=device.id, token_hash=digest, expires_at=expires))
    session.flush()
    return {
        "access_token": tokens.sign({"k": "d", "d": device.id, "u": device.user_id, "g": device.token_generation}),
        "token_type": "Bearer",
        "expires_in": config["DEVICE_TOKEN_TTL_S"],
        "refresh_token": refresh,
        "refresh_expires_at": expires,
        "device_id": device.id,
    }


def refresh(session: Session, refresh_token: str) -> dict[str, object]:
    """Rotate a refresh token. Presenting an already-used token ends every token of its device,
    refresh and access alike (it may have been stolen), but does not revoke the device itself:
    its inspector signs in again to register a new token pair."""
    row = session.scalar(sa.select(DeviceRefreshToken).where(
        DeviceRefreshToken.token_hash == tokens.opaque_hash(refresh_token)))
    now = utcnow()
    if row is None:
        raise RefreshInvalid()
    device = get_device(session, row.device_id)
    if device.revoked_at is not None:
        raise DeviceRevoked()
    if not device.user.active:
        raise AccountInactive()
    if row.used_at is not None:
        # Someone holds a copy of a spent token: end every refresh token of the device, and let the
        # caller commit that although the request fails.
        session.execute(sa.update(DeviceRefreshToken)
                        .where(DeviceRefreshToken.device_id == device.id, DeviceRefreshToken.used_at.is_(None))
                        .values(used_at=now))
        device.token_generation += 1  # the access tokens issued so far stop working at their next request
        audit.record(session, "mobile:device:refresh_reused", subjects={"device": device.id, "user": device.user_id},
                     payload={"token_id": row.id})
        session.flush()
        raise RefreshInvalid()
    if row.expires_at <= now:
        raise RefreshInvalid()
    # Claim the token with a conditional update: of two concurrent exchanges only one rotates it.
    claimed = session.execute(sa.update(DeviceRefreshToken)
                              .where(DeviceRefreshToken.id == row.id, DeviceRefreshToken.used_at.is_(None))
                              .values(used_at=now))
    if claimed.rowcount != 1:
        raise RefreshInvalid()
    return issue_tokens(session, device)  # the view notes the contact (evidence.note_contact)


# ---- re-enrolment after the offline grace period ------------------------------------------------

REENROL_TTL = dt.timedelta(hours=24)


def reenrol(session: Session, device: Device, *, by: User | None, reason: str,
            public_key_b64: str | None = None) -> dict[str, object]:
    """A device past its offline grace period (refresh refused, ``device.refresh_invalid``) is
    re-enrolled by a supervisor of its inspector's unit, or by an administrator (console, staff API,
    ``enforce devices reenrol``). It keeps its id, so its outbox (op ids, seqs) goes on as before.

    Every refresh token the device still has ends; a one-time enrolment token valid for
    ``REENROL_TTL`` is returned, which the phone exchanges at ``/mobile/v1/auth/refresh`` like any
    refresh token. The device keeps its key unless a new one is given: the old key is then kept in
    ``device_key`` and still verifies what the device signed up to now (manifests captured before
    the re-enrolment, still in its outbox). A revoked (lost) device is not re-enrolled."""
    if device.revoked_at is not None:
        raise DeviceRevoked()
    now = utcnow()
    session.execute(sa.update(DeviceRefreshToken)
                    .where(DeviceRefreshToken.device_id == device.id, DeviceRefreshToken.used_at.is_(None))
                    .values(used_at=now))
    retired: str | None = None
    if public_key_b64 is not None:
        raw = decode_public_key(public_key_b64)
        if raw != device.public_key:
            taken = session.scalar(sa.select(Device.id).where(Device.public_key == raw)) or session.scalar(
                sa.select(DeviceKey.id).where(DeviceKey.public_key == raw))
            if taken is not None:
                raise DeviceKeyTaken()
            retired = base64.b64encode(device.public_key).decode()
            session.add(DeviceKey(device_id=device.id, public_key=device.public_key, retired_at=now,
                                  retired_by=by.id if by else None, reason=reason))
            device.public_key = raw
    token, digest = tokens.new_opaque()
    expires = now + REENROL_TTL
    session.add(DeviceRefreshToken(device_id=device.id, token_hash=digest, expires_at=expires))
    session.flush()
    audit.record(session, "admin:device:reenrolled", subjects={"device": device.id, "user": device.user_id},
                 payload={"by": by.id if by else None, "key_changed": retired is not None, "retired_key": retired,
                          "public_key": base64.b64encode(device.public_key).decode(),
                          "enrolment_expires_at": expires.isoformat()}, reason=reason)
    return {"device_id": device.id, "enrolment_token": token, "expires_at": expires, "key_changed": retired is not None}


def verify_with_history(device: Device, message: bytes, signature: bytes, *, signed_at: dt.datetime | None) -> bool:
    """``verify_signature``, and if the current key does not verify, the keys a re-enrolment retired,
    each for what was signed (``signed_at``: the device's capture time) up to its retirement."""
    if verify_signature(device, message, signature):
        return True
    session = object_session(device)
    if signed_at is None or session is None:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for key in session.scalars(sa.select(DeviceKey.public_key).where(DeviceKey.device_id == device.id,
                                                                     DeviceKey.retired_at >= signed_at)):
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False
