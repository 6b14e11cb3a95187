"""The one error contract: every failure is JSON with a stable dotted code, both messages and the request id."""
from __future__ import annotations

import io
import json
import logging
import re

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from server.core import errors
from server.core.access import ANYONE, POLICY, Role
from server.extensions import db
from server.modules.audit.models import AuditEntry
from server.modules.users.models import User
from tests import db as testdb
from tests import factories
from tests.helpers import assert_contract, bearer, login, staff_headers


@pytest.fixture()
def admin(db_session):
    return factories.UserFactory(role=Role.ADMIN)


def test_malformed_json_is_400(client):
    response = client.post("/api/v1/auth/login", data='{"username": "a", ', content_type="application/json")
    assert_contract(response, 400, "request.malformed_json")


def test_wrong_types_and_unknown_fields_name_the_fields(client):
    response = client.post("/api/v1/auth/login", json={"username": 17, "password": "x", "is_admin": True})
    body = assert_contract(response, 422, "request.validation_failed")
    assert set(body["fields"]) == {"username", "is_admin"}
    assert body["fields"]["username"] and body["fields"]["is_admin"]


def test_query_validation_names_the_fields(client, admin):
    response = client.get("/api/v1/calendar/deadline?start=yesterday&days=-1", headers=staff_headers(admin))
    body = assert_contract(response, 422, "request.validation_failed")
    assert set(body["fields"]) == {"start", "days"}


def test_oversized_body_is_413(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 200)
    response = client.post("/api/v1/auth/login", json={"username": "x" * 500, "password": "y"})
    assert_contract(response, 413, "request.too_large")


def test_unknown_url_is_404(client):
    assert_contract(client.get("/api/v1/no-such-thing"), 404, "request.not_found")
    assert_contract(client.get("/mobile/v1/no-such-thing"), 404, "request.not_found")


def test_an_id_too_large_for_the_database_is_404_not_500(client, admin):
    assert_contract(client.get("/api/v1/users/99999999999999999999999", headers=staff_headers(admin)),
                    404, "request.not_found")
    assert_contract(client.get(f"/api/v1/users/{2**31}", headers=staff_headers(admin)), 404, "request.not_found")
    assert_contract(client.get(f"/api/v1/users/{2**31 - 1}", headers=staff_headers(admin)), 404, "user.not_found")


def test_a_number_too_large_in_a_body_or_query_is_422_and_writes_nothing(client, admin):
    db.session.commit()  # the request shares this session in tests; its rollback must not undo the fixture
    before = db.session.scalar(sa.select(sa.func.count(User.id)))
    response = client.post("/api/v1/users", headers=staff_headers(admin),
                           json={"username": "huge.unit", "display_name": "大数", "role": "inspector", "unit_id": 10**30})
    assert_contract(response, 422, "request.value_out_of_range")
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == before
    response = client.get(f"/api/v1/users?unit_id={10**24}", headers=staff_headers(admin))
    assert_contract(response, 422, "request.value_out_of_range")


def test_wrong_method_is_405(client):
    assert_contract(client.delete("/api/v1/regions"), 405, "request.method_not_allowed")


@pytest.mark.parametrize("header, code", [
    ("Bearer not-a-token", "auth.token_invalid"),
    ("Bearer eyJrIjoicyIsInUiOjEsImciOjF9.aw0t1A.forgedsignature", "auth.token_invalid"),
    ("Basic dXNlcjpwYXNz", "auth.required"),
    ("Bearer ", "auth.required"),
])
def test_bad_or_garbled_bearer_is_401(client, header, code):
    assert_contract(client.get("/api/v1/units", headers={"Authorization": header}), 401, code)


def test_token_signed_with_another_key_is_401(client, app, admin):
    forged = URLSafeTimedSerializer("some-other-secret-key-0123", salt="qinling-field.bearer").dumps(
        {"k": "s", "u": admin.id, "g": admin.token_generation})
    assert_contract(client.get("/api/v1/units", headers=bearer(forged)), 401, "auth.token_invalid")


def test_expired_token_is_401(client, app, admin):
    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - app.config["STAFF_TOKEN_TTL_S"] - 60

    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="qinling-field.bearer", signer=LongAgo).dumps(
        {"k": "s", "u": admin.id, "g": admin.token_generation})
    assert_contract(client.get("/api/v1/units", headers=bearer(old)), 401, "auth.token_expired")


