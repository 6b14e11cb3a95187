"""``enforce setup --org FILE`` (issue 16, item 2): the bureau's structure and first administrator from
deploy/shangluo.yaml, idempotently; the one-time password must be changed at first sign-in."""
from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from server.modules.setup.cli import setup_cli
from server.modules.users.models import Agency, AgencyKind, Unit, UnitKind, User
from tests.helpers import audit_entries
from tests.web.conftest import HTML, csrf_of

ORG = Path(__file__).resolve().parent.parent / "deploy" / "shangluo.yaml"
COUNTIES = ("商州", "洛南", "丹凤", "商南", "山阳", "镇安", "柞水")


def _setup(app, path=ORG):
    return app.test_cli_runner().invoke(setup_cli, ["--org", str(path)])


def _one_time_password(output: str) -> str:
    found = re.search(r"one-time password: (\S+)", output)
    assert found, output
    return found.group(1)


def test_setup_builds_the_shangluo_bureau_once(app, db_session):
    first = _setup(app)
    assert first.exit_code == 0, first.output
    password = _one_time_password(first.output)

    bureau = db_session.scalar(sa.select(Agency).where(Agency.name_zh == "商洛市生态环境局"))
    units = {u.name_zh: u for u in db_session.scalars(sa.select(Unit).where(Unit.agency_id == bureau.id))}
    assert units["商洛市生态环境保护综合执法支队"].kind is UnitKind.DETACHMENT
    for county in COUNTIES:
        branch = units[f"商洛市生态环境局{county}分局"]
        brigade = next(u for name, u in units.items() if name.startswith(f"商洛市生态环境保护综合执法支队{county}"))
        assert brigade.kind is UnitKind.BRIGADE and brigade.region_code == branch.region_code != "611000"
    kinds = set(db_session.scalars(sa.select(Agency.kind)))
    assert {AgencyKind.PUBLIC_SECURITY, AgencyKind.PROCURATORATE} <= kinds

    admin = db_session.scalar(sa.select(User).where(User.username == "admin"))
    assert admin.role.value == "admin" and admin.must_change_password
    assert admin.unit.name_zh == "商洛市生态环境保护综合执法支队"
    assert len(audit_entries("admin:unit:created")) == len(units) + 2

    counts = [db_session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Agency, Unit, User)]
    again = _setup(app)
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output and "one-time password" not in again.output
    assert [db_session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Agency, Unit, User)] == counts
    db_session.refresh(admin)
    assert admin.must_change_password  # the account is not touched: the first password still works once
    assert password


def test_an_edited_file_adds_and_updates_and_a_bad_one_writes_nothing(app, db_session, tmp_path):
    assert _setup(app).exit_code == 0
    text = ORG.read_text(encoding="utf-8")
    edited = tmp_path / "org.yaml"
    edited.write_text(text.replace("Shangluo Bureau Legal Affairs Office", "Legal Affairs Section").replace(
        "      - name_zh: 商洛市生态环境局法规科", "      - name_zh: 商洛市生态环境局监测科\n"
        "        name_en: Monitoring Section\n        kind: office\n        region: \"611000\"\n"
        "      - name_zh: 商洛市生态环境局法规科"), encoding="utf-8")
    result = _setup(app, edited)
    assert result.exit_code == 0, result.output
    assert "created: unit 商洛市生态环境局监测科" in result.output
    assert "updated: unit 商洛市生态环境局法规科: name_en" in result.output
    [entry] = audit_entries("admin:unit:updated")
    assert entry["payload"] == {"before": {"name_en": "Shangluo Bureau Legal Affairs Office"},
                             "after": {"name_en": "Legal Affairs Section"}}

    units = db_session.scalar(sa.select(sa.func.count(Unit.id)))
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("kind: brigade", "kind: battalion", 1).replace(
        "商洛市生态环境局法规科", "商洛市生态环境局新科室"), encoding="utf-8")
    refused = _setup(app, bad)
    assert refused.exit_code == 1
    assert "setup.org_file_invalid" in refused.output and "battalion" in refused.output
    assert db_session.scalar(sa.select(sa.func.count(Unit.id))) == units  # the new office was not kept


def test_the_one_time_password_must_be_changed_through_the_api(app, client):
    password = _one_time_password(_setup(app).output)
    refused = client.post("/api/v1/auth/login", json={"username": "admin", "password": password})
    assert refused.status_code == 403 and refused.json["code"] == "auth.password_change_required"
    assert refused.json["message_zh"] and refused.json["message_en"]

    weak = client.post("/api/v1/auth/password", json={"username": "admin", "password": password,
                                                       "new_password": "short"})
    assert weak.status_code == 422 and weak.json["code"] == "user.password_weak"  # the one policy (GB/T 22239)
    same = client.post("/api/v1/auth/password", json={"username": "admin", "password": password,
                                                       "new_password": password})
    assert same.status_code == 422
    changed = client.post("/api/v1/auth/password", json={"username": "admin", "password": password,
                                                          "new_password": "秦岭 Bureau 2026 守护"})
    assert changed.status_code == 200, changed.json
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {changed.json['access_token']}"})
    assert me.status_code == 200 and me.json["role"] == "admin"
    assert client.post("/api/v1/auth/login", json={"username": "admin", "password": password}).status_code == 401
    again = client.post("/api/v1/auth/login", json={"username": "admin", "password": "秦岭 Bureau 2026 守护"})
    assert again.status_code == 200


def test_the_one_time_password_must_be_changed_in_the_console(app, client):
    password = _one_time_password(_setup(app).output)
    page = client.get("/console/login", headers=HTML)
    form = client.post("/console/login", headers=HTML, data={
        "username": "admin", "password": password, "csrf_token": csrf_of(page.get_data(as_text=True))})
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and 'id="password-change-required"' in html
    assert client.get("/console/", headers=HTML).status_code in (302, 401, 403)  # not signed in yet

    mismatch = client.post("/console/password", headers=HTML, data={
        "username": "admin", "password": password, "new_password": "a-new-password-1",
        "new_password_again": "a-new-password-2", "csrf_token": csrf_of(html)})
    assert mismatch.status_code == 422
    done = client.post("/console/password", headers=HTML, data={
        "username": "admin", "password": password, "new_password": "a-new-password-1",
        "new_password_again": "a-new-password-1", "csrf_token": csrf_of(html)})
    assert done.status_code == 302, done.get_data(as_text=True)[:500]
    assert client.get("/console/", headers=HTML).status_code == 302
    home = client.get(done.headers["Location"], headers=HTML)
    assert home.status_code == 200
