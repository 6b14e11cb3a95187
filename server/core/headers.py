"""Security headers on every response, from one ``after_request`` hook.

What each response gets:

* every response: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: same-origin``, a ``Permissions-Policy`` and, in production, HSTS;
* HTML: the Content-Security-Policy of its path (no inline scripts anywhere: the pages load
  their scripts from files); other responses (JSON, files) a CSP that allows nothing, so a
  document opened by mistake in the browser runs nothing either;
* the APIs, the console and anything answered to a signed-in caller: ``Cache-Control: no-store``.

Policies are chosen by path prefix (the longest registered prefix wins) or by blueprint name
(which wins over paths), so a part of the site with other needs, such as the ``/field/`` app
with its service worker, camera and geolocation, gets its own CSP and Permissions-Policy
without loosening the console's: ``register_path(app, "/field/", FIELD)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, g, request

# The console and portal: scripts and styles from this site only, nothing inline, no framing.
PAGE_CSP: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# JSON, files and anything else that is not a page: nothing may run or load.
NONE_CSP: dict[str, str] = {"default-src": "'none'", "frame-ancestors": "'none'", "sandbox": ""}
# Browser features no page of the console or portal uses.
NO_FEATURES: dict[str, str] = {"camera": "()", "microphone": "()", "geolocation": "()", "payment": "()",
                               "usb": "()", "serial": "()", "bluetooth": "()"}


@dataclass(frozen=True)
class HeaderPolicy:
    """The CSP and Permissions-Policy of one part of the site. ``every_response`` sends the CSP on
    scripts and data too (a service worker's script takes the CSP it is served with)."""

    csp: dict[str, str] = field(default_factory=lambda: dict(PAGE_CSP))
    permissions: dict[str, str] = field(default_factory=lambda: dict(NO_FEATURES))
    every_response: bool = False

    def csp_header(self) -> str:
        return "; ".join(f"{name} {value}".strip() for name, value in self.csp.items())

    def permissions_header(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.permissions.items())


PAGES = HeaderPolicy()
# The offline field app (/field/): a service worker, WebCrypto and IndexedDB (need no directive),
# photos and video from the camera shown as blob: URLs, and the position of the inspector. Its
# hashing worker compiles WebAssembly (hash-wasm's SHA-256), which CSP allows only with
# 'wasm-unsafe-eval': that admits WebAssembly compilation, not eval() of JavaScript.
FIELD = HeaderPolicy(
    csp={**PAGE_CSP, "script-src": "'self' 'wasm-unsafe-eval'", "worker-src": "'self'", "manifest-src": "'self'",
         "connect-src": "'self'",
         "img-src": "'self' blob: data:", "media-src": "'self' blob:"},
    permissions={**NO_FEATURES, "camera": "(self)", "geolocation": "(self)"},
    every_response=True,
)
API = HeaderPolicy(csp=dict(NONE_CSP))

# Paths whose answers are never stored by a browser or a proxy, signed in or not.
NO_STORE_PREFIXES = ("/api/", "/mobile/", "/console/")
HSTS = "max-age=31536000; includeSubDomains"


def _registry(app: Flask) -> dict[str, dict[str, HeaderPolicy]]:
    return app.extensions.setdefault("security_headers", {"paths": {}, "blueprints": {}})


def register_path(app: Flask, prefix: str, policy: HeaderPolicy) -> None:
    """Give every response under ``prefix`` (e.g. ``"/field/"``) its own policy."""
    _registry(app)["paths"][prefix] = policy


def register_blueprint(app: Flask, name: str, policy: HeaderPolicy) -> None:
    """Give every response of blueprint ``name`` its own policy (wins over path prefixes)."""
    _registry(app)["blueprints"][name] = policy


def policy_for(app: Flask, path: str, blueprint: str | None) -> HeaderPolicy:
    registry = _registry(app)
    if blueprint and blueprint in registry["blueprints"]:
        return registry["blueprints"][blueprint]
    matches = [prefix for prefix in registry["paths"] if path.startswith(prefix)]
    return registry["paths"][max(matches, key=len)] if matches else PAGES


def _signed_in() -> bool:
    principal = g.get("principal")
    return bool(principal is not None and principal.is_authenticated)


def apply(app: Flask, response: Any) -> Any:
    headers = response.headers
    policy = policy_for(app, request.path, request.blueprint)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Permissions-Policy"] = policy.permissions_header()
    if policy.every_response or response.mimetype == "text/html":
        headers["Content-Security-Policy"] = policy.csp_header()
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
    else:
        headers.setdefault("Content-Security-Policy", API.csp_header())
    if request.path.startswith(NO_STORE_PREFIXES) or _signed_in():
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
        headers.pop("Last-Modified", None)
    if app.config["ENV"] == "production":
        headers["Strict-Transport-Security"] = HSTS
    return response


def init_app(app: Flask) -> None:
    register_path(app, "/field/", FIELD)

    @app.after_request
    def _security_headers(response: Any) -> Any:
        return apply(app, response)


__all__ = ["API", "FIELD", "PAGES", "HeaderPolicy", "init_app", "policy_for", "register_blueprint",
           "register_path"]