def test_missing_authentication_is_401_and_wrong_role_403(client, db_session):
    assert_contract(client.get("/api/v1/units"), 401, "auth.required")
    inspector = factories.inspector()
    body = assert_contract(client.post("/api/v1/users", json={}, headers=staff_headers(inspector)),
                           403, "auth.forbidden")
    assert body["detail"].startswith("role inspector")


def test_request_id_is_echoed_and_a_bad_one_replaced(client):
    response = client.get("/api/v1/regions", headers={"X-Request-ID": "phone-req-0001"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "phone-req-0001"
    body = assert_contract(client.get("/nowhere", headers={"X-Request-ID": "phone-req-0002"}), 404)
    assert body["request_id"] == "phone-req-0002"
    # Header injection or absurd ids are not echoed: the server makes its own.
    response = client.get("/api/v1/regions", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


@pytest.fixture()
def failing_app(tmp_path, monkeypatch):
    """An app with a deliberately failing view, its 'server' log captured as JSON lines."""
    logger = logging.getLogger("server")
    saved = logger.handlers[:]
    app = testdb.make_app(f"sqlite:///{tmp_path / 'boom.db'}", tmp_path, LOG_JSON=True)

    @app.get("/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setitem(POLICY, "boom", {"*": ANYONE})
    stream = io.StringIO()
    logger.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    app.config["LOG_STREAM"] = stream
    yield app
    logger.handlers[:] = saved


def test_unhandled_exception_is_500_without_internals_and_logged_with_the_request_id(failing_app):
    response = failing_app.test_client().get("/boom", headers={"X-Request-ID": "trace-500-abcdef"})
    body = assert_contract(response, 500, "server.internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "hunter2" not in text and "RuntimeError" not in text

    lines = [json.loads(line) for line in failing_app.config["LOG_STREAM"].getvalue().splitlines()]
    logged = [line for line in lines if line.get("request_id") == "trace-500-abcdef"]
    assert logged, lines
    assert logged[0]["levelname"] == "ERROR"
    assert "RuntimeError: secret internals" in logged[0]["exc_info"]
    assert body["request_id"] == "trace-500-abcdef"


def test_a_failing_request_changes_nothing(fresh_app):
    """The request commits once or not at all: partial changes and audit entries vanish with the error."""
    app = fresh_app("atomic")
    with app.app_context():
        admin = factories.UserFactory(role=Role.ADMIN)
        victim = factories.UserFactory(display_name="原名")
        db.session.commit()
        admin_name, victim_id = admin.username, victim.id
        entries_before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))

    client = app.test_client()
    headers = bearer(login(client, admin_name))
    with app.app_context():
        entries_after_login = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    assert entries_after_login == entries_before + 1  # web:login:succeeded

    response = client.post("/api/v1/users", headers=headers, json={
        "username": "new.person", "display_name": "新人", "role": "inspector", "unit_id": 987654})
    assert_contract(response, 404, "unit.not_found")
    # The display name is set before the bad unit is found: it must not survive the failed request.
    response = client.patch(f"/api/v1/users/{victim_id}", headers=headers,
                            json={"display_name": "改名", "unit_id": 987654})
    assert_contract(response, 404, "unit.not_found")

    with app.app_context():
        assert db.session.scalar(sa.select(User).where(User.username == "new.person")) is None
        assert db.session.get(User, victim_id).display_name == "原名"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == entries_after_login


def test_catalog_codes_are_dotted_lower_case_and_unique():
    codes = list(errors.CATALOG)
    assert len(codes) == len(set(codes))
    for code, cls in errors.CATALOG.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+", code), code
        assert cls.code == code
        assert 400 <= cls.status <= 599, code
        assert re.search(r"[\u4e00-\u9fff]", cls.message_zh), code
        assert cls.message_en and cls.message_en[0].isupper(), code


def test_declaring_a_code_twice_or_badly_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        errors.error_code("request.not_found", 404, "重复", "Duplicate")
    with pytest.raises(ValueError, match="dotted lower case"):
        errors.error_code("NoDots", 400, "错误", "Bad")
    assert "NoDots" not in errors.CATALOG


def test_domain_error_as_dict_carries_fields_and_context():
    error = errors.ValidationFailed(fields={"x": ["bad"]}, item=3)
    assert error.as_dict() == {
        "status": 422, "code": "request.validation_failed", "message_zh": "请求参数校验失败",
        "message_en": "The request failed validation", "fields": {"x": ["bad"]}, "context": {"item": 3},
    }


def test_chinese_messages_are_sent_as_utf8(client):
    response = client.get("/nowhere")
    assert "请求的资源不存在".encode() in response.get_data()
