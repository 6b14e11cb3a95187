"""Enforcement certificates (持证上岗): who may act as an inspector on which day, and every change audited."""
from __future__ import annotations

import datetime as dt

import pytest

from server.core.access import Role
from server.extensions import db
from server.modules.users import operations as ops
from server.modules.users.models import CertificateStatus
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests import clock

D = dt.date


@pytest.mark.parametrize("valid_from, valid_until, status, on, eligible", [
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.ACTIVE, D(2026, 6, 1), True),
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.ACTIVE, D(2026, 1, 1), True),  # first day
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.ACTIVE, D(2028, 12, 31), True),  # last day
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.ACTIVE, D(2029, 1, 1), False),  # expired
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.ACTIVE, D(2025, 12, 31), False),  # not yet valid
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.SUSPENDED, D(2026, 6, 1), False),
    (D(2026, 1, 1), D(2028, 12, 31), CertificateStatus.REVOKED, D(2026, 6, 1), False),
])
def test_eligibility_follows_validity_window_and_status(db_session, valid_from, valid_until, status, on, eligible):
    user = factories.UserFactory(role=Role.INSPECTOR)
    factories.CertificateFactory(user=user, valid_from=valid_from, valid_until=valid_until, status=status)
    db.session.refresh(user)
    if eligible:
        assert ops.require_inspector(user, on).user_id == user.id
    else:
        with pytest.raises(ops.CertificateInvalid):
            ops.require_inspector(user, on)


def test_a_second_certificate_covers_the_gap(db_session):
    user = factories.UserFactory(role=Role.INSPECTOR)
    factories.CertificateFactory(user=user, valid_from=D(2023, 1, 1), valid_until=D(2025, 12, 31))
    renewed = factories.CertificateFactory(user=user, valid_from=D(2026, 1, 1), valid_until=D(2028, 12, 31))
    db.session.refresh(user)
    assert ops.require_inspector(user, D(2026, 3, 1)).id == renewed.id


@pytest.mark.parametrize("role", [Role.AUXILIARY, Role.LEGAL_REVIEWER, Role.POLICE, Role.ADMIN])
def test_people_who_are_not_inspectors_are_never_eligible(db_session, role):
    user = factories.UserFactory(role=role)
    factories.CertificateFactory(user=user)  # even with a certificate on file
    db.session.refresh(user)
    with pytest.raises(ops.NotAnInspector):
        ops.require_inspector(user, clock.today())


def test_deactivated_inspector_is_not_eligible(db_session):
    user = factories.inspector()
    user.active = False
    with pytest.raises(ops.NotAnInspector):
        ops.require_inspector(user, clock.today())


def test_eligibility_endpoint(client, db_session):
    supervisor = factories.UserFactory(role=Role.SUPERVISOR)
    user = factories.UserFactory(role=Role.INSPECTOR, unit=supervisor.unit)
    cert = factories.CertificateFactory(user=user, valid_from=D(2026, 1, 1), valid_until=D(2026, 12, 31))
    headers = staff_headers(supervisor)

    ok = client.get(f"/api/v1/users/{user.id}/eligibility?on=2026-07-01", headers=headers)
    assert ok.status_code == 200
    assert ok.json == {"user_id": user.id, "on": "2026-07-01", "eligible": True, "reason": None,
                       "certificate_number": cert.number, "valid_until": "2026-12-31"}

    expired = client.get(f"/api/v1/users/{user.id}/eligibility?on=2027-01-01", headers=headers).json
    assert expired["eligible"] is False and expired["certificate_number"] is None
    assert expired["reason"]["code"] == "certificate.invalid_on_date"
    assert expired["reason"]["context"] == {"user": user.username, "date": "2027-01-01", "rule": "行政处罚法 第42条"}

    auxiliary = factories.UserFactory(role=Role.AUXILIARY, unit=supervisor.unit)
    aux = client.get(f"/api/v1/users/{auxiliary.id}/eligibility?on=2026-07-01", headers=headers).json
    assert aux["eligible"] is False and aux["reason"]["code"] == "user.not_inspector"

    assert_contract(client.get(f"/api/v1/users/{user.id}/eligibility", headers=headers),
                    422, "request.validation_failed")
    assert_contract(client.get(f"/api/v1/users/{user.id}/eligibility?on=31/12/2026", headers=headers),
                    422, "request.validation_failed")
    assert_contract(client.get("/api/v1/users/999999/eligibility?on=2026-07-01", headers=headers),
                    404, "user.not_found")


