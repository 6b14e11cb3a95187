"""The staff API of cases, reviews, deadlines, documents and benchmarks, through the test client."""
from __future__ import annotations

import io
import json

import pypdf
import sqlalchemy as sa

from server.core.access import Role
from server.core.calendar import local_today
from server.modules.audit.models import AuditEntry
from server.modules.cases import operations as cases
from server.modules.cases.models import AgencyRole, CaseDocument
from server.modules.cases.workflow import GuardFailed
from server.modules.deadlines import tasks as deadline_tasks
from server.modules.discretion.models import DiscretionBenchmark
from server.modules.reviews import operations as reviews
from tests import factories
from tests.cases.conftest import D, certified, investigated
from tests.helpers import assert_contract, staff_headers


def _notified(db_session, w):
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="当事人书面放弃", hearing_too=True)
    return case


def test_steps_through_the_api_refuse_with_the_contract_and_the_rule(client, db_session, world):
    w = world
    case = investigated(db_session, w)
    url = f"/api/v1/cases/{case.id}/steps"
    refused = client.post(f"{url}/decide", json={"fine": 1}, headers=staff_headers(w.a))
    assert_contract(refused, 403, "auth.forbidden")  # the head decides
    wrong = client.post(f"{url}/hold_hearing", json={"record_summary": "x", "on": "2026-08-20"},
                        headers=staff_headers(w.a))
    assert_contract(wrong, 409, "case.invalid_transition")
    assert wrong.json["context"]["rule"] == "行政处罚法 第64、65条"
    missing = client.post(f"{url}/serve_decision", json={}, headers=staff_headers(w.a))
    assert_contract(missing, 422, "request.validation_failed")
    ok = client.post(f"{url}/serve_notice", json={"on": "2026-08-11"}, headers=staff_headers(w.a))
    assert ok.status_code == 200, ok.json
    assert ok.json["state"] == "notified" and ok.json["notified_fine"] == 209_000
    early = client.post(f"{url}/decide", json={"fine": 209000, "on": "2026-08-12"}, headers=staff_headers(w.head))
    assert_contract(early, 409, "case.guard_failed")
    assert early.json["context"]["rule"] == "行政处罚法 第62条; 第45条"
    outsider = certified(factories.UnitFactory())
    assert_contract(client.get(f"/api/v1/cases/{case.id}", headers=staff_headers(outsider)), 403, "case.out_of_scope")
    history = client.get(f"/api/v1/cases/{case.id}/history", headers=staff_headers(w.a)).json
    assert [h["action"] for h in history][:2] == ["file", "start_investigation"] and all(h["rule"] for h in history)


def test_create_lead_and_list_cases(client, db_session, world):
    w = world
    created = client.post("/api/v1/cases", json={"title": "举报：夜间偷排", "target_id": w.target.id},
                          headers=staff_headers(w.a))
    assert created.status_code == 201 and created.json["state"] == "lead"
    assert created.json["party_name"] == w.target.name
    listed = client.get("/api/v1/cases", headers=staff_headers(w.head)).json
    assert created.json["id"] in {c["id"] for c in listed}
    workflow = client.get("/api/v1/cases/workflow", headers=staff_headers(w.a)).json
    assert any(s["action"] == "decide" and "第57" in s["rule"] for s in workflow["steps"])


def test_review_queue_screen_and_decision(client, db_session, world):
    w = world
    case = _notified(db_session, w)
    cases.crime_check(db_session, case, by=w.a, facts={"exceedance_multiples": {"Pb": 1.2}})
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    queue = client.get("/api/v1/legal-reviews", headers=staff_headers(w.reviewer)).json
    assert queue[0]["review_id"] == review.id and queue[0]["due_on"] == "2026-08-19"
    assert queue[0]["scope"] == ["fine_threshold"]
    screen = client.get(f"/api/v1/legal-reviews/{review.id}/screen", headers=staff_headers(w.reviewer))
    assert screen.status_code == 200, screen.json
    data = screen.json
    assert {"case", "legal_basis", "discretion", "evidence", "procedure_checklist", "crime_check", "review_scope",
            "deadlines", "history", "investigative_acts"} <= data.keys()
    assert data["discretion"]["benchmark"] == "air_99_2@SL-AIR-2026.2" and data["discretion"]["amount"] == 209_000
    assert {f["code"]: f["evidence"] for f in data["discretion"]["factors"]}["exceedance"] == "ev-monitoring"
    assert data["evidence"]["items"] == [] and data["evidence"]["note"]
    assert data["crime_check"]["suspected"] is False
    assert all(item["source"] for item in data["procedure_checklist"])
    assert_contract(client.get(f"/api/v1/legal-reviews/{review.id}/screen", headers=staff_headers(w.a)), 403)
    decided = client.post(f"/api/v1/legal-reviews/{review.id}/decision",
                          json={"outcome": "return", "opinion": "裁量因素证据不足", "reason_codes": ["discretion"]},
                          headers=staff_headers(w.reviewer))
    assert decided.status_code == 201, decided.json
    again = client.post(f"/api/v1/legal-reviews/{review.id}/decision", json={"outcome": "pass", "opinion": "同意"},
                        headers=staff_headers(w.reviewer2))
    assert_contract(again, 409, "review.already_decided")
    db_session.commit()
    tags = set(db_session.scalars(sa.select(AuditEntry.tag)))
    assert "web:legal_review:return" in tags


