"""Supervisors draft annual plans and add sampling-rule versions from the console: the API's schemas
validate the forms (messages in both languages), the draws operations write and audit, and a
manager other than the author approves a plan."""
from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from server.extensions import db
from tests.web.conftest import HTML, csrf_of, sign_in


def _signed_in(app, username):
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    return client


def _post(client, path, data):
    token = csrf_of(client.get("/console/sampling", headers=HTML).get_data(as_text=True))
    return client.post(path, headers=HTML, data={"csrf_token": token, **data})


def _audit(app, tag, subject_type, subject_id):
    from server.modules.audit.models import AuditEntry, AuditSubject

    with app.app_context():
        found = db.session.scalars(sa.select(AuditEntry.tag).join(AuditSubject, AuditSubject.entry_idx == AuditEntry.idx)
                                   .where(AuditSubject.subject_type == subject_type,
                                          AuditSubject.subject_id == str(subject_id))).all()
        db.session.remove()
    return [t for t in found if t == tag]


def _plans(app, year):
    from server.modules.draws.models import AnnualPlan

    with app.app_context():
        plans = [(p.id, p.status.value, p.planned, p.cap_per_enterprise, p.unit_id)
                 for p in db.session.scalars(sa.select(AnnualPlan).where(AnnualPlan.year == year))]
        db.session.remove()
    return plans


PLAN = {"year": "2031", "title": "2031年度现场检查计划", "planned_key": "36", "planned_general": "120",
        "planned_special": "12", "cap_per_enterprise": "4", "basis": "商环发〔2030〕1号；已报省厅备案"}


def test_a_supervisor_drafts_a_plan_and_another_manager_approves_it(web_app):
    supervisor = _signed_in(web_app, "supervisor")
    created = _post(supervisor, "/console/sampling/plans", PLAN)
    assert created.status_code == 302, created.get_data(as_text=True)[:2000]
    [(plan_id, status, planned, cap, unit_id)] = _plans(web_app, 2031)
    assert status == "draft" and planned == {"key": 36, "general": 120, "special": 12} and cap == 4
    assert _audit(web_app, "draws:annual_plan:created", "annual_plan", plan_id)
    page = supervisor.get("/console/sampling", headers=HTML).get_data(as_text=True)
    assert "年度计划草稿已保存" in page and "待另一负责人批准" in page  # no approve button for its author
    assert f"/console/sampling/plans/{plan_id}/approve" not in page
    # the author cannot approve by sending the form anyway: the operation refuses it
    refused = _post(supervisor, f"/console/sampling/plans/{plan_id}/approve", {})
    assert refused.status_code == 403 and "须由编制人以外的负责人批准" in refused.get_data(as_text=True)
    admin = _signed_in(web_app, "admin")
    assert f"/console/sampling/plans/{plan_id}/approve" in admin.get("/console/sampling", headers=HTML).get_data(as_text=True)
    assert _post(admin, f"/console/sampling/plans/{plan_id}/approve", {}).status_code == 302
    assert _plans(web_app, 2031)[0][1] == "approved"
    assert _audit(web_app, "draws:annual_plan:approved", "annual_plan", plan_id)
    # a second plan for the same unit and year is refused, with the typed form kept
    again = _post(supervisor, "/console/sampling/plans", {**PLAN, "title": "重复的计划"})
    text = again.get_data(as_text=True)
    assert again.status_code == 409 and "与现有数据冲突" in text and 'value="重复的计划"' in text
    assert len(_plans(web_app, 2031)) == 1


