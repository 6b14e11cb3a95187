"""Issue 14 items 4 and 5: console sessions end on the server (logout, new password, deactivation,
an administrator's "end all sessions"), and the staff API refuses a forged write riding on the
session cookie while the console's own same-origin call with its CSRF token goes through."""
from __future__ import annotations

import re

import sqlalchemy as sa

from server.extensions import db
from server.modules.users.cli import users_cli
from server.modules.users.models import User
from tests.helpers import assert_contract, staff_headers
from tests.web.conftest import HTML, csrf_of, sign_in

ORIGIN = "http://localhost"


def _cookie(client) -> str:
    return client.get_cookie("session").value


def _with_cookie(app, value: str):
    """Another browser holding a copy of the cookie (taken before the sign-out)."""
    other = app.test_client()
    other.set_cookie("session", value)
    return other


def _user(app, username: str) -> User:
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.username == username))


def _still_works(app, cookie: str) -> bool:
    copy = _with_cookie(app, cookie)
    me = copy.get("/api/v1/auth/me")
    page = copy.get("/console/reviews", headers=HTML)
    assert (me.status_code == 200) == (page.status_code == 200), (me.status_code, page.status_code)
    return me.status_code == 200


def test_logout_ends_the_session_on_the_server(web_app):
    client = web_app.test_client()
    sign_in(client, "reviewer1")
    cookie = _cookie(client)
    assert _still_works(web_app, cookie)
    page = client.get("/console/reviews", headers=HTML).get_data(as_text=True)
    assert client.post("/console/logout", headers=HTML, data={"csrf_token": csrf_of(page)}).status_code == 302
    assert not _still_works(web_app, cookie)
    assert_contract(_with_cookie(web_app, cookie).get("/api/v1/auth/me"), 401)
    assert client.get("/console/reviews", headers=HTML).status_code == 302  # the browser that signed out


def test_a_new_password_deactivation_and_end_all_sessions_end_them(web_app):
    reviewer = _user(web_app, "reviewer2")
    with web_app.test_request_context():
        admin = staff_headers(_user(web_app, "admin"))
    api = web_app.test_client()

    for change in ({"password": "Qinling-2026"}, {"active": False}, None):
        client = web_app.test_client()
        sign_in(client, "reviewer2")
        cookie = _cookie(client)
        with web_app.test_request_context():
            bearer = staff_headers(_user(web_app, "reviewer2"))
        assert _still_works(web_app, cookie) and api.get("/api/v1/auth/me", headers=bearer).status_code == 200
        if change is None:
            response = api.post(f"/api/v1/users/{reviewer.id}/sessions/end", headers=admin)
        else:
            response = api.patch(f"/api/v1/users/{reviewer.id}", json=change, headers=admin)
        assert response.status_code in (200, 204), response.get_data(as_text=True)
        assert not _still_works(web_app, cookie)
        assert api.get("/api/v1/auth/me", headers=bearer).status_code in (401, 403)
        if change == {"active": False}:
            assert api.patch(f"/api/v1/users/{reviewer.id}", json={"active": True}, headers=admin).status_code == 200


def test_only_an_administrator_ends_someone_elses_sessions_and_the_cli_does_too(web_app):
    reviewer = _user(web_app, "reviewer1")
    with web_app.test_request_context():
        supervisor = staff_headers(_user(web_app, "supervisor"))
    assert_contract(web_app.test_client().post(f"/api/v1/users/{reviewer.id}/sessions/end", headers=supervisor), 403)

    client = web_app.test_client()
    sign_in(client, "reviewer1")
    cookie = _cookie(client)
    assert _still_works(web_app, cookie)
    result = web_app.test_cli_runner().invoke(users_cli, ["end-sessions", "reviewer1"])
    assert result.exit_code == 0, result.output
    assert not _still_works(web_app, cookie)
    missing = web_app.test_cli_runner().invoke(users_cli, ["end-sessions", "nobody-such"])
    assert missing.exit_code != 0 and "user.not_found" in missing.output


# ---- item 5: CSRF on the API ----------------------------------------------------------------------

def _signed_in_supervisor(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    page = client.get("/console/supervisor", headers=HTML).get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)  # what the console's htmx sends
    return client, token


def test_a_forged_cross_site_write_with_the_cookie_is_refused(web_app):
    client, token = _signed_in_supervisor(web_app)
    forged = [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},  # the reported attack
        {"Origin": "http://evil.example", "X-CSRFToken": token},  # a token does not excuse another origin
        {"Origin": ORIGIN},  # same origin but no token
        {"Origin": ORIGIN, "X-CSRFToken": "forged"},
        {"X-CSRFToken": token},  # neither Origin nor Referer
        {"Referer": "http://evil.example/page", "X-CSRFToken": token},
    ]
    for headers in forged:
        assert_contract(client.post("/api/v1/audit/checkpoints", headers=headers, data="x"), 403, "auth.csrf_refused")
    for path in ("/api/v1/auth/logout", "/api/v1/draws/nope/publish"):
        assert_contract(client.post(path, headers={"Origin": "http://evil.example"}), 403, "auth.csrf_refused")
    assert client.get("/api/v1/auth/me").status_code == 200  # reads stay open to the cookie (downloads)
    # a public endpoint answers as to anyone: the cookie just does not count
    login = client.post("/api/v1/auth/login", json={"username": "supervisor", "password": "wrong-password-0"},
                        headers={"Origin": "http://evil.example"})
    assert_contract(login, 401, "auth.invalid_credentials")


def test_the_same_origin_write_with_the_token_and_a_bearer_write_go_through(web_app):
    client, token = _signed_in_supervisor(web_app)
    response = client.post("/api/v1/audit/checkpoints", headers={"Origin": ORIGIN, "X-CSRFToken": token})
    assert response.status_code == 201, response.get_data(as_text=True)
    referred = client.post("/api/v1/audit/checkpoints", headers={"Referer": f"{ORIGIN}/console/supervisor",
                                                                  "X-CSRFToken": token})
    assert referred.status_code == 201, referred.get_data(as_text=True)
    with web_app.test_request_context():
        bearer = staff_headers(_user(web_app, "supervisor"))
    api = web_app.test_client()  # no cookie: a bearer token needs no CSRF token
    assert api.post("/api/v1/audit/checkpoints", headers={**bearer, "Origin": "http://evil.example"}).status_code == 201
