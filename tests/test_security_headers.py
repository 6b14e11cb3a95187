"""Security headers (issue 14 #6): every response, pages, the APIs, production, and per-path policies."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.core import headers
from tests import factories
from tests.helpers import staff_headers

HTML = {"Accept": "text/html"}
TEMPLATES = Path(__file__).resolve().parents[1] / "server"


def _csp(response) -> dict[str, str]:
    value = response.headers.get("Content-Security-Policy", "")
    return {part.strip().split(" ", 1)[0]: (part.strip().split(" ", 1) + [""])[1] for part in value.split(";") if part.strip()}


def _common(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]


def test_every_response_carries_nosniff_and_refuses_framing(client):
    for url, status in (("/healthz", 200), ("/api/v1/openapi.json", 200), ("/api/v1/nothing-here", 404),
                        ("/api/v1/auth/me", 401), ("/web-static/console.js", 200), ("/", 200)):
        response = client.get(url)
        response.close()  # a static file is streamed from an open file
        assert response.status_code == status, url
        _common(response)
        assert _csp(response)["frame-ancestors"] == "'none'", url


def test_pages_have_a_csp_without_inline_scripts(client):
    for url in ("/", "/console/login", "/api/v1/docs", "/mobile/v1/docs", "/public/staff"):
        response = client.get(url, headers=HTML)
        assert response.mimetype == "text/html", url
        _common(response)
        csp = _csp(response)
        assert csp["script-src"] == "'self'" and "unsafe" not in response.headers["Content-Security-Policy"], url
        assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'", url
        # and no inline script is left on the page for the CSP to block
        body = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), url
        assert not re.search(r"\son[a-z]+=|javascript:", body), url


def test_json_and_files_get_a_policy_that_allows_nothing(client):
    csp = _csp(client.get("/healthz"))
    assert csp["default-src"] == "'none'" and "sandbox" in csp


def test_api_answers_and_signed_in_pages_are_not_stored(client, db_session):
    user = factories.inspector()
    me = client.get("/api/v1/auth/me", headers=staff_headers(user))
    assert me.status_code == 200 and me.headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/auth/me").headers["Cache-Control"] == "no-store"  # the 401 too
    assert client.get("/mobile/v1/me").headers["Cache-Control"] == "no-store"
    assert client.get("/console/login", headers=HTML).headers["Cache-Control"] == "no-store"
    # a public page for an anonymous visitor may be cached; the same page for a signed-in user may not
    assert "no-store" not in client.get("/", headers=HTML).headers.get("Cache-Control", "")
    assert client.get("/", headers={**HTML, **staff_headers(user)}).headers["Cache-Control"] == "no-store"


def test_hsts_only_in_production(client, fresh_app, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    key = tmp_path / "audit-log-key.pem"  # production starts only with its audit-log key in place
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    production = fresh_app("hsts", ENV="production", AUDIT_LOG_KEY=str(key))
    response = production.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_field_app_gets_its_own_csp_and_camera_permission(client, app):
    """/field/ (the offline app) is configured by path: its service worker script, a 404 and its pages
    all carry its CSP; only there may the page use the camera and the position."""
    response = client.get("/field/sw.js")
    response.close()  # a file response: close it, the headers are all this test reads
    csp = _csp(response)
    assert csp["worker-src"] == "'self'" and csp["connect-src"] == "'self'"
    assert csp["img-src"] == "'self' blob: data:" and csp["media-src"] == "'self' blob:"
    # WebAssembly for the hashing worker, never eval() of JavaScript
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe-eval'" not in csp["script-src"].replace("'wasm-unsafe-eval'", "")
    assert "camera=(self)" in response.headers["Permissions-Policy"]
    assert "geolocation=(self)" in response.headers["Permissions-Policy"]
    page = client.get("/console/login", headers=HTML)
    assert "camera=()" in page.headers["Permissions-Policy"] and "geolocation=()" in page.headers["Permissions-Policy"]
    assert "worker-src" not in _csp(page)
    # a blueprint's own policy wins over the paths
    custom = headers.HeaderPolicy(csp={**headers.PAGE_CSP, "img-src": "'self' https://tiles.example"})
    registry = app.extensions["security_headers"]
    headers.register_blueprint(app, "portal", custom)
    try:
        assert headers.policy_for(app, "/field/x", "portal") is custom
        assert _csp(client.get("/", headers=HTML))["img-src"] == "'self' https://tiles.example"
    finally:
        registry["blueprints"].pop("portal")


@pytest.mark.parametrize("path", sorted(p for p in TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(path):
    """The CSP refuses inline scripts, handlers and style attributes: none may be written."""
    text = path.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
    assert not re.search(r"\son[a-z]+\s*=|javascript:|\sstyle\s*=|<style", text), path


def test_download_names_carry_their_type_and_nothing_else():
    from server.core.downloads import attachment

    assert attachment("ab12", "image/jpeg") == 'attachment; filename="ab12.jpg"'
    assert attachment("scan.JPEG", "image/jpeg") == 'attachment; filename="scan.JPEG"'
    assert attachment("7.pdf", "application/pdf") == 'attachment; filename="7.pdf"'
    assert attachment("note.html", "text/plain") == 'attachment; filename="note.html.txt"'
    assert attachment('../../etc/"x"\r\n;y', "application/zip") == 'attachment; filename="_x____y.zip"'
    chinese = attachment("询问笔录.pdf", "application/pdf")
    assert chinese.startswith('attachment; filename="____.pdf"; filename*=UTF-8\'\'%E8%AF%A2')
