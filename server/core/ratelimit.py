"""Rate limits (Flask-Limiter): sign-in per client address and per account, token refresh, device
registration and the public pages and API. Counters live in Redis when the broker is Redis (all
workers and hosts share them), else in the process's memory (the embedded default).

Each app has its own ``Limiter`` (``app.extensions["rate_limiter"]``): the tests build several apps
with different storage and limits in one process. The limits are settings (``ENFORCE_*_LIMIT*``),
in the ``limits`` notation: ``"10 per minute; 50 per hour"``.
"""
from __future__ import annotations

import hashlib
import time
from contextlib import ExitStack
from typing import Any, Callable

from flask import Flask, current_app, g, render_template, request
from flask_limiter import Limiter, RateLimitExceeded

from server.core import errors
from server.core.http import error_response

# Failed attempts count; a successful sign-in or refresh does not use up anything.
FAILED = frozenset({401})
UNKNOWN_NAME_WINDOW_S = 3600


def client_address() -> str:
    return request.remote_addr or "unknown"


def _login_account() -> str:
    """The account a sign-in is for, as typed (API JSON or console form), case-folded and hashed: the
    counters' keys do not keep what was typed (often a password in the wrong field)."""
    body = request.get_json(silent=True) if request.is_json else None
    name = body.get("username") if isinstance(body, dict) else request.form.get("username")
    folded = name.strip().lower() if isinstance(name, str) else ""
    return "account:" + hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _signed_in_user() -> str:
    principal = g.get("principal")
    return f"user:{principal.user_id}" if principal is not None and principal.user_id else client_address()


def _failed(response: Any) -> bool:
    return response.status_code in FAILED


def storage_uri(config: dict[str, Any]) -> str:
    broker = config["BROKER_URL"]
    return broker if broker.startswith(("redis://", "rediss://")) else "memory://"


def limiter(app: Flask | None = None) -> Limiter:
    return (app or current_app).extensions["rate_limiter"]


def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def login_limits() -> ExitStack:
    """``with login_limits(): …`` around a sign-in (API and console share the counters): 429 once the
    address or the account has used up its failed attempts; a failure (401) counts against both."""
    stack = ExitStack()
    lim = limiter()
    stack.enter_context(lim.shared_limit(_setting("LOGIN_LIMIT_PER_ADDRESS"), "login-address",
                                         key_func=client_address, deduct_when=_failed))
    stack.enter_context(lim.shared_limit(_setting("LOGIN_LIMIT_PER_ACCOUNT"), "login-account",
                                         key_func=_login_account, deduct_when=_failed))
    return stack


def refresh_limits() -> Any:
    """Failed device token refreshes per client address."""
    return limiter().shared_limit(_setting("REFRESH_LIMIT_PER_ADDRESS"), "refresh-address",
                                  key_func=client_address, deduct_when=_failed)


def registration_limits() -> Any:
    """Device registrations per staff account (every attempt counts)."""
    return limiter().shared_limit(_setting("DEVICE_REGISTRATION_LIMIT"), "device-registration",
                                  key_func=_signed_in_user)


def count_unknown_name(remote_addr: str | None) -> tuple[int, int]:
    """Count a sign-in with a name that is no account, per address and hour, in the limiter's storage.
    Returns (failures so far in this window, the window's start, Unix seconds)."""
    window = int(time.time()) // UNKNOWN_NAME_WINDOW_S * UNKNOWN_NAME_WINDOW_S
    key = f"{current_app.config['RATELIMIT_KEY_PREFIX']}/unknown-name/{remote_addr or 'unknown'}/{window}"
    try:
        return int(limiter().storage.incr(key, UNKNOWN_NAME_WINDOW_S)), window
    except Exception:  # noqa: BLE001 - storage down: record the attempt rather than lose it
        current_app.logger.warning("rate limit storage unavailable; counting an unknown name as first")
        return 1, window


def worth_recording(count: int) -> bool:
    """1st, 10th, 100th, … failure of a window: a flood leaves a handful of audit entries."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


def _retry_after() -> int:
    current = limiter().current_limit
    if current is not None:
        return max(1, int(current.reset_at - time.time()))
    return 60


def _too_many(exc: RateLimitExceeded) -> Any:
    wait = _retry_after()
    error = errors.RateLimited(retry_after_s=wait)
    if "text/html" in request.headers.get("Accept", "") and request.blueprint in ("portal", "console"):
        template = "console/login.html" if request.endpoint == "console.login" else "error.html"
        response = current_app.make_response((render_template(template, error=error, next=None, expired=False),
                                              429))
    else:
        response = error_response(error)
    response.headers["Retry-After"] = str(wait)
    return response


def init_app(app: Flask) -> None:
    """After every blueprint is registered (the public ones get their limit by name)."""
    config = app.config
    config.setdefault("RATELIMIT_KEY_PREFIX", "enforce-limits")
    config["RATELIMIT_STORAGE_URI"] = storage_uri(config)
    config["RATELIMIT_STRATEGY"] = "moving-window"
    config["RATELIMIT_HEADERS_ENABLED"] = False  # Retry-After on the 429 only (``_too_many``)
    # If Redis is down, sign-in still works, counted per process, rather than failing closed.
    config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    config["RATELIMIT_SWALLOW_ERRORS"] = True
    lim = Limiter(key_func=client_address, app=app)
    app.extensions["rate_limiter"] = lim
    public = lim.shared_limit(_setting("PUBLIC_LIMIT_PER_ADDRESS"), "public", key_func=client_address,
                              exempt_when=lambda: request.endpoint == "portal.static")
    for name in ("portal", "audit_public", "disclosure_public"):
        if name in app.blueprints:
            public(app.blueprints[name])
    app.register_error_handler(RateLimitExceeded, _too_many)
