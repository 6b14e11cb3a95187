"""Accounts, certificates and legal qualifications. Operations flush; the caller commits."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy.orm import Session

from server.core import errors, passwords
from server.core.access import Principal, Role, current_principal, require
from server.core.db import utcnow
from server.modules.audit import operations as audit
from server.modules.users.models import Certificate, CertificateStatus, LegalQualification, Region, Unit, User

# One answer for a wrong password, an unknown name and a locked account, so that no answer tells
# which accounts exist; it says what a locked-out user needs to know without saying who is locked.
InvalidCredentials = errors.error_code("auth.invalid_credentials", 401,
                                       "用户名或密码错误（连续多次失败后需等待一段时间再试）",
                                       "Wrong username or password (after repeated failures, wait a while "
                                       "before trying again)")
AccountInactive = errors.error_code("auth.account_inactive", 403, "账号已停用", "The account is deactivated")
UsernameTaken = errors.error_code("user.username_taken", 409, "用户名已存在", "The username is already taken")
UserNotFound = errors.error_code("user.not_found", 404, "用户不存在", "No such user")
UnitNotFound = errors.error_code("unit.not_found", 404, "执法单位不存在", "No such unit")
RegionUnknown = errors.error_code("region.unknown", 422, "未知的行政区划代码", "Unknown region code")
CertificateNumberTaken = errors.error_code("certificate.number_taken", 409, "执法证号已存在",
                                           "The certificate number is already registered")
CertificateNotFound = errors.error_code("certificate.not_found", 404, "执法证不存在", "No such certificate")
CertificateInvalid = errors.error_code(
    "certificate.invalid_on_date", 403, "该人员在该日期没有有效执法证，不能作为执法人员（行政处罚法第42条）",
    "The person holds no valid enforcement certificate on that date and cannot act as an inspector "
    "(Administrative Penalty Law art. 42)",
)
NotAnInspector = errors.error_code("user.not_inspector", 403, "该人员不是执法人员（协管员不能签名或作出决定，行政处罚法第42条）",
                                   "The person is not an inspector: auxiliaries cannot sign or decide "
                                   "(Administrative Penalty Law art. 42)")
CertificateHolderRole = errors.error_code("certificate.wrong_role", 422, "只有执法人员可以持有执法证",
                                          "Only inspectors and supervisors hold enforcement certificates")
PasswordChangeRequired = errors.error_code(
    "auth.password_change_required", 403, "这是一次性密码，请先设置您自己的新密码",
    "This is a one-time password: choose your own new password first")
PasswordReused = errors.error_code(
    "auth.password_reused", 422, "新密码不能与原密码相同", "The new password must differ from the old one")

_hasher = PasswordHasher()
# Roles that may hold a certificate and act as inspectors (持证上岗). Supervisors are certified officers too.
CERTIFIED_ROLES = {Role.INSPECTOR, Role.SUPERVISOR}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


def current_user(session: Session) -> User:
    """The signed-in staff member of this request."""
    return get_user(session, current_principal().user_id)


def user_by_name(session: Session, username: str) -> User | None:
    """Names are unique whatever their case (a unique index on lower(username)), and found so."""
    return session.scalar(sa.select(User).where(sa.func.lower(User.username) == username.strip().lower()))


def authenticate(session: Session, username: str, password: str, remote_addr: str | None) -> User:
    """Check a password. Failures are counted (and flushed) before the error is raised;
    the caller commits them even though the request fails."""
    config = current_app.config
    user = user_by_name(session, username)
    now = utcnow()
    if user is None or user.password_hash is None:
        _hasher.hash(password)  # same work as a real check, so timing does not reveal names
        _record_unknown_name(session, remote_addr)
        raise InvalidCredentials()
    if user.locked_until and user.locked_until > now:
        _hasher.hash(password)  # answered as a wrong password, after the same work
        audit.record(session, "web:login:refused_locked", subjects={"user": user.id},
                     payload={"remote_addr": remote_addr}, actor=audit.Actor("anonymous"))
        session.flush()
        raise InvalidCredentials()
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        # Counted in SQL, not read-modify-write: guesses sent in parallel each count.
        user.failed_logins = User.failed_logins + 1
        session.flush()
        payload: dict[str, Any] = {"remote_addr": remote_addr, "failed_logins": user.failed_logins}
        if user.failed_logins >= config["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + dt.timedelta(minutes=config["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
            payload["locked_until"] = user.locked_until.isoformat()
        audit.record(session, "web:login:failed", subjects={"user": user.id}, payload=payload,
                     actor=audit.Actor("anonymous"))
        session.flush()
        raise InvalidCredentials() from None
    if not user.active:
        raise AccountInactive()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, "web:login:succeeded", subjects={"user": user.id},
                 payload={"remote_addr": remote_addr}, actor=audit.Actor("user", str(user.id)))
    session.flush()
    return user


def _record_unknown_name(session: Session, remote_addr: str | None) -> None:
    """Names that are no account are not written down (they are often a password typed in the wrong
    field, or an attacker's list): they are counted per address and hour, and the 1st, 10th, 100th, …
    of a window leaves one audit entry with the count, so a flood cannot fill the permanent log."""
    from server.core import ratelimit

    count, window = ratelimit.count_unknown_name(remote_addr)
    if ratelimit.worth_recording(count):
        audit.record(session, "web:login:unknown_names", actor=audit.Actor("anonymous"),
                     payload={"remote_addr": remote_addr, "failures_in_window": count,
                              "window_start": dt.datetime.fromtimestamp(window, dt.UTC).isoformat()})
        session.flush()


def change_own_password(session: Session, user: User, new_password: str) -> User:
    """The holder, signed in with their current password, chooses a new one; a one-time password
    stops being one. Every other session and token ends."""
    passwords.check(new_password, user.username)  # the one policy of API, console and CLI
    if _verifies(user.password_hash, new_password):
        raise PasswordReused(fields={"new_password": ["与原密码相同 / same as the old one"]})
    was_one_time = user.must_change_password
    user.password_hash = hash_password(new_password)
    user.must_change_password = False
    user.token_generation += 1
    session.flush()
    audit.record(session, "web:password:changed", subjects={"user": user.id},
                 payload={"was_one_time": was_one_time}, actor=audit.Actor("user", str(user.id)))
    return user


def _verifies(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, *, username: str, display_name: str, role: Role | str, unit_id: int,
                password: str | None = None, region_code: str | None = None, phone: str | None = None) -> User:
    if user_by_name(session, username) is not None:
        raise UsernameTaken(fields={"username": ["已存在（不区分大小写）/ already taken (whatever the case)"]})
    if password is not None:
        passwords.check(password, username)
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise UnitNotFound(fields={"unit_id": ["不存在 / does not exist"]})
    region_code = region_code or unit.region_code
    if session.get(Region, region_code) is None:
        raise RegionUnknown(fields={"region_code": [region_code]})
    user = User(username=username, display_name=display_name, role=Role(role), unit_id=unit.id,
                region_code=region_code, phone=phone,
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    audit.record(session, "admin:user:created", subjects={"user": user.id, "unit": unit.id},
                 payload={"username": username, "role": user.role.value, "region_code": region_code})
    return user


def update_user(session: Session, user: User, changes: dict[str, Any]) -> User:
    before = {key: ("***" if key == "password" else _plain(getattr(user, key))) for key in changes}
    for key, value in changes.items():
        if key == "password":
            passwords.check(value, user.username)
            user.password_hash = hash_password(value)
            user.token_generation += 1  # a new password ends every session and token of the account
            continue
        if key == "unit_id" and session.get(Unit, value) is None:
            raise UnitNotFound(fields={"unit_id": ["不存在 / does not exist"]})
        if key == "region_code" and session.get(Region, value) is None:
            raise RegionUnknown(fields={"region_code": [value]})
        setattr(user, key, Role(value) if key == "role" else value)
        if key == "active" and not value:
            user.token_generation += 1  # deactivation ends them too (load_principal also checks active)
    after = {key: ("***" if key == "password" else _plain(getattr(user, key))) for key in changes}
    session.flush()
    audit.record(session, "admin:user:updated", subjects={"user": user.id}, payload={"before": before, "after": after})
    return user


def end_sessions(session: Session, user: User, tag: str, **payload: Any) -> User:
    """End every console session and staff bearer token of ``user`` at their next request: both
    carry the account's token generation, which is checked on every request (logout, a new
    password, deactivation and an administrator's "end all sessions" all come here)."""
    user.token_generation += 1
    session.flush()
    audit.record(session, tag, subjects={"user": user.id}, payload=payload)
    return user


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Role) else value