def test_reviewer_with_a_recorded_conflict_must_recuse(db_session, world):
    from server.modules.roster.models import ConflictDeclaration, ConflictRelation

    w = world
    case = _notified(db_session, w)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    db_session.add(ConflictDeclaration(user_id=w.reviewer.id, uscc=w.target.uscc, relation=list(ConflictRelation)[0],
                                       detail="配偶任该公司财务", recorded_by=w.head.id))
    db_session.flush()
    try:
        reviews.decide(db_session, review, reviewer=w.reviewer, outcome=reviews.ReviewOutcome.PASS, opinion="同意")
    except reviews.ReviewerConflict as exc:
        assert exc.context["rule"] == "广东法制审核办法 第21条"
    else:
        raise AssertionError("conflict not detected")


def test_review_extension_by_the_head(client, db_session, world):
    w = world
    case = _notified(db_session, w)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    extended = client.post(f"/api/v1/legal-reviews/{review.id}/extend", json={"reason": "案情复杂，需补充鉴定意见"},
                           headers=staff_headers(w.head))
    assert extended.status_code == 200 and extended.json["due_on"] == "2026-08-24"
    again = client.post(f"/api/v1/legal-reviews/{review.id}/extend", json={"reason": "再次延长"},
                        headers=staff_headers(w.head))
    assert_contract(again, 422, "deadline.extension_refused")


def test_documents_are_numbered_pdfs_with_the_party_and_an_audited_hash(client, db_session, world):
    w = world
    case = investigated(db_session, w)
    too_early = client.post(f"/api/v1/cases/{case.id}/documents", json={"doc_type": "decision"},
                            headers=staff_headers(w.a))
    assert_contract(too_early, 409, "document.not_ready")
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    made = client.post(f"/api/v1/cases/{case.id}/documents", json={"doc_type": "notice", "on": "2026-08-11"},
                       headers=staff_headers(w.a))
    assert made.status_code == 201, made.json
    second = client.post(f"/api/v1/cases/{case.id}/documents", json={"doc_type": "inspection_record"},
                         headers=staff_headers(w.a)).json
    assert made.json["number"].startswith("商环告〔2026〕") and second["number"].startswith("商环检〔")
    pdf = client.get(f"/api/v1/case-documents/{made.json['id']}", headers=staff_headers(w.a))
    assert pdf.mimetype == "application/pdf" and pdf.headers["X-Content-SHA256"] == made.json["sha256"]
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="{made.json["id"]}.pdf"'
    assert pdf.headers["X-Content-Type-Options"] == "nosniff" and pdf.headers["Cache-Control"] == "no-store"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.data)).pages).replace("\n", "")
    assert made.json["number"] in text and w.target.name in text and "209,000" in text
    db_session.commit()
    entry = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.tag == "web:case_document:generated")).first()
    assert made.json["sha256"] in entry.body.decode()
    # numbers are allocated per unit, year and type without gaps
    again = client.post(f"/api/v1/cases/{case.id}/documents", json={"doc_type": "notice", "on": "2026-08-12"},
                        headers=staff_headers(w.a)).json
    assert int(again["number"][-5:-1]) == int(made.json["number"][-5:-1]) + 1
    assert db_session.scalar(sa.select(sa.func.count(CaseDocument.id))) == 3


