"""Hostile bodies and arguments get a 4xx in the error contract, never a 500 (issue 14, item 10).

Each case here answered 500 before (or, for NUL, stored it on SQLite and answered a wrong 422 on
PostgreSQL). They run on whichever database the suite runs on.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
import zstandard

from tests import factories
from tests.helpers import assert_contract, staff_headers
from tests.sync.conftest import make_phone


@pytest.fixture()
def handler(db_session: Any) -> dict[str, str]:
    user = factories.inspector(unit=factories.UnitFactory())
    return staff_headers(user)


def _post(client: Any, headers: dict[str, str], raw: str, path: str = "/api/v1/cases") -> Any:
    return client.post(path, data=raw.encode("utf-8"),
                       headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("field, value", [("source_inspection_id", "nope"), ("target_id", 0),
                                          ("target_id", 2_000_000_000)])
def test_unknown_referenced_id_is_422_naming_the_field(client, handler, field, value):
    response = client.post("/api/v1/cases", json={"title": "来源不明的线索", "party_name": "某公司", field: value}, headers=handler)
    body = assert_contract(response, 422, "request.validation_failed")
    assert field in body["fields"], body


def test_foreign_key_violation_is_translated_for_any_table(client, app, db_session):
    """The general mechanism: an operation that does not look a reference up still gets a 422."""
    import sqlalchemy.exc

    from server.core import integrity
    from server.modules.cases.models import Case

    unit = factories.UnitFactory()
    db_session.flush()
    with pytest.raises(sqlalchemy.exc.IntegrityError) as caught:
        with db_session.begin_nested():
            db_session.add(Case(unit_id=unit.id, title="悬空引用", party_name="某公司",
                                source_inspection_id="no-such-inspection"))
    assert integrity.kind(caught.value) == integrity.FOREIGN_KEY
    assert integrity.missing_references(db_session, caught.value) == {
        "source_inspection_id": [integrity.DOES_NOT_EXIST]}


OK = '"title": "来源线索", "party_name": "某公司"'
HOSTILE = {
    "lone surrogate": ('{"title": "线索\\ud800线索", "party_name": "某公司"}', "request.invalid_text"),
    "lone low surrogate": ("{" + OK + ', "facts": "a\\udfffb"}', "request.invalid_text"),
    "NUL in a string": ('{"title": "线索\\u0000线索", "party_name": "某公司"}', "request.invalid_text"),
    "NUL in a key": ("{" + OK + ', "x\\u0000": 1}', "request.invalid_text"),
    "5,000 digits": ("{" + OK + ', "target_id": ' + "9" * 5000 + "}", "request.number_too_long"),
    "huge exponent": ("{" + OK + ', "target_id": 1e999999}', "request.number_too_long"),
    "nested 1,000 deep": ("{" + OK + ', "facts": ' + "[" * 1000 + "]" * 1000 + "}", "request.nested_too_deep"),
    "nested 100,000 deep": ("[" * 100_000 + "]" * 100_000, "request.nested_too_deep"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_json_is_refused_in_the_contract(client, handler, name):
    raw, code = HOSTILE[name]
    body = assert_contract(_post(client, handler, raw), 400, code)
    assert body["message_zh"] and body["message_en"], body


def test_nul_in_query_string_path_or_form_is_refused(client, handler):
    assert_contract(client.get("/api/v1/targets?q=a%00b", headers=handler), 400, "request.invalid_text")
    assert_contract(client.get("/api/v1/cases/a%00b", headers=handler), 400, "request.invalid_text")
    assert_contract(client.post("/api/v1/auth/login", data={"username": "a\x00"}), 400, "request.invalid_text")


def test_nul_in_a_form_or_query_string_field_is_refused_by_the_schema(app):
    """The marshmallow-level check: every String field refuses NUL and lone surrogates."""
    import marshmallow as ma

    from server.modules.cases.schemas import CaseCreateSchema

    for bad in ("a\x00b", "\ud800"):
        with pytest.raises(ma.ValidationError) as caught:
            CaseCreateSchema().load({"title": f"线索{bad}线索", "party_name": "某公司"})
        assert "title" in caught.value.messages


@pytest.mark.parametrize("encoding", [None, "zstd"])
def test_sync_push_refuses_deep_nesting_even_compressed(client, db_session, encoding):
    user = factories.inspector(unit=factories.UnitFactory())
    phone = make_phone(db_session, user)
    raw = ('{"ops": [{"data": ' + "[" * 1000 + "]" * 1000 + "}]}").encode()
    headers = {**phone.headers, "Content-Type": "application/json"}
    if encoding:
        raw = zstandard.ZstdCompressor().compress(raw)
        headers["Content-Encoding"] = encoding
    response = client.post("/mobile/v1/sync/push", data=raw, headers=headers)
    assert_contract(response, 400, "request.nested_too_deep")


def test_sync_push_refuses_nul_in_operation_data(client, db_session):
    user = factories.inspector(unit=factories.UnitFactory())
    phone = make_phone(db_session, user)
    raw = '{"ops": [{"op_id": "x", "seq": 1, "entity": "note", "action": "create", "data": {"text": "a\\u0000"}}]}'
    response = client.post("/mobile/v1/sync/push", data=raw, headers={**phone.headers, "Content-Type": "application/json"})
    assert_contract(response, 400, "request.invalid_text")


def test_ordinary_unicode_still_passes(client, handler):
    """Astral characters (a valid surrogate pair in JSON) and Chinese are ordinary text."""
    response = _post(client, handler, '{"title": "秦岭 \\ud83c\\udf32 线索", "party_name": "某公司"}')
    assert response.status_code == 201, response.json
    assert response.json["title"] == "秦岭 \U0001f332 线索"