def add_certificate(session: Session, user: User, *, number: str, issuer: str, scope: str,
                    valid_from: dt.date, valid_until: dt.date) -> Certificate:
    if user.role not in CERTIFIED_ROLES:
        raise CertificateHolderRole()
    if valid_from > valid_until:
        raise errors.ValidationFailed(fields={"valid_until": ["必须不早于起始日 / must not precede valid_from"]})
    if session.scalar(sa.select(Certificate.id).where(Certificate.number == number)) is not None:
        raise CertificateNumberTaken(fields={"number": [number]})
    cert = Certificate(user=user, number=number, issuer=issuer, scope=scope,
                       valid_from=valid_from, valid_until=valid_until)
    session.add(cert)
    session.flush()
    audit.record(session, "admin:certificate:issued", subjects={"user": user.id, "certificate": cert.id},
                 payload={"number": number, "issuer": issuer, "scope": scope,
                          "valid_from": valid_from.isoformat(), "valid_until": valid_until.isoformat()})
    return cert


def set_certificate_status(session: Session, cert: Certificate, status: CertificateStatus, reason: str) -> Certificate:
    before = cert.status.value
    cert.status = status
    cert.status_reason = reason
    session.flush()
    audit.record(session, "admin:certificate:status_changed",
                 subjects={"user": cert.user_id, "certificate": cert.id},
                 payload={"before": before, "after": status.value, "reason": reason})
    return cert


