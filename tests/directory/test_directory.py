import datetime as dt
import io

import openpyxl
import pytest
import sqlalchemy as sa

from server.core.geo import wgs84_to_gcj02
from server.modules.directory import risk, uscc
from server.modules.directory.models import RiskClass, Target
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests import clock


def code(n: int, region: str = "611002") -> str:
    return uscc.complete(f"91{region}MA{n:07d}")


def body(n: int, **extra):
    return {"uscc": code(n), "name": f"商洛测试{n}有限公司", "region_code": "611002", "address": "商州区工业园1号",
            "lat": 33.87, "lon": 109.94, "risk_class": "general", **extra}


@pytest.mark.parametrize("value,valid", [
    (uscc.complete("91611002MA0000001"), True),
    ("91611002MA00000010", False),  # wrong check character (unless it happens to be 0)
    ("91611002MA000000I", False),  # I is not in the alphabet, and 17 characters
    (uscc.complete("AAAAAAAAAAAAAAAAA"), False),  # right check character, but no division code in 3–8
    (uscc.complete("9161A002MA0000001"), False),
    ("", False),
])
def test_uscc_check_character(value, valid):
    if value == "91611002MA00000010" and uscc.complete("91611002MA0000001").endswith("0"):
        pytest.skip("check character happens to be 0")
    assert uscc.is_valid(value) is valid


@pytest.mark.parametrize("facts,expected", [
    ({"key_discharger_list": True}, RiskClass.KEY),
    ({"permit_class": "key"}, RiskClass.KEY),
    ({"credit_rating": "环保不良", "permit_class": "key"}, RiskClass.SPECIAL),
    ({"complaints_prior_year": 3}, RiskClass.SPECIAL),
    ({"complaints_prior_year": 2}, RiskClass.GENERAL),
    ({}, RiskClass.GENERAL),
])
def test_risk_class_from_criteria_data(facts, expected):
    assert risk.classify(facts)[0] is expected


def test_create_stores_wgs84_from_gcj02_and_is_audited(client, db_session, supervisor):
    glat, glon = wgs84_to_gcj02(33.87, 109.94)
    response = client.post("/api/v1/targets", json=body(1, lat=glat, lon=glon, coord_system="gcj02"),
                           headers=staff_headers(supervisor))
    assert response.status_code == 201, response.json
    assert abs(response.json["lat"] - 33.87) < 1e-6 and abs(response.json["lon"] - 109.94) < 1e-6
    assert audit_entries("directory:target:created", target=response.json["id"])
    # one GCJ-02 coordinate alone cannot be converted: refused, not stored as if it were WGS-84
    target = response.json
    half = client.patch(f"/api/v1/targets/{target['id']}", headers=staff_headers(supervisor),
                        json={"version": target["version"], "lat": glat, "coord_system": "gcj02"})
    assert assert_contract(half, 422, "request.validation_failed")["fields"] == {
        "lon": ["GCJ-02 坐标须同时给出经纬度 / gcj02 needs both lat and lon"]}
    assert abs(db_session.get(Target, target["id"]).lat - 33.87) < 1e-6


def test_create_refuses_bad_code_duplicate_and_unknown_region(client, db_session, supervisor):
    headers = staff_headers(supervisor)
    bad = code(2)[:-1] + ("0" if code(2)[-1] != "0" else "1")
    assert_contract(client.post("/api/v1/targets", json=body(2, uscc=bad), headers=headers), 422,
                    "directory.uscc_invalid")
    assert client.post("/api/v1/targets", json=body(2), headers=headers).status_code == 201
    assert_contract(client.post("/api/v1/targets", json=body(2), headers=headers), 409, "directory.duplicate_target")
    assert_contract(client.post("/api/v1/targets", json=body(3, region_code="999999"), headers=headers), 422,
                    "directory.region_unknown")
    assert_contract(client.post("/api/v1/targets", json=body(4, positive_list=True), headers=headers), 422,
                    "directory.positive_list_undated")


