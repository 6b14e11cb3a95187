"""Every page × every role, by the test client: admitted roles see the page, others are refused
(HTML for browsers, the JSON contract for API clients); CSRF, sign-in errors and language."""
from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from server import policy
from server.core.access import ALL_ROLES, PUBLIC, allowed_roles
from server.extensions import db
from tests.web.conftest import HTML, csrf_of, sign_in

USERS = {"supervisor": "supervisor", "legal_reviewer": "reviewer1", "prosecutor": "prosecutor", "police": "police",
         "inspector": "inspector01", "auxiliary": "auxiliary.shangzhou", "admin": "admin"}


def _values(app: Any) -> dict[str, str]:
    from server.modules.cases.models import Case
    from server.modules.directory.models import Target
    from server.modules.reviews.models import LegalReview

    with app.app_context():
        return {"review_id": str(db.session.scalar(sa.select(LegalReview.id))),
                "case_id": db.session.scalar(sa.select(Case.id).where(Case.number.is_not(None))),
                "target_id": str(db.session.scalar(sa.select(Target.id))),
                "draw_id": "0" * 36, "transfer_id": "0" * 36, "package_id": "0" * 36, "import_id": "0" * 36,
                "device_id": "0" * 36,
                "code": "en"}


def _page_rules(app: Any) -> list[tuple[str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("portal", "console") and "GET" in rule.methods \
                and rule.endpoint != "portal.static":
            rules.append((rule.endpoint, rule.rule))
    return sorted(rules)


def _url(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([a-z_]+)>", lambda m: values[m.group(1)], rule)


@pytest.mark.parametrize("role", ["public", *USERS])
def test_every_page_admits_its_roles_and_refuses_the_others(web_app, role):
    client = web_app.test_client()
    if role != PUBLIC:
        assert sign_in(client, USERS[role]).status_code == 302
    values = _values(web_app)
    problems = []
    for endpoint, rule in _page_rules(web_app):
        roles = allowed_roles(endpoint, "GET")
        admitted = PUBLIC in roles or role in roles
        response = client.get(_url(rule, values), headers=HTML)
        body = response.get_data(as_text=True)
        where = f"GET {rule} ({endpoint}) as {role}: {response.status_code}"
        if admitted:
            if response.status_code >= 500 or "may not call" in body or response.status_code == 401:
                problems.append(f"admitted but failed: {where} {body[:300]}")
            if response.status_code == 200 and response.mimetype == "text/html":
                assert re.search(r"<title>[^<]+ · ", body), f"no title: {where}"
        elif role == PUBLIC:
            if response.status_code != 302 or "/console/login" not in response.headers["Location"]:
                problems.append(f"anonymous not sent to sign-in: {where}")
        elif response.status_code != 403 or "may not call" not in body:
            problems.append(f"should be refused: {where}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ["public", *USERS])
def test_every_form_refuses_the_roles_it_is_not_for(web_app, role):
    """POSTs without a CSRF token: a role the table does not admit is refused by the policy (403, or
    sign-in for the anonymous); an admitted one gets past it and is stopped by the CSRF check (400)."""
    client = web_app.test_client()
    if role != PUBLIC:
        assert sign_in(client, USERS[role]).status_code == 302
    values = {**_values(web_app), "action": "freeze", "conflict_id": "1", "plan_id": "1", "request_id": "1"}
    problems = []
    for rule in web_app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("portal", "console") or "POST" not in rule.methods:
            continue
        roles = allowed_roles(rule.endpoint, "POST")
        response = client.post(_url(rule.rule, values), headers=HTML)
        where = f"POST {rule.rule} ({rule.endpoint}) as {role}: {response.status_code}"
        if PUBLIC in roles or role in roles:
            if response.status_code != 400 or "表单已过期" not in response.get_data(as_text=True):
                problems.append(f"admitted, expected the CSRF refusal: {where}")
        elif role == PUBLIC:
            if response.status_code != 302 or "/console/login" not in response.headers["Location"]:
                problems.append(f"anonymous not sent to sign-in: {where}")
        elif response.status_code != 403 or "may not call" not in response.get_data(as_text=True):
            problems.append(f"should be refused: {where}")
    assert not problems, "\n".join(problems)


def test_lists_page_and_keep_their_query(web_app):
    client = web_app.test_client()
    first = client.get("/public/enterprises?q=商洛", headers=HTML).get_data(as_text=True)
    link = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert link and link.group(1) == "/public/enterprises?q=%E5%95%86%E6%B4%9B&amp;page=2"
    second = client.get(link.group(1).replace("&amp;", "&"), headers=HTML).get_data(as_text=True)
    assert 'rel="prev"' in second
    rows = lambda html: re.findall(r'href="/public/enterprises/(\d+)"', html)  # noqa: E731
    assert rows(first) and rows(second) and not set(rows(first)) & set(rows(second))
    sign_in(client, "supervisor")
    directory = client.get("/console/directory?risk=general&page=2", headers=HTML).get_data(as_text=True)
    assert 'href="/console/directory?risk=general&amp;page=1"' in directory
    assert 'href="/console/directory?risk=general&amp;page=3"' in directory


def test_refusal_speaks_json_to_api_clients(web_app):
    client = web_app.test_client()
    response = client.get("/console/reviews")
    assert response.status_code == 401 and response.get_json()["code"] == "auth.required"
    sign_in(client, "police")
    response = client.get("/console/reviews")
    assert response.status_code == 403 and response.get_json()["code"] == "auth.forbidden"


def test_every_console_endpoint_is_in_the_policy_table(web_app):
    for rule in web_app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("portal", "console"):
            assert rule.endpoint in policy.TABLE, rule.endpoint
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert allowed_roles(rule.endpoint, method), f"{method} {rule.endpoint}"
    assert set(ALL_ROLES) >= {r for rules in policy.TABLE.values() for roles in rules.values() for r in roles}


def test_forms_need_the_csrf_token(web_app):
    client = web_app.test_client()
    refused = client.post("/console/login", headers=HTML, data={"username": "admin", "password": "x"})
    assert refused.status_code == 400 and "表单已过期" in refused.get_data(as_text=True)
    sign_in(client, "supervisor")
    assert client.post("/console/logout", headers=HTML).status_code == 400
    page = client.get("/console/supervisor", headers=HTML).get_data(as_text=True)
    assert client.post("/console/logout", headers=HTML, data={"csrf_token": csrf_of(page)}).status_code == 302
    assert client.get("/console/supervisor", headers=HTML).status_code == 302  # signed out


def test_sign_in_errors_are_shown_in_both_languages_and_lockout(web_app):
    client = web_app.test_client()
    wrong = sign_in(client, "inspector02", "wrong password")
    text = wrong.get_data(as_text=True)
    assert wrong.status_code == 401 and "用户名或密码错误" in text and "auth.invalid_credentials" in text
    for _ in range(web_app.config["LOGIN_MAX_FAILURES"]):
        locked = sign_in(client, "inspector02", "wrong password")
    # locked, even the right password gets the page a wrong one gets: it does not tell who is locked
    locked = sign_in(client, "inspector02")
    assert locked.status_code == 401 and "需等待一段时间再试" in locked.get_data(as_text=True)
    client.set_cookie("lang", "en")
    english = sign_in(client, "inspector02").get_data(as_text=True)
    assert "wait a while" in english and "<title>Sign in · Qinling Field</title>" in english


def test_language_switch_and_safe_return(web_app):
    client = web_app.test_client()
    switched = client.get("/lang/en?next=/public/staff", headers=HTML)
    assert switched.status_code == 302 and switched.headers["Location"] == "/public/staff"
    assert "Enforcement staff" in client.get("/public/staff", headers=HTML).get_data(as_text=True)
    assert client.get("/lang/zh?next=https://evil.example/", headers=HTML).headers["Location"] == "/"
    assert "执法人员" in client.get("/public/staff", headers=HTML).get_data(as_text=True)
    sign_in(client, "reviewer1")
    assert client.get("/console/", headers=HTML).headers["Location"].endswith("/console/reviews")
