"""Small helpers shared by the foundation tests: signing in, headers, reading audit entries."""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from server.extensions import db
from server.modules.audit.models import AuditEntry, AuditSubject
from tests import factories

CONTRACT_KEYS = {"status", "code", "message_zh", "message_en", "request_id"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: Any, username: str, password: str = factories.PASSWORD) -> str:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return response.json["access_token"]


def staff_headers(user: Any) -> dict[str, str]:
    """A bearer header for ``user`` without a login round trip (inside an app context)."""
    from server.modules.auth.operations import staff_token

    return bearer(staff_token(user)["access_token"])


def device_headers(device: Any) -> dict[str, str]:
    from server.modules.devices.operations import issue_tokens

    return bearer(str(issue_tokens(db.session, device)["access_token"]))


def assert_contract(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error contract: JSON with status, dotted code, both messages and the request id."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.json
    assert CONTRACT_KEYS <= body.keys(), body
    assert body["status"] == status
    assert "." in body["code"] and body["code"] == body["code"].lower()
    assert body["message_zh"] and body["message_en"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    if code is not None:
        assert body["code"] == code, body
    return body


def audit_entries(tag: str | None = None, **subject: Any) -> list[dict[str, Any]]:
    """Committed audit entries (bodies decoded), optionally by tag and one subject kind=id."""
    query = sa.select(AuditEntry).order_by(AuditEntry.idx)
    if tag:
        query = query.where(AuditEntry.tag == tag)
    for kind, value in subject.items():
        query = query.join(AuditSubject, AuditSubject.entry_idx == AuditEntry.idx).where(
            AuditSubject.subject_type == kind, AuditSubject.subject_id == str(value))
    return [json.loads(entry.body) for entry in db.session.scalars(query)]