def test_issuing_suspending_and_reinstating_are_audited(client, db_session):
    supervisor = factories.UserFactory(role=Role.SUPERVISOR)
    user = factories.UserFactory(role=Role.INSPECTOR, unit=supervisor.unit)
    headers = staff_headers(supervisor)

    response = client.post(f"/api/v1/users/{user.id}/certificates", headers=headers, json={
        "number": "61102026000123", "issuer": "陕西省人民政府", "scope": "生态环境保护",
        "valid_from": "2026-01-01", "valid_until": "2028-12-31"})
    assert response.status_code == 201
    cert_id = response.json["id"]
    assert response.json["status"] == "active"
    [issued] = audit_entries("admin:certificate:issued", certificate=cert_id)
    assert issued["actor"] == {"kind": "user", "id": str(supervisor.id)}
    assert issued["payload"]["number"] == "61102026000123"
    assert sorted(issued["subjects"]) == [f"certificate:{cert_id}", f"user:{user.id}"]

    def eligible() -> bool:
        return client.get(f"/api/v1/users/{user.id}/eligibility?on=2026-07-01", headers=headers).json["eligible"]

    assert eligible()
    response = client.post(f"/api/v1/certificates/{cert_id}/status", headers=headers,
                           json={"status": "suspended", "reason": "涉嫌违纪，暂扣执法证"})
    assert response.status_code == 200
    assert (response.json["status"], response.json["status_reason"]) == ("suspended", "涉嫌违纪，暂扣执法证")
    assert not eligible()
    response = client.post(f"/api/v1/certificates/{cert_id}/status", headers=headers,
                           json={"status": "active", "reason": "调查结束，恢复"})
    assert response.status_code == 200
    assert eligible()

    changes = audit_entries("admin:certificate:status_changed", certificate=cert_id)
    assert [(c["payload"]["before"], c["payload"]["after"]) for c in changes] == \
        [("active", "suspended"), ("suspended", "active")]
    assert changes[0]["payload"]["reason"] == "涉嫌违纪，暂扣执法证"


def test_certificate_changes_are_scoped_to_the_unit(client, db_session):
    user = factories.inspector()
    cert = user.certificates[0]
    stranger = factories.UserFactory(role=Role.SUPERVISOR)  # another unit
    body = assert_contract(client.post(f"/api/v1/certificates/{cert.id}/status", headers=staff_headers(stranger),
                                       json={"status": "revoked", "reason": "越权操作"}), 403, "auth.forbidden")
    assert body["detail"] == "outside your unit"
    assert_contract(client.post(f"/api/v1/users/{user.id}/certificates", headers=staff_headers(stranger), json={
        "number": "61102026000999", "issuer": "陕西省人民政府", "scope": "生态环境保护",
        "valid_from": "2026-01-01", "valid_until": "2028-12-31"}), 403, "auth.forbidden")
    db.session.refresh(cert)
    assert cert.status is CertificateStatus.ACTIVE
    assert audit_entries("admin:certificate:status_changed", certificate=cert.id) == []


def test_certificate_rules(client, db_session):
    admin = factories.UserFactory(role=Role.ADMIN)
    headers = staff_headers(admin)
    inspector = factories.inspector()
    auxiliary = factories.UserFactory(role=Role.AUXILIARY)
    body = {"number": "61102026000500", "issuer": "陕西省人民政府", "scope": "生态环境保护",
            "valid_from": "2026-01-01", "valid_until": "2028-12-31"}

    assert_contract(client.post(f"/api/v1/users/{auxiliary.id}/certificates", headers=headers, json=body),
                    422, "certificate.wrong_role")
    backwards = {**body, "valid_from": "2029-01-01"}
    error = assert_contract(client.post(f"/api/v1/users/{inspector.id}/certificates", headers=headers,
                                        json=backwards), 422, "request.validation_failed")
    assert "valid_until" in error["fields"]
    assert client.post(f"/api/v1/users/{inspector.id}/certificates", headers=headers, json=body).status_code == 201
    assert_contract(client.post(f"/api/v1/users/{inspector.id}/certificates", headers=headers, json=body),
                    409, "certificate.number_taken")
    assert_contract(client.post("/api/v1/certificates/999999/status", headers=headers,
                                json={"status": "suspended", "reason": "不存在"}), 404, "certificate.not_found")
    assert_contract(client.post(f"/api/v1/certificates/{inspector.certificates[0].id}/status", headers=headers,
                                json={"status": "lost", "reason": "无此状态"}), 422, "request.validation_failed")
