from __future__ import annotations

import time
from typing import Any

from flask import current_app, g, request, session as web_session
from sqlalchemy.orm import Session

from server.core import tokens
from server.core.access import Principal
from server.extensions import db
from server.modules.devices.models import Device
from server.modules.devices.operations import DeviceRevoked
from server.modules.users.models import User
from server.modules.users.operations import AccountInactive, PasswordChangeRequired


def staff_token(user: User) -> dict[str, Any]:
    ttl = current_app.config["STAFF_TOKEN_TTL_S"]
    return {"access_token": tokens.sign({"k": "s", "u": user.id, "g": user.token_generation}),
            "token_type": "Bearer", "expires_in": ttl}


def _max_age(claims: dict[str, Any]) -> int:
    config = current_app.config
    return config["DEVICE_TOKEN_TTL_S"] if claims.get("k") == "d" else config["STAFF_TOKEN_TTL_S"]


def _user_principal(user: User) -> Principal:
    return Principal(kind="user", role=user.role.value, user_id=user.id, unit_id=user.unit_id,
                     region_code=user.region_code, username=user.username)


def load_principal(token: str) -> Principal:
    """Resolve a bearer token; a revoked device or a deactivated user is refused at once."""
    claims = tokens.verify(token, _max_age)
    session: Session = db.session
    if claims.get("k") == "s":
        user = session.get(User, claims.get("u"))
        if user is None or user.token_generation != claims.get("g"):
            raise tokens.TokenInvalid()
        if not user.active:
            raise AccountInactive()
        if user.must_change_password:  # a token issued before a one-time password was set
            raise PasswordChangeRequired()
        return _user_principal(user)
    if claims.get("k") == "d":
        device = session.get(Device, claims.get("d"))
        if device is None:
            raise tokens.TokenInvalid()
        if device.revoked_at is not None:
            raise DeviceRevoked()
        user = device.user
        if not user.active:
            raise AccountInactive()
        return Principal(kind="device", role=user.role.value, user_id=user.id, device_id=device.id,
                         unit_id=user.unit_id, region_code=user.region_code, username=user.username)
    raise tokens.TokenInvalid()


def start_session(user: User) -> None:
    """Sign a user in to the pages: a fresh session that remembers when it began and was last used."""
    now = int(time.time())
    web_session.clear()
    web_session.permanent = True
    web_session.update({"user_id": user.id, "g": user.token_generation, "since": now, "seen": now})


def load_session_principal() -> Principal | None:
    """The web pages' signed-cookie session. It ends after SESSION_IDLE_MINUTES without a request
    or SESSION_MAX_HOURS after sign-in (``g.session_expired`` tells the pages to say so). A page's
    background poll (an htmx GET) does not count as use, so an open progress page does not keep a
    session alive."""
    user_id = web_session.get("user_id")
    if user_id is None:
        return None
    config, now = current_app.config, time.time()
    idle = now - web_session.get("seen", 0) > config["SESSION_IDLE_MINUTES"] * 60
    if idle or now - web_session.get("since", 0) > config["SESSION_MAX_HOURS"] * 3600:
        web_session.clear()
        g.session_expired = True
        return None
    user = db.session.get(User, user_id)
    if (user is None or not user.active or user.must_change_password
            or web_session.get("g") != user.token_generation):
        web_session.clear()
        return None
    if not (request.method == "GET" and request.headers.get("HX-Request")):
        web_session["seen"] = int(now)
    return _user_principal(user)
