"""Signed bearer tokens (HMAC via itsdangerous). What a token grants is re-checked in the database
on every request, so revoking a device or deactivating a user takes effect at once."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any, Callable

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from server.core import errors

TokenExpired = errors.error_code("auth.token_expired", 401, "令牌已过期，请刷新或重新登录",
                                 "The token has expired; refresh it or log in again")
TokenInvalid = errors.error_code("auth.token_invalid", 401, "令牌无效", "The token is invalid")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="qinling-field.bearer")


def sign(claims: dict[str, Any]) -> str:
    return _serializer().dumps(claims)


def verify(token: str, max_age_s: Callable[[dict[str, Any]], int]) -> dict[str, Any]:
    """Check the signature, then the age allowed for this kind of token."""
    try:
        claims, issued = _serializer().loads(token, return_timestamp=True)
    except BadSignature:
        raise TokenInvalid() from None
    if not isinstance(claims, dict):
        raise TokenInvalid()
    if (dt.datetime.now(dt.UTC) - issued).total_seconds() > max_age_s(claims):
        raise TokenExpired()
    return claims


def new_opaque() -> tuple[str, str]:
    """A random opaque token and the sha256 hex we store instead of it."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def opaque_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
