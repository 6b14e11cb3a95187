from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g, request, session as web_session
from flask_wtf.csrf import validate_csrf
from sqlalchemy.orm import Session
from wtforms import ValidationError

from server.core import errors, tokens
from server.core.access import Principal
from server.extensions import db
from server.modules.devices.models import Device
from server.modules.devices.operations import DeviceRevoked
from server.modules.users.models import User
from server.modules.users.operations import AccountInactive, PasswordChangeRequired


CsrfRefused = errors.error_code(
    "auth.csrf_refused", 403, "以浏览器会话调用接口的写操作须携带 CSRF 令牌并来自本站（Origin）",
    "A write through the API with the browser session needs the CSRF token and a same-origin Origin header")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The pages' forms carry Flask-WTF's token, checked by CSRFProtect (server/web); any other
# endpoint reached with the session cookie is an API, checked here.
PAGE_BLUEPRINTS = frozenset({"console", "portal"})


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
        # An access token from before generations were numbered is generation 1.
        if device is None or device.token_generation != claims.get("g", 1):
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
    refusal = _cookie_write_refusal()
    if refusal is not None:
        # Not signed in for this request: a public endpoint (an API login) still answers, as to
        # anyone; any other is refused with this error rather than a bare "sign in".
        g.auth_refusal = refusal
        return None
    if not (request.method == "GET" and request.headers.get("HX-Request")):
        web_session["seen"] = int(now)
    return _user_principal(user)


def _same_origin() -> bool:
    """The browser's ``Origin`` (or, where it sends none, the ``Referer``) names this site."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    parts = urlsplit(source)
    return bool(parts.scheme) and (parts.scheme, parts.netloc) == (request.scheme, request.host)


def _cookie_write_refusal() -> errors.DomainError | None:
    """The session cookie rides along on any request a browser sends, a forged one from another
    site included: an API write authenticated by it must also carry the page's CSRF token
    (``X-CSRFToken``, as the console's htmx sends it) and come from this origin. Bearer tokens are
    never sent by a browser on its own, so they need neither."""
    if request.method in SAFE_METHODS or request.blueprint in PAGE_BLUEPRINTS:
        return None
    if not _same_origin():
        return CsrfRefused("cross-origin or origin-less write with the session cookie")
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError as exc:
        return CsrfRefused(str(exc))
    return None