def test_update_needs_the_current_version(client, db_session, supervisor):
    headers = staff_headers(supervisor)
    created = client.post("/api/v1/targets", json=body(5), headers=headers).json
    ok = client.patch(f"/api/v1/targets/{created['id']}", headers=headers,
                      json={"version": created["version"], "risk_class": "key", "risk_basis": "重点排污单位名录"})
    assert ok.status_code == 200, ok.json
    assert ok.json["version"] == created["version"] + 1
    stale = client.patch(f"/api/v1/targets/{created['id']}", headers=headers,
                         json={"version": created["version"], "name": "改名"})
    assert_contract(stale, 409, "directory.version_conflict")
    assert audit_entries("directory:target:updated", target=created["id"])[0]["payload"]["after"]["risk_class"] == "key"


def test_list_is_paged_and_searchable(client, db_session, supervisor):
    headers = staff_headers(supervisor)
    for n in range(6, 9):
        client.post("/api/v1/targets", json=body(n), headers=headers)
    page = client.get("/api/v1/targets?q=商洛测试7&page_size=2", headers=headers)
    assert page.status_code == 200
    assert [t["name"] for t in page.json] == ["商洛测试7有限公司"]
    assert "X-Pagination" in page.headers


def _csv(rows):
    header = "统一社会信用代码,名称,行政区划代码,地址,监管类别,纬度,经度\n"
    return (header + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode("utf-8-sig")


def test_import_with_errors_changes_nothing_and_reports_every_row(client, db_session, supervisor):
    headers = staff_headers(supervisor)
    before = db_session.scalar(sa.select(sa.func.count(Target.id)))
    content = _csv([
        (code(10), "甲公司", "611002", "地址1", "key", 33.8, 109.9),
        ("91611002MA0000011X", "乙公司", "611002", "地址2", "general", 33.8, 109.9),  # bad check character
        (code(12), "丙公司", "999999", "地址3", "general", 33.8, 109.9),  # unknown region
        (code(10), "丁公司", "611002", "地址4", "general", 33.8, 109.9),  # duplicate in file
        (code(14), "戊公司", "611002", "地址5", "huge", "north", 109.9),  # bad class, bad latitude
    ])
    response = client.post("/api/v1/targets/import", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), "targets.csv")})
    body_ = assert_contract(response, 422, "directory.import_invalid")
    report = body_["context"]["report"]
    assert [e["row"] for e in report["errors"]] == [3, 4, 5, 6]
    assert report["applied"] is False and report["valid"] == 1
    assert db_session.scalar(sa.select(sa.func.count(Target.id))) == before

    partial = client.post("/api/v1/targets/import", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(content), "targets.csv"), "accept_valid": "true"})
    assert partial.status_code == 201, partial.json
    assert partial.json["created"] == 1 and partial.json["invalid"] == 4
    assert db_session.scalar(sa.select(Target.name).where(Target.uscc == code(10))) == "甲公司"
    assert audit_entries("directory:target:imported")[-1]["payload"]["accepted_partial"] is True


def test_import_xlsx_and_malformed_files(client, db_session, supervisor):
    headers = staff_headers(supervisor)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["uscc", "name", "region_code", "address", "risk_class", "positive_list", "positive_list_since"])
    sheet.append([code(20), "己公司", "611021", "洛南县1号", "special", "false", None])
    sheet.append([code(21), "庚公司", "611021", "洛南县2号", "general", "true", dt.datetime(2024, 3, 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    response = client.post("/api/v1/targets/import", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(buffer.getvalue()), "targets.xlsx")})
    assert response.status_code == 201, response.json
    assert response.json["created"] == 2
    target = db_session.scalar(sa.select(Target).where(Target.uscc == code(21)))
    assert target.positive_list and target.positive_list_since == dt.date(2024, 3, 1)

    for name, content in (("t.xlsx", b"not a zip"), ("t.csv", b"\xff\xfe\x00bad"), ("t.pdf", b"%PDF"),
                          ("t.csv", "名称\n甲\n".encode())):
        bad = client.post("/api/v1/targets/import", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(content), name)})
        assert_contract(bad, 400, "directory.import_malformed")


