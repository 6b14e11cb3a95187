"""The server side of the field app: one-call enrolment (POST /mobile/v1/devices/enrol) and the
static app at /field/ (shell revalidated, hashed bundles immutable, service worker scoped)."""
from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from server.core.access import Role
from server.extensions import db
from server.modules.devices.models import Device
from tests import factories
from tests.helpers import assert_contract, audit_entries, bearer

FIELD = Path(__file__).resolve().parents[1] / "server" / "web" / "static" / "field"


def _enrol(client, username: str, password: str = factories.PASSWORD, **extra):
    _, key = factories.device_key()
    body = {"username": username, "password": password, "public_key": key, "label": "现场执法手机",
            "platform": "web", "app_version": "1.0.0", **extra}
    return client.post("/mobile/v1/devices/enrol", json=body)


def test_enrolment_signs_in_registers_the_key_and_returns_device_tokens(client, db_session):
    inspector = factories.inspector()
    response = _enrol(client, inspector.username)
    assert response.status_code == 201, response.json
    tokens = response.json
    assert {"access_token", "refresh_token", "device_id", "expires_in"} <= tokens.keys()
    device = db.session.get(Device, tokens["device_id"])
    assert device.user_id == inspector.id and device.platform == "web" and device.registered_by == inspector.id
    me = client.get("/mobile/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.json["user_id"] == inspector.id
    assert audit_entries("mobile:device:registered", device=device.id)


def test_a_wrong_password_registers_nothing_and_is_counted(client, db_session):
    inspector = factories.inspector()
    assert_contract(_enrol(client, inspector.username, "wrong-password"), 401, "auth.invalid_credentials")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 0
    assert audit_entries("web:login:failed", user=inspector.id)


def test_only_field_staff_can_enrol_a_device(client, db_session):
    reviewer = factories.UserFactory(role=Role.LEGAL_REVIEWER)
    db.session.commit()
    assert_contract(_enrol(client, reviewer.username), 422, "device.owner_not_inspector")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 0


def test_enrolment_needs_its_fields(client, db_session):
    response = client.post("/mobile/v1/devices/enrol", json={"username": "x"})
    body = assert_contract(response, 422, "request.validation_failed")
    assert all(name in json.dumps(body["fields"]) for name in ("password", "public_key", "label"))


def _get(client, path):
    response = client.get(path)
    response.get_data()  # buffered, then the file handle is released
    response.close()  # a file response: release its handle
    return response


def test_the_app_is_served_with_its_service_worker_scoped_to_field(client):
    shell = _get(client, "/field/")
    assert shell.status_code == 200 and shell.headers["Cache-Control"] == "no-cache"
    html = shell.get_data(as_text=True)
    version = json.loads((FIELD / "version.json").read_text())
    for name in version["shell"]:
        if name.endswith((".js", ".css")) and not name.startswith("hash-worker"):
            assert f"/field/{name}" in html
        asset = _get(client, f"/field/{name}")
        assert asset.status_code == 200, name
    bundle = next(n for n in version["shell"] if n.startswith("app-") and n.endswith(".js"))
    assert "immutable" in _get(client, f"/field/{bundle}").headers["Cache-Control"]
    worker = _get(client, "/field/sw.js")
    assert worker.headers["Service-Worker-Allowed"] == "/field/" and worker.headers["Cache-Control"] == "no-cache"
    assert version["version"] in worker.get_data(as_text=True)
    assert _get(client, "/field/nothing-here.js").status_code == 404
    assert _get(client, "/field").status_code == 308


def test_the_certificate_qr_opens_the_portal_on_that_certificate(client, db_session):
    inspector = factories.inspector()
    other = factories.inspector()
    db.session.commit()
    number = inspector.certificates[0].number
    page = client.get(f"/public/staff?certificate={number}", headers={"Accept": "text/html"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "valid today" in html
    assert inspector.display_name in html and other.display_name not in html
    unknown = client.get("/public/staff?certificate=陕000", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "no certificate with this number is valid today" in unknown and inspector.display_name not in unknown


def test_a_one_time_password_enrols_no_device_until_it_is_changed(client, db_session):
    """A first password from `enforce setup` must be changed at the first sign-in, the field app's too."""
    inspector = factories.inspector()
    inspector.must_change_password = True
    db_session.flush()
    assert_contract(_enrol(client, inspector.username), 403, "auth.password_change_required")
    assert db_session.scalar(sa.select(sa.func.count(Device.id)).where(Device.user_id == inspector.id)) == 0
