"""Web pages: the public disclosure portal (``/``) and the staff console (``/console/``).

Pages are server-rendered Jinja templates over the same operations as the APIs. Views are thin:
read the form, call one operation, commit once, render. A domain error is shown on the page in
both languages instead of the API's JSON. Every form carries a CSRF token (Flask-WTF); the JSON
APIs, which authenticate with bearer tokens, are exempt.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from server.core import errors
from server.core.access import current_principal
from server.core.http import error_response, handle_http_exception
from server.web import i18n

portal = Blueprint("portal", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/web-static")
console = Blueprint("console", __name__, template_folder="templates")
csrf = CSRFProtect()

HOME_BY_ROLE = {
    "legal_reviewer": "console.review_queue",
    "supervisor": "console.supervisor_home",
    "admin": "console.supervisor_home",
    "prosecutor": "console.transfers",
    "police": "console.transfers",
    "inspector": "console.inspector_home",
    "auxiliary": "console.inspector_home",
}


def wants_html() -> bool:
    """Browsers ask for text/html; API clients and the access-matrix test do not."""
    return "text/html" in request.headers.get("Accept", "")


def safe_next(target: str | None) -> str | None:
    """Only a path on this site may be the page to return to after sign-in."""
    if not target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and target.startswith("/") else None


def _page_to_return_to() -> str | None:
    """After sign-in, back to the page the visitor was on: the URL of a GET, or for a form sent
    after the session ended, the page that held the form (its text is still in the browser)."""
    if request.method in ("GET", "HEAD") and not request.headers.get("HX-Request"):
        return request.full_path.rstrip("?")
    referrer = urlsplit(request.headers.get("HX-Current-URL") or request.referrer or "")
    if referrer.netloc != request.host:
        return None
    return safe_next(referrer.path + (f"?{referrer.query}" if referrer.query else ""))


def _sign_in_again() -> Any:
    """A console page without a valid session goes to sign-in, saying so if the session expired.
    A background poll (htmx) cannot follow a redirect itself, so it is told to send the page there."""
    target = url_for("console.login", next=_page_to_return_to(), expired="1" if g.get("session_expired") else None)
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


def _render_error(exc: errors.DomainError) -> Any:
    if not wants_html() and not request.headers.get("HX-Request"):
        return error_response(exc)
    if isinstance(exc, errors.AuthRequired) and request.blueprint == "console":
        return _sign_in_again()
    return render_template("error.html", error=exc), exc.status


def _render_http(exc: HTTPException) -> Any:
    if not wants_html():
        return handle_http_exception(exc)
    if isinstance(exc, CSRFError):
        return render_template("error.html", message_key="csrf"), 400
    error = {404: errors.NotFound, 403: errors.Forbidden, 405: errors.MethodNotAllowed}.get(exc.code or 500)
    if error is None:
        return handle_http_exception(exc)
    return render_template("error.html", error=error()), exc.code


for _bp in (portal, console):
    _bp.register_error_handler(errors.DomainError, _render_error)
    _bp.register_error_handler(HTTPException, _render_http)


def init_app(app: Flask) -> None:
    from server.web import console_cases, console_home, console_review, console_supervise, console_transfers  # noqa: F401
    from server.web import portal_views  # noqa: F401

    app.register_blueprint(portal)
    app.register_blueprint(console, url_prefix="/console")
    from server.web import field_app

    app.register_blueprint(field_app.blp)
    # CSRF for the pages' forms only; its check runs after the policy check (registered later).
    for name, blueprint in app.blueprints.items():
        if name not in ("portal", "console"):
            csrf.exempt(blueprint)
    # A token lives as long as the session: a long review opinion must not outlive its form.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    from server.web.common import page_url

    app.jinja_env.globals.update(t=i18n.t, pick=i18n.pick, lang=i18n.current, page_url=page_url)
    app.jinja_env.filters["local_time"] = i18n.local_time

    @app.context_processor
    def _page_globals() -> dict[str, Any]:
        principal = current_principal() if g.get("principal") else None
        return {"principal": principal, "home_endpoint": HOME_BY_ROLE.get(principal.role) if principal and
                principal.is_authenticated else None}