def test_deadline_dashboard_events_and_daily_scan(app, client, db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    board = client.get("/api/v1/deadlines/dashboard?horizon_days=0", headers=staff_headers(w.head)).json
    # the decision clock of August is long past; the party's statement and hearing windows are listed
    # apart, never as the bureau overdue (行政处罚法 第45、64条)
    assert board["totals"]["overdue"] >= 1 and board["totals"]["party_windows"] == 2
    mine = client.get("/api/v1/deadlines/dashboard", headers=staff_headers(w.a)).json
    assert set(mine["by_person"]) == {str(w.a.id)}
    clocks = client.get(f"/api/v1/cases/{case.id}/deadlines", headers=staff_headers(w.a)).json
    decision = next(c for c in clocks if c["type"] == "decision")
    assert decision["calendar"] == "NATURAL_DAY" and decision["holiday_rollover"] is True
    paused = client.post(f"/api/v1/deadlines/{decision['id']}/events",
                         json={"action": "pause", "reason_code": "appraisal", "reason": "委托鉴定", "on": "2026-08-20"},
                         headers=staff_headers(w.a))
    assert paused.status_code == 200 and paused.json["paused"] is True
    resumed = client.post(f"/api/v1/deadlines/{decision['id']}/events",
                          json={"action": "resume", "reason": "鉴定意见送达", "on": "2026-08-30"},
                          headers=staff_headers(w.a))
    assert resumed.json["due_on"] == "2026-11-11"
    refused = client.post(f"/api/v1/deadlines/{decision['id']}/events",
                          json={"action": "extend", "amount": 30, "reason": "自行延长"}, headers=staff_headers(w.a))
    assert_contract(refused, 403, "auth.forbidden")
    extended = client.post(f"/api/v1/deadlines/{decision['id']}/events",
                           json={"action": "extend", "amount": 30, "reason": "负责人批准延长"},
                           headers=staff_headers(w.head))
    assert extended.json["due_on"] == "2026-12-11"
    scan = app.extensions["celery"].tasks[deadline_tasks.scan.name]  # this app's Celery, not the last one made
    summary = scan.delay().get()
    # only the extended decision clock can be overdue: the party's windows never count (第45、64条)
    late = int(local_today() > D(2026, 12, 11))
    assert summary["overdue"] == late and (str(w.unit.id) in {str(k) for k in summary["overdue_per_unit"]}) == bool(late)
    assert scan.delay().get()["newly_overdue"] == 0  # idempotent
    assert "deadlines-daily-scan" in app.config["BEAT_SCHEDULE"]


def test_joint_case_gives_participants_their_agency_access(client, db_session, world):
    w = world
    case = investigated(db_session, w)
    police_unit = factories.UnitFactory()
    officer = certified(police_unit, Role.INSPECTOR)
    assert_contract(client.get(f"/api/v1/cases/{case.id}", headers=staff_headers(officer)), 403)
    cases.add_agency(db_session, case, by=w.head, agency_id=w.unit.agency_id, role=AgencyRole.LEAD, access="full")
    cases.add_agency(db_session, case, by=w.head, agency_id=police_unit.agency_id, role=AgencyRole.PARTICIPANT,
                     tasks="控制现场、查明责任人")
    assert client.get(f"/api/v1/cases/{case.id}", headers=staff_headers(officer)).status_code == 200
    assert case.id in {c["id"] for c in client.get("/api/v1/cases", headers=staff_headers(officer)).json}
    refused = client.post(f"/api/v1/cases/{case.id}/steps/serve_notice", json={"on": "2026-08-11"},
                          headers=staff_headers(officer))
    assert_contract(refused, 403, "case.out_of_scope")
    act = client.post(f"/api/v1/cases/{case.id}/steps/record_act",
                      json={"kind": "inquiry", "act_date": "2026-08-12", "inspector_ids": [officer.id, w.a.id],
                            "summary": "公安与环保联合询问"}, headers=staff_headers(officer))
    assert act.status_code == 200, act.json
    try:
        cases.add_agency(db_session, case, by=w.head, agency_id=factories.AgencyFactory().id, role=AgencyRole.LEAD)
    except GuardFailed as exc:
        assert exc.context["guard"] == "one_lead_agency"
    else:
        raise AssertionError("second lead agency accepted")


def test_benchmarks_load_by_api_and_cli_and_preview(app, client, db_session, world, tmp_path):
    w = world
    admin = factories.UserFactory(role=Role.ADMIN, unit=w.unit)
    data = json.loads((cases.Path(__file__).parents[2] / "server/modules/discretion/benchmarks/water-83.weight-sum.json")
                      .read_text(encoding="utf-8"))
    data.update(version="SL-WATER-2027.1", effective_from="2027-01-01")
    loaded = client.post("/api/v1/discretion/benchmarks", json={"data": data}, headers=staff_headers(admin))
    assert loaded.status_code == 201 and loaded.json["effective_from"] == "2027-01-01"
    assert_contract(client.post("/api/v1/discretion/benchmarks", json={"data": data}, headers=staff_headers(admin)),
                    409, "discretion.version_exists")
    assert_contract(client.post("/api/v1/discretion/benchmarks", json={"data": {"version": "x"}},
                                headers=staff_headers(admin)), 422, "discretion.benchmark_invalid")
    assert_contract(client.post("/api/v1/discretion/benchmarks", json={"data": data}, headers=staff_headers(w.head)), 403)
    preview = client.post("/api/v1/discretion/preview", json={
        "violation_code": "air_99_2", "on": "2026-03-01", "inputs": {
            "exceedance": {"value": 60, "evidence": "e"}, "violations_2y": {"value": 2, "evidence": "e"}},
        "corrections": ["heavy_pollution_alert"]}, headers=staff_headers(w.a))
    assert preview.json["amount"] == 400_000 and preview.json["benchmark_version"] == "SL-AIR-2026.1"
    data.update(version="SL-WATER-2027.2")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    from server.modules.discretion.cli import discretion_cli

    runner = app.test_cli_runner()
    result = runner.invoke(discretion_cli, ["load", str(path)])
    assert result.exit_code == 0, result.output
    assert "SL-WATER-2027.2" in result.output
    assert db_session.scalar(sa.select(sa.func.count(DiscretionBenchmark.id)).where(
        DiscretionBenchmark.violation_code == "water_83")) == 3


def test_ids_beyond_the_integer_column_are_404(client, db_session, world):
    headers = staff_headers(world.reviewer)
    for url in ("/api/v1/legal-reviews/9223372036854775807/screen", "/api/v1/case-documents/2147483648"):
        assert_contract(client.get(url, headers=headers), 404)
    assert_contract(client.get("/api/v1/legal-reviews/2147483647/screen", headers=headers), 404, "review.not_found")


def test_review_screen_shows_linked_evidence_with_custody_and_flags(client, db_session, world):
    from server.modules.evidence.models import CustodyAction, CustodyEvent, EvidenceFlag, EvidenceItem, EvidenceKind

    w = world
    case = investigated(db_session, w)
    item = EvidenceItem(client_id="cap-0001", sha256="a" * 64, size=1234, media_type="image/jpeg",
                        kind=EvidenceKind.PHOTO, captured_by=w.a.id, acquisition_method="app_camera",
                        manifest={"client_id": "cap-0001"}, signature_valid=True)
    db_session.add(item)
    db_session.flush()
    db_session.add_all([
        CustodyEvent(item_id=item.id, seq=1, action=CustodyAction.CAPTURED, actor_kind="device", detail={}),
        CustodyEvent(item_id=item.id, seq=2, action=CustodyAction.ANNOUNCED, actor_kind="system", detail={}),
        EvidenceFlag(item_id=item.id, code="gps_far_from_target", detail={"distance_m": 4200})])
    db_session.flush()
    linked = client.post(f"/api/v1/cases/{case.id}/steps/link_evidence",
                         json={"evidence_ids": [item.id], "purpose": "排放口照片"}, headers=staff_headers(w.a))
    assert linked.status_code == 200, linked.json
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    cases.waive_statement(db_session, case, by=w.a, on=D(2026, 8, 12), note="放弃", hearing_too=True)
    review = reviews.submit(db_session, case, by=w.a, on=D(2026, 8, 12))
    evidence = client.get(f"/api/v1/legal-reviews/{review.id}/screen", headers=staff_headers(w.reviewer)).json["evidence"]
    (shown,) = evidence["items"]
    assert shown["purpose"] == "排放口照片" and shown["custody"]["events"] == 2
    assert shown["custody"]["last_action"] == "announced"
    assert shown["flags"] == [{"code": "gps_far_from_target", "detail": {"distance_m": 4200}}]
    missing = client.post(f"/api/v1/cases/{case.id}/steps/link_evidence", json={"evidence_ids": ["nope"]},
                          headers=staff_headers(w.a))
    assert_contract(missing, 409, "case.invalid_transition")  # in review: the file is frozen for the reviewer


def test_decision_and_hearing_notice_documents(client, db_session, world):
    w = world
    case = investigated(db_session, w)
    cases.serve_notice(db_session, case, by=w.a, on=D(2026, 8, 11))
    cases.request_hearing(db_session, case, by=w.a, on=D(2026, 8, 12))
    cases.schedule_hearing(db_session, case, by=w.head, notice_on=D(2026, 8, 12), hearing_date=D(2026, 8, 24),
                           presider_id=w.c.id)
    hearing = client.post(f"/api/v1/cases/{case.id}/documents", json={"doc_type": "hearing_notice", "on": "2026-08-12"},
                          headers=staff_headers(w.a)).json
    pdf = client.get(f"/api/v1/case-documents/{hearing['id']}", headers=staff_headers(w.a)).data
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")
    assert hearing["number"] in text and "2026-08-24" in text and w.c.display_name in text
    spec = client.get("/api/v1/openapi.json").json
    assert "/api/v1/cases/{case_id}/steps/{action}" in spec["paths"]
