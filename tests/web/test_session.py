"""How long a console sign-in lasts: an idle limit and an absolute limit (server/config.py), and what
an expired session does to the page the user was on (back to it after sign-in)."""
from __future__ import annotations

import datetime as dt
import email.utils
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from server.config import ConfigError, load
from server.extensions import db
from tests.web.conftest import HTML, PASSWORD, csrf_of, sign_in


def _age(client, **seconds: int) -> None:
    """Move the session's clocks back, as if that much time had passed in the browser."""
    with client.session_transaction() as session:
        for key, by in seconds.items():
            session[key] -= by


def _login_target(response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.status_code
    location = urlsplit(response.headers["Location"])
    assert location.path == "/console/login", response.headers["Location"]
    return parse_qs(location.query)


def _pending_review(app) -> int:
    from server.modules.reviews.models import LegalReview, ReviewStatus

    with app.app_context():
        return db.session.scalar(sa.select(LegalReview.id).where(LegalReview.status == ReviewStatus.PENDING)
                                 .order_by(LegalReview.id))


def test_the_defaults_are_thirty_minutes_idle_and_twelve_hours_in_all(web_app):
    assert web_app.config["SESSION_IDLE_MINUTES"] == 30 and web_app.config["SESSION_MAX_HOURS"] == 12
    client = web_app.test_client()
    response = sign_in(client, "reviewer1")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    expires = email.utils.parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    lifetime = expires - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(hours=11) < lifetime <= dt.timedelta(hours=12), lifetime  # not Flask's 31 days


def test_an_idle_session_ends_and_says_so(web_app):
    client = web_app.test_client()
    sign_in(client, "reviewer1")
    assert client.get("/console/reviews", headers=HTML).status_code == 200
    _age(client, seen=29 * 60)
    assert client.get("/console/reviews", headers=HTML).status_code == 200  # use restarts the idle clock
    _age(client, seen=29 * 60)
    assert client.get("/console/reviews", headers=HTML).status_code == 200
    _age(client, seen=31 * 60)
    target = _login_target(client.get("/console/reviews", headers=HTML))
    assert target == {"next": ["/console/reviews"], "expired": ["1"]}
    page = client.get("/console/login?next=/console/reviews&expired=1", headers=HTML).get_data(as_text=True)
    assert "登录已过期" in page and "未提交的意见已保存在本浏览器" in page
    # the session is gone: a visit now is a plain "sign in first", not "expired" again
    assert _login_target(client.get("/console/reviews", headers=HTML)) == {"next": ["/console/reviews"]}
    assert "请先登录" in client.get("/console/login?next=/console/reviews", headers=HTML).get_data(as_text=True)


def test_an_active_session_still_ends_at_the_absolute_limit(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    _age(client, since=12 * 3600 - 60)
    assert client.get("/console/supervisor", headers=HTML).status_code == 200
    _age(client, since=120)
    assert _login_target(client.get("/console/supervisor", headers=HTML))["expired"] == ["1"]


def test_a_background_poll_does_not_keep_the_session_alive(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    _age(client, seen=20 * 60)
    with client.session_transaction() as session:
        before = session["seen"]
    assert client.get("/console/supervisor", headers={"HX-Request": "true"}).status_code == 200
    with client.session_transaction() as session:
        assert session["seen"] == before
    _age(client, seen=11 * 60)
    expired = client.get("/console/supervisor", headers={"HX-Request": "true",
                                                          "HX-Current-URL": "http://localhost/console/sync"})
    assert expired.status_code == 401 and expired.headers["HX-Redirect"] == \
        "/console/login?next=/console/sync&expired=1"


def test_a_form_sent_after_expiry_returns_to_its_page_after_sign_in(web_app):
    review_id = _pending_review(web_app)
    client = web_app.test_client()
    sign_in(client, "reviewer1")
    page = client.get(f"/console/reviews/{review_id}", headers=HTML).get_data(as_text=True)
    assert 'data-keep="review-' in page  # the opinion is kept in the browser while it is typed
    token = csrf_of(page)
    _age(client, seen=45 * 60)
    sent = client.post(f"/console/reviews/{review_id}/decision", headers={
        **HTML, "Referer": f"http://localhost/console/reviews/{review_id}"},
        data={"csrf_token": token, "outcome": "pass", "opinion": "事实清楚，证据确凿"})
    target = _login_target(sent)
    assert target == {"next": [f"/console/reviews/{review_id}"], "expired": ["1"]}  # the page, not the POST URL
    login = client.get(f"/console/login?next=/console/reviews/{review_id}&expired=1", headers=HTML)
    assert "data-keep-drafts" in login.get_data(as_text=True)  # console.js keeps the draft on this page
    back = client.post("/console/login", headers=HTML, data={
        "username": "reviewer1", "password": PASSWORD, "next": f"/console/reviews/{review_id}",
        "csrf_token": csrf_of(login.get_data(as_text=True))})
    assert back.status_code == 302 and back.headers["Location"] == f"/console/reviews/{review_id}"
    from server.modules.reviews.models import LegalReview, ReviewStatus

    with web_app.app_context():  # nothing was decided by the expired request
        assert db.session.get(LegalReview, review_id).status is ReviewStatus.PENDING


def test_a_referrer_from_another_site_is_not_followed(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    _age(client, seen=31 * 60)
    sent = client.post("/console/sync/conflicts/1", headers={**HTML, "Referer": "https://evil.example/console/sync"},
                       data={"reason": "x"})
    assert _login_target(sent) == {"expired": ["1"]}


def test_a_session_signed_before_the_limits_existed_is_expired(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    with client.session_transaction() as session:
        del session["since"], session["seen"]
    assert _login_target(client.get("/console/supervisor", headers=HTML))["expired"] == ["1"]


@pytest.mark.parametrize("environ, message", [
    ({"ENFORCE_SESSION_IDLE_MINUTES": "0"}, "ENFORCE_SESSION_IDLE_MINUTES must be positive"),
    ({"ENFORCE_SESSION_MAX_HOURS": "-1"}, "ENFORCE_SESSION_MAX_HOURS must be positive"),
    ({"ENFORCE_SESSION_IDLE_MINUTES": "61", "ENFORCE_SESSION_MAX_HOURS": "1"},
     "ENFORCE_SESSION_IDLE_MINUTES is longer than ENFORCE_SESSION_MAX_HOURS"),
    ({"ENFORCE_SESSION_IDLE_MINUTES": "half an hour"}, "ENFORCE_SESSION_IDLE_MINUTES"),
])
def test_bad_session_limits_stop_start_up(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message):
        load(str(tmp_path), environ={"ENFORCE_SECRET_KEY": "a-long-enough-secret-key", **environ})


def test_session_limits_come_from_the_environment(tmp_path):
    values = load(str(tmp_path), environ={"ENFORCE_SECRET_KEY": "a-long-enough-secret-key",
                                          "ENFORCE_SESSION_IDLE_MINUTES": "15", "ENFORCE_SESSION_MAX_HOURS": "8"})
    assert (values["SESSION_IDLE_MINUTES"], values["SESSION_MAX_HOURS"]) == (15, 8)


def test_a_page_asked_for_without_a_session_is_remembered_for_after_sign_in(web_app):
    client = web_app.test_client()
    for method in (client.get, client.head):
        assert _login_target(method("/console/reviews?page=2", headers=HTML)) == {"next": ["/console/reviews?page=2"]}