def test_history_hides_secret_inspections_from_other_inspectors(client, db_session, supervisor):
    from server.modules.inspections import operations as inspections
    from server.modules.inspections.models import InspectionKind

    target = factories.TargetFactory()
    a, b, c = (factories.inspector(unit=supervisor.unit) for _ in range(3))
    today = clock.today()
    inspections.create(db_session, target_id=target.id, lead_id=a.id, member_ids=[b.id], window_start=today,
                       window_end=today, kind=InspectionKind.RANDOM, created_by=supervisor, secret=True,
                       draw_id=factories.DrawFactory().id)
    seen = client.get(f"/api/v1/targets/{target.id}", headers=staff_headers(a)).json["inspections"]
    assert len(seen) == 1
    assert client.get(f"/api/v1/targets/{target.id}", headers=staff_headers(c)).json["inspections"] == []


def test_the_risk_class_is_never_below_its_entry_criteria(client, db_session, supervisor):
    """Rule 4 as data: the criteria the directory can see (permit class, credit rating) set the
    lowest class allowed; a class placed by the criteria records the criteria met as its basis."""
    headers = staff_headers(supervisor)
    refused = client.post("/api/v1/targets", headers=headers, json=body(30, permit_class="key"))
    assert_contract(refused, 422, "directory.risk_class_below_criteria")
    assert refused.json["fields"]["risk_class"][1].startswith("key: 排污许可重点管理")
    assert_contract(client.post("/api/v1/targets", headers=headers,
                                json=body(31, risk_class="key", permit_class="key", credit_rating="环保不良")),
                    422, "directory.risk_class_below_criteria")
    assert db_session.scalar(sa.select(sa.func.count(Target.id)).where(Target.uscc.in_([code(30), code(31)]))) == 0

    special = client.post("/api/v1/targets", headers=headers, json=body(32, risk_class="special", credit_rating="环保警示"))
    assert special.status_code == 201 and special.json["risk_basis"] == "环境信用评价为警示或不良"
    chosen = client.post("/api/v1/targets", headers=headers,
                         json=body(33, risk_class="special", risk_basis="局务会决定加强监管"))
    assert chosen.status_code == 201 and chosen.json["risk_basis"] == "局务会决定加强监管"  # stricter than required

    general = client.post("/api/v1/targets", headers=headers, json=body(34)).json
    assert_contract(client.patch(f"/api/v1/targets/{general['id']}", headers=headers,
                                 json={"version": general["version"], "credit_rating": "环保不良"}),
                    422, "directory.risk_class_below_criteria")
    moved = client.patch(f"/api/v1/targets/{general['id']}", headers=headers,
                         json={"version": general["version"], "credit_rating": "环保不良", "risk_class": "special"})
    assert moved.status_code == 200 and moved.json["risk_class"] == "special"

    rows = "统一社会信用代码,名称,行政区划代码,地址,监管类别,排污许可管理类别\n" + \
        f"{code(35)},己公司,611002,地址6,general,key\n{code(36)},庚公司,611002,地址7,key,key\n"
    report = client.post("/api/v1/targets/import", headers=headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(rows.encode("utf-8-sig")), "targets.csv")})
    errors = assert_contract(report, 422, "directory.import_invalid")["context"]["report"]["errors"]
    assert [(e["row"], e["errors"]["risk_class"][0]) for e in errors] == [(2, "directory.risk_class_below_criteria")]


def test_leaving_the_positive_list_needs_a_reason_and_is_dated(client, db_session, supervisor):
    headers = staff_headers(supervisor)
    listed = client.post("/api/v1/targets", headers=headers, json=body(
        40, positive_list=True, positive_list_since="2026-01-05", positive_list_basis="正面清单（2026年第一批）")).json
    change = {"version": listed["version"], "positive_list": False}
    assert_contract(client.patch(f"/api/v1/targets/{listed['id']}", headers=headers, json=change),
                    422, "directory.positive_list_removal_unreasoned")
    assert db_session.get(Target, listed["id"]).positive_list is True
    removed = client.patch(f"/api/v1/targets/{listed['id']}", headers=headers,
                           json={**change, "positive_list_removal_reason": "发生环境违法行为被立案查处"})
    assert removed.status_code == 200 and removed.json["positive_list"] is False
    assert removed.json["positive_list_removed_on"] and removed.json["positive_list_removal_reason"] == "发生环境违法行为被立案查处"
