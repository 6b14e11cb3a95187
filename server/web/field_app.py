"""The inspectors' offline-first field app (PWA) at /field/: static files built from ``field/``
(``make field``) and committed under ``server/web/static/field/``, so serving needs no Node.

The shell (index.html) and the service worker are revalidated on every load (``no-cache``), so a
new version is noticed; the hashed bundles are immutable. The app's data comes only from the
device API (/mobile/v1) and tus uploads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, redirect, send_from_directory

FIELD_DIR = Path(__file__).parent / "static" / "field"
blp = Blueprint("field_app", __name__)

_REVALIDATE = {"index.html", "sw.js", "manifest.webmanifest", "version.json"}


def _send(name: str) -> Any:
    if not (FIELD_DIR / name).is_file():
        abort(404)
    revalidate = name in _REVALIDATE
    response = send_from_directory(FIELD_DIR, name, max_age=0 if revalidate else 31536000)
    if revalidate:
        response.headers["Cache-Control"] = "no-cache"
    else:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    if name == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/field/"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blp.get("/field")
def bare() -> Any:
    return redirect("/field/", code=308)


@blp.get("/field/", endpoint="shell")
def shell() -> Any:
    return _send("index.html")


@blp.get("/field/<path:name>", endpoint="asset")
def asset(name: str) -> Any:
    return _send(name)