def add_legal_qualification(session: Session, user: User, *, kind: str, number: str,
                            obtained_on: dt.date) -> LegalQualification:
    if session.scalar(sa.select(LegalQualification.id).where(LegalQualification.number == number)):
        raise errors.Conflict(fields={"number": [number]})
    qualification = LegalQualification(user=user, kind=kind, number=number, obtained_on=obtained_on)
    session.add(qualification)
    session.flush()
    audit.record(session, "admin:legal_qualification:recorded", subjects={"user": user.id},
                 payload={"kind": kind, "number": number, "obtained_on": obtained_on.isoformat()})
    return qualification


def valid_certificate(user: User, day: dt.date) -> Certificate | None:
    return next((c for c in user.certificates if c.is_valid_on(day)), None)


def require_inspector(user: User, day: dt.date, *, rule: str = "行政处罚法 第42条") -> Certificate:
    """行政处罚法 第42条: enforcement only by officers holding a certificate valid on that day.
    Auxiliaries (协管员) assist but never count as inspectors. ``rule`` names the article the
    refusal cites (第42条, or 第42、55条 for an investigative act)."""
    if user.role not in CERTIFIED_ROLES or not user.active:
        raise NotAnInspector(user=user.username, rule=rule)
    cert = valid_certificate(user, day)
    if cert is None:
        raise CertificateInvalid(user=user.username, date=day.isoformat(), rule=rule)
    return cert


def scoped_users(session: Session, principal: Principal) -> sa.Select[tuple[User]]:
    """Admins see everyone; a supervisor sees the people of their own unit; others only themselves."""
    query = sa.select(User).order_by(User.id)
    if principal.role == Role.ADMIN.value:
        return query
    if principal.role == Role.SUPERVISOR.value:
        return query.where(User.unit_id == principal.unit_id)
    return query.where(User.id == principal.user_id)


def require_user_scope(principal: Principal, user: User, *, manage: bool = False) -> None:
    if principal.role == Role.ADMIN.value:
        return
    if principal.role == Role.SUPERVISOR.value and user.unit_id == principal.unit_id:
        return
    require(not manage and principal.user_id == user.id, "outside your unit")