def test_a_bad_plan_form_is_answered_in_both_languages_and_writes_nothing(web_app):
    supervisor = _signed_in(web_app, "supervisor")
    bad = _post(supervisor, "/console/sampling/plans", {**PLAN, "year": "", "cap_per_enterprise": "0",
                                                         "planned_key": "many", "title": "2032年度计划"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "request.validation_failed" in text
    assert "必填 / Missing data for required field." in text  # year
    assert "超出允许范围 / Must be greater than or equal to 1." in text  # cap
    assert "须为数字 / Not a valid integer." in text and "planned.key" in text
    assert 'value="2032年度计划"' in text and re.search(r'<details class="card" id="plan-new" open', text)
    assert _plans(web_app, 2032) == []


def _rules(app, region, category, level="county"):
    from server.modules.draws.models import SamplingRule

    with app.app_context():
        found = [(r.id, r.effective_from, str(r.value), r.source) for r in db.session.scalars(
            sa.select(SamplingRule).where(SamplingRule.region_code == region, SamplingRule.category == category,
                                          SamplingRule.level == level).order_by(SamplingRule.effective_from))]
        db.session.remove()
    return found


def test_a_new_rule_version_from_a_date_supersedes_the_old_one_from_that_date(web_app):
    from server.modules.draws import rules
    from server.modules.draws.models import SamplingRule

    [(base_id, base_from, base_value, _)] = _rules(web_app, "611000", "key")
    supervisor = _signed_in(web_app, "supervisor")
    form = supervisor.get(f"/console/sampling?version_of={base_id}", headers=HTML).get_data(as_text=True)
    # the form starts from the rule it versions (same level, region, category, basis), dates and source blank
    assert re.search(r'<details class="card" id="rule-new" open', form)
    assert '<option value="key" selected>' in form and f'value="{base_value}"' in form
    start = base_from + dt.timedelta(days=400)
    data = {"level": "county", "region_code": "611000", "category": "key", "basis": "percent", "value": "30",
            "period": "quarter", "positive_list_factor": "0.5", "exclude_recent_periods": "1",
            "effective_from": start.isoformat(), "source": "陕环办发〔2026〕演示号 [R]"}
    saved = _post(supervisor, "/console/sampling/rules", data)
    assert saved.status_code == 302, saved.get_data(as_text=True)[:3000]
    versions = _rules(web_app, "611000", "key")
    assert [v[1] for v in versions] == [base_from, start] and versions[1][2] == "30.000"
    assert _audit(web_app, "draws:sampling_rule:created", "sampling_rule", versions[1][0])
    with web_app.app_context():
        every = db.session.scalars(sa.select(SamplingRule)).all()
        assert rules.pick(every, "county", "611024", "key", start - dt.timedelta(days=1)).id == base_id
        assert rules.pick(every, "county", "611024", "key", start).id == versions[1][0]
        db.session.remove()
    # the same start date again is a conflict, not a second row
    twice = _post(supervisor, "/console/sampling/rules", data)
    assert twice.status_code == 409 and "与现有数据冲突" in twice.get_data(as_text=True)
    assert len(_rules(web_app, "611000", "key")) == 2


def test_a_bad_rule_form_is_refused_field_by_field(web_app):
    supervisor = _signed_in(web_app, "supervisor")
    bad = _post(supervisor, "/console/sampling/rules", {
        "level": "county", "region_code": "611002", "category": "general", "basis": "percent", "value": "-3",
        "period": "fortnight", "positive_list_factor": "2", "effective_from": "31/12/2030", "source": ""})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    for field, message in (("value", "超出允许范围 / Must be greater than 0."),
                           ("period", "须为所列选项之一 / Must be one of: month, quarter, year."),
                           ("positive_list_factor", "超出允许范围"), ("effective_from", "日期格式 YYYY-MM-DD"),
                           ("source", "必填 / Missing data for required field.")):
        assert f"<code>{field}</code>" in text and message in text, field
    assert 'value="-3"' in text  # the typed values stay in the form
    assert _rules(web_app, "611002", "general") == []


def test_the_forms_need_a_manager_and_a_csrf_token(web_app):
    inspector = _signed_in(web_app, "inspector01")
    page = inspector.get("/console/cases", headers=HTML).get_data(as_text=True)
    for path in ("/console/sampling/rules", "/console/sampling/plans"):
        refused = inspector.post(path, headers=HTML, data={"csrf_token": csrf_of(page), **PLAN})
        assert refused.status_code == 403 and "may not call" in refused.get_data(as_text=True)
    supervisor = _signed_in(web_app, "supervisor")
    assert supervisor.post("/console/sampling/plans", headers=HTML, data={**PLAN, "year": "2033"}).status_code == 400
    assert _plans(web_app, 2033) == []
