"""End to end in a real browser (Debian's Chromium, headless, driven by Playwright) against the app
served by a real WSGI server on the demo data. Screenshots of each main page go to
test-artifacts/screenshots/. Tablet width (820 px) throughout."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from server.core.db import utcnow
from server.extensions import db
from server.modules.inspections.models import Inspection, InspectionStatus
from tests.web import scenes
from tests.web.conftest import PASSWORD, SCREENSHOTS
from tests import clock

pytestmark = pytest.mark.browser
TABLET = {"width": 820, "height": 1180}


@pytest.fixture(scope="module")
def world(web_app: Any, live: Any) -> Iterator[dict[str, Any]]:
    with web_app.app_context():
        scenes.second_case_in_review()
        transfer_id, package_id = scenes.handed_over_transfer(web_app)
        scenes.open_sync_conflict(web_app)
        scenes.audit_checkpoint(web_app)
        db.session.remove()
    yield {"transfer_id": transfer_id, "package_id": package_id}


def new_page(browser: Any, live: Any) -> Any:
    context = browser.new_context(viewport=TABLET, base_url=live.url, accept_downloads=True, locale="zh-CN")
    context.set_default_timeout(20000)
    return context.new_page()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, username: str) -> None:
    page.goto("/console/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/console/login" not in page.url, page.content()[:2000]


def idle_for(page: Any, app: Any, minutes: int) -> None:
    """Age the browser's session cookie as if it had sat unused for ``minutes`` (the server only
    sees the signed cookie, so this is the state a browser left open that long would send)."""
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = next(c for c in page.context.cookies() if c["name"] == app.config["SESSION_COOKIE_NAME"])
    data = serializer.loads(cookie["value"])
    data["seen"] -= minutes * 60
    page.context.add_cookies([{**cookie, "value": serializer.dumps(data)}])


def test_an_expired_session_keeps_the_half_typed_opinion(browser, live, world, web_app):
    from server.modules.reviews.models import LegalReview, ReviewStatus

    with web_app.app_context():
        review_id = db.session.scalar(sa.select(LegalReview.id).where(LegalReview.status == ReviewStatus.PENDING)
                                      .order_by(LegalReview.id))
        db.session.remove()
    page = new_page(browser, live)
    sign_in(page, "reviewer2")
    page.goto(f"/console/reviews/{review_id}")
    # idle past the limit while reading, then a reload: sign-in says the session expired
    page.fill("#opinion", "半截意见：需要核对")
    idle_for(page, web_app, web_app.config["SESSION_IDLE_MINUTES"] + 1)
    page.reload()
    assert "/console/login" in page.url and "登录已过期" in page.locator("#session-expired").inner_text()
    shot(page, "console-session-expired")
    page.fill("#username", "reviewer2")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/console/reviews/{review_id}")
    assert page.input_value("#opinion") == "半截意见：需要核对"
    # idle again, and this time the opinion is sent: nothing is decided, and after signing in
    # again the page comes back with the whole opinion in it
    page.fill("#opinion", "事实清楚，证据确凿，但裁量说明需补充监测报告编号")
    idle_for(page, web_app, web_app.config["SESSION_IDLE_MINUTES"] + 1)
    page.click("#btn-pass")
    assert "/console/login" in page.url and page.locator("#session-expired").count() == 1
    page.fill("#username", "reviewer2")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/console/reviews/{review_id}")
    assert page.input_value("#opinion") == "事实清楚，证据确凿，但裁量说明需补充监测报告编号"
    with web_app.app_context():
        assert db.session.get(LegalReview, review_id).status is ReviewStatus.PENDING
        db.session.remove()
    page.context.close()


def test_reviewer_returns_one_case_and_passes_another(browser, live, world):
    page = new_page(browser, live)
    page.goto("/console/login")
    shot(page, "console-login")
    sign_in(page, "reviewer1")
    assert page.url.endswith("/console/reviews")
    rows = page.locator("table tbody tr a")
    assert rows.count() == 2
    shot(page, "reviewer-queue")
    rows.first.click()
    assert page.locator("h2", has_text="程序检查").count() == 1
    shot(page, "reviewer-case-review")
    # a return without a reason code is refused on the server, and the typed opinion survives
    page.fill("#opinion", "裁量因素证据不足，请补充监测报告")
    page.click("#btn-return")
    assert page.locator(".error").inner_text().count("退回须注明编码化的退回理由") == 1
    assert page.input_value("#opinion") == "裁量因素证据不足，请补充监测报告"
    page.check("input[value=facts_evidence]")
    page.click("#btn-return")
    assert page.url.endswith("/console/reviews") and page.locator("table tbody tr a").count() == 1
    page.locator("table tbody tr a").first.click()
    page.fill("#opinion", "事实清楚，证据确凿，程序合法，裁量适当")
    page.click("#btn-pass")
    assert "暂无" in page.locator("table tbody").inner_text()
    page.goto("/console/reviews/history")
    history = page.locator("table tbody").inner_text()
    assert "return" in history and "pass" in history and "facts_evidence" in history
    shot(page, "reviewer-history")
    page.context.close()


def test_an_inspector_lands_on_their_work(browser, live, world, web_app):
    """inspector01 signs in to "我的工作": their drawn inspection (confidential, shown to its team),
    their cases with the overdue clocks first, the photo their phone has yet to upload; another
    inspector and an auxiliary land on their own page without that target on it."""
    with web_app.app_context():
        work = scenes.inspector_at_work()
        db.session.remove()
    page = new_page(browser, live)
    sign_in(page, "inspector01")
    assert page.url.endswith("/console/my-work") and page.title() == "我的工作 · 秦岭移动执法"
    drawn = page.locator(f"#my-inspections tr[data-inspection='{work['inspection_id']}']")
    assert work["target"] in drawn.inner_text() and "抽查对象保密" in drawn.inner_text()
    first_case = page.locator("#my-cases tbody tr").first.inner_text()
    assert "逾期" in first_case  # the demo's clocks all ended before today
    assert work["target"] in page.locator("#my-awaiting").inner_text()
    shot(page, "inspector-home")
    page.locator("#my-cases tbody tr a").first.click()
    assert "/console/cases/" in page.url
    page.go_back()
    page.click("#lang-switch")
    assert page.title() == "My work · Qinling Field" and "Inspections to do" in page.content()
    shot(page, "inspector-home-en")
    page.context.close()
    for username in ("inspector03", "auxiliary.shangzhou"):
        other = browser.new_context(viewport=IPAD, base_url=live.url, locale="zh-CN").new_page()
        sign_in(other, username)
        assert other.url.endswith("/console/my-work") and work["target"] not in other.content()
        assert other.evaluate("document.documentElement.scrollWidth") <= IPAD["width"]
        other.context.close()


def test_supervisor_runs_a_draw_ceremony_and_the_public_verifies_it(browser, live, world, web_app, tmp_path):
    supervisor, observer = new_page(browser, live), new_page(browser, live)
    sign_in(supervisor, "supervisor")
    shot(supervisor, "supervisor-home")
    supervisor.goto("/console/draws")
    today = clock.today()
    supervisor.fill("#title", "商州区双随机抽查（测试）")
    supervisor.fill("#period_label", f"{today.year}-W")
    supervisor.select_option("#region_codes", ["611002"])
    supervisor.fill("#window_start", (today + dt.timedelta(days=1)).isoformat())
    supervisor.fill("#window_end", (today + dt.timedelta(days=8)).isoformat())
    supervisor.click("#new-draw button[type=submit]")
    assert "/console/draws/" in supervisor.url, supervisor.content()[:3000]
    draw_url = supervisor.url
    supervisor.click("[data-generate]")
    supervisor.click("#btn-commit")
    sign_in(observer, "reviewer2")
    observer.goto(draw_url)
    observer.fill("#secret", "observer-secret-2026")
    observer.click("#btn-commit")
    supervisor.goto(draw_url)
    shot(supervisor, "supervisor-draw-committing")
    supervisor.click("#btn-freeze")
    assert supervisor.locator("#draw-status").inner_text() == "frozen", supervisor.locator(".error").all_inner_texts()
    supervisor.fill("#public_value", "福彩3D 2026001: 4 7 1")
    supervisor.click("#btn-public-value")
    # restored from this browser's commit by console.js, which runs once the new page is parsed
    # (a locator assertion: wait_for_function evaluates a string, which the pages' CSP refuses)
    from playwright.sync_api import expect

    expect(supervisor.locator("#reveal-secret")).not_to_have_value("")
    assert supervisor.input_value("#reveal-secret")
    supervisor.click("#btn-reveal")
    observer.goto(draw_url)
    observer.fill("#reveal-secret", "wrong secret")
    observer.click("#btn-reveal")
    assert "draw.reveal_mismatch" in observer.locator(".error").inner_text()
    observer.fill("#reveal-secret", "observer-secret-2026")
    observer.click("#btn-reveal")
    supervisor.goto(draw_url)
    supervisor.click("#btn-run")
    assert supervisor.locator("#draw-status").inner_text() == "executed", supervisor.locator(".error").all_inner_texts()
    draw_id = draw_url.rsplit("/", 1)[1]
    supervisor.click("#btn-publish")  # refused while the visits are still to come
    assert "draw.not_yet_visited" in supervisor.locator(".error").inner_text()
    with web_app.app_context():  # the teams visit (their devices' side is tested with sync)
        for inspection in db.session.scalars(sa.select(Inspection).where(Inspection.draw_id == draw_id)):
            inspection.status, inspection.completed_at = InspectionStatus.COMPLETED, utcnow()
        db.session.commit()
    supervisor.goto(draw_url)
    supervisor.click("#btn-publish")
    assert supervisor.locator("#draw-status").inner_text() == "published", supervisor.locator(".error").all_inner_texts()
    shot(supervisor, "supervisor-draw-published")

    public = new_page(browser, live)
    public.goto("/")
    shot(public, "portal-home")
    public.goto("/public/draws")
    shot(public, "portal-draws")
    public.click(f"a[href='/public/draws/{draw_id}']")
    shot(public, "portal-draw")
    with public.expect_download() as script:
        public.click("#download-verifier")
    with public.expect_download() as document:
        public.click("#download-document")
    script.value.save_as(tmp_path / "draw_verify.py")
    document.value.save_as(tmp_path / "draw.json")
    checked = subprocess.run([sys.executable, "-I", "-S", "draw_verify.py", "verify", "draw.json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "MATCH" in checked.stdout, checked.stdout + checked.stderr
    for page in (supervisor, observer, public):
        page.context.close()


def test_supervisor_resolves_a_sync_conflict_and_visits_the_unit_pages(browser, live, world):
    page = new_page(browser, live)
    sign_in(page, "supervisor")
    page.goto("/console/sync")
    conflict = page.locator("form.conflict").first
    values = conflict.locator(".side-by-side label").all_inner_texts()
    assert any("废水经暗管直排" in v for v in values) and any("废水未经处理外排" in v for v in values)
    shot(page, "supervisor-sync")
    conflict.locator("input[value=merge]").check()
    conflict.locator("input[name=merged]").fill("废水未经处理经暗管直排")
    # the browser's own check is skipped so the server's validation answers
    page.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
    conflict.locator("button[type=submit]").click()
    assert page.locator(".error").count() == 1 and "必填" in page.locator(".error").inner_text()  # no reason
    conflict = page.locator("form.conflict").first
    conflict.locator("input[value=merge]").check()
    conflict.locator("input[name=merged]").fill("废水未经处理经暗管直排")
    conflict.locator("textarea[name=reason]").fill("两人记录合并，经现场照片核实")
    conflict.locator("button[type=submit]").click()
    assert page.locator("form.conflict").count() == 0
    for path, name in (("/console/directory", "supervisor-directory"), ("/console/roster", "supervisor-roster"),
                       ("/console/sampling", "supervisor-sampling"), ("/console/inspections", "supervisor-inspections"),
                       ("/console/deadlines?days=90", "supervisor-deadlines"), ("/console/cases", "supervisor-cases"),
                       ("/public/staff", "portal-staff"), ("/public/sampling", "portal-sampling"),
                       ("/public/decisions", "portal-decisions"), ("/public/audit", "portal-audit-checkpoint")):
        page.goto(path)
        assert page.title().endswith("秦岭移动执法"), path
        shot(page, name)
    page.goto("/console/cases")
    page.locator("table tbody tr a").first.click()
    shot(page, "supervisor-case")
    page.goto("/public/enterprises?q=商洛")
    page.locator("table tbody tr a").first.click()
    assert "按季度" in page.content()
    shot(page, "portal-enterprise")
    page.click("#lang-switch")
    assert "Quarterly compliance" in page.content()
    shot(page, "portal-enterprise-en")
    page.context.close()


def test_supervisor_versions_a_sampling_rule_and_drafts_a_plan(browser, live, world):
    page = new_page(browser, live)
    sign_in(page, "supervisor")
    page.goto("/console/sampling")
    rows = page.locator("#rules tbody tr").count()
    page.locator("#rules a.new-version").first.click()
    assert page.locator("#rule-new").get_attribute("open") is not None  # opened, filled from that rule
    assert page.input_value("#rule-value") and page.input_value("#rule-from") == ""
    page.fill("#rule-from", (clock.today() + dt.timedelta(days=90)).isoformat())
    page.fill("#rule-source", "商洛市2026年双随机抽查比例调整通知（演示）[R]")
    shot(page, "supervisor-sampling-rule-version")
    page.click("#btn-rule")
    assert "抽查规则已保存" in page.locator(".flash").inner_text()
    assert page.locator("#rules tbody tr").count() == rows + 1
    # a plan without its year and cap: the server answers each field in both languages
    page.click("#plan-new summary")
    page.evaluate("document.querySelectorAll('#plan-new [required]').forEach(e => e.removeAttribute('required'))")
    page.fill("#plan-title", "2027年度现场检查计划")
    page.fill("#planned_key", "40")
    page.click("#btn-plan")
    error = page.locator(".error").inner_text()
    assert "必填 / Missing data for required field." in error and "cap_per_enterprise" in error and "year" in error
    assert page.input_value("#plan-title") == "2027年度现场检查计划"
    shot(page, "supervisor-sampling-plan-error")
    page.fill("#plan-year", "2027")
    page.fill("#plan-cap", "3")
    page.click("#btn-plan")
    assert "年度计划草稿已保存" in page.locator(".flash").inner_text()
    assert "2027年度现场检查计划" in page.locator("#plans").inner_text()
    page.context.close()


def test_managers_redraw_a_draw_and_a_supervisor_publishes_a_result(browser, live, world, web_app):
    """Rule 7: the supervisor asks for a re-draw with a reason, the admin (a second manager) approves it
    and lands on the new draw, linked to the old. Rule 8: a result is published from the home board."""
    from server.modules.draws import operations as draws
    from server.modules.draws.models import Level

    with web_app.app_context():
        today = clock.today()
        draw_id = draws.create(db.session, scenes.user("supervisor"), title="柞水县双随机抽查（待重新抽取）",
                               region_codes=["611026"], level=Level.COUNTY, period_label=f"{today.year}R",
                               window_start=today, window_end=today + dt.timedelta(days=20)).id
        db.session.commit()
        db.session.remove()
    supervisor, admin = new_page(browser, live), new_page(browser, live)
    sign_in(supervisor, "supervisor")
    supervisor.goto(f"/console/draws/{draw_id}")
    supervisor.click("#redraw-new summary")
    supervisor.select_option("#reason_code", "data_error")
    supervisor.fill("#redraw-reason", "名录库中两家企业重复登记，抽取池有误")
    supervisor.click("#btn-redraw-request")
    assert "名录库中两家企业重复登记" in supervisor.locator("#redraw-pending").inner_text()
    assert supervisor.locator("#btn-redraw-approve").count() == 0  # not for the one who asked
    shot(supervisor, "supervisor-redraw-requested")
    sign_in(admin, "admin")
    admin.goto("/console/draws")
    admin.locator("#pending-redraws a", has_text="柞水县双随机抽查").click()
    admin.click("#btn-redraw-approve")
    assert "第 2 次抽取" in admin.locator("#draw-attempt").inner_text(), admin.locator(".error").all_inner_texts()
    assert admin.locator("#draw-status").inner_text() == "committing"
    shot(admin, "admin-redraw-approved")
    admin.click("#redraw-of")
    assert admin.locator("#draw-status").inner_text() == "superseded" and admin.locator("#superseded-by").count() == 1

    supervisor.goto("/console/supervisor")
    rows = supervisor.locator("#disclosure-due tbody tr[data-inspection]")
    before = rows.count()
    assert before >= 1, "the demo leaves results to disclose"
    first = rows.first
    first.locator("summary").click()
    first.locator("textarea[name=findings]").fill("未发现环境违法行为")
    first.locator("select[name=outcome]").select_option("no_problem")
    shot(supervisor, "supervisor-disclosure-publish")
    first.locator("button[type=submit]").click()
    assert supervisor.locator(".flash", has_text="结果已公开").count() == 1
    assert supervisor.locator("#disclosure-due tbody tr[data-inspection]").count() == before - 1
    for page in (supervisor, admin):
        page.context.close()


def test_directory_import_runs_in_the_background_and_shows_the_row_error_report(browser, live, world, tmp_path):
    page = new_page(browser, live)
    sign_in(page, "supervisor")
    page.goto("/console/directory")
    page.click("summary")
    bad = tmp_path / "targets.csv"
    bad.write_text("uscc,name,region_code,address,risk_class\n91611002MA00000000,测试企业,611002,地址,general\n"
                   ",无代码企业,999999,,key\n",
                   encoding="utf-8")
    page.set_input_files("#file", str(bad))
    page.click("#btn-import")
    assert "/console/directory/imports/" in page.url
    # the import page polls until the task is over, then shows the report (no reload by the test)
    report = page.locator("#import-report").inner_text()
    assert "错误 2" in report and "未作任何修改" in report
    assert page.locator("#import-status").get_attribute("data-status") == "rejected"
    shot(page, "supervisor-directory-import")
    page.context.close()


def test_an_import_page_follows_the_task_without_a_reload(browser, live, world, web_app):
    """A queued import (its worker busy): the page shows it waiting, then follows the task as it runs."""
    from server.modules.directory import operations as directory
    from server.modules.directory import tasks as directory_tasks
    from server.modules.directory import uscc

    rows = "".join(f"{uscc.complete(f'91611002MD{n:07d}')},进度演示{n}有限公司,611002,商州区{n}号,general\n"
                   for n in range(1, 1201))
    with web_app.app_context():
        supervisor = scenes.user("supervisor")
        job = directory.request_import(db.session, by_user_id=supervisor.id, filename="名录更新.csv",
                                       content=("uscc,name,region_code,address,risk_class\n" + rows).encode(),
                                       accept_valid=False)
        db.session.commit()
        job_id = job.id
        db.session.remove()
    page = new_page(browser, live)
    sign_in(page, "supervisor")
    page.goto(f"/console/directory/imports/{job_id}")
    assert page.locator("#import-state").inner_text() == "排队中"
    page.evaluate("window.sameDocument = true")
    shot(page, "supervisor-directory-import-queued")
    with web_app.app_context():
        directory_tasks.run_import.run(job_id)  # the worker gets to it
        db.session.remove()
    page.wait_for_selector("#import-status[data-status=applied]")
    assert page.evaluate("window.sameDocument") is True  # htmx swapped the status in; no navigation
    assert page.locator("#import-rows").inner_text().startswith("1200 / 1200")
    assert "新增 1200" in page.locator("#import-report").inner_text()
    shot(page, "supervisor-directory-import-done")
    page.context.close()


def test_police_and_prosecutor_take_their_steps_through_the_forms(browser, live, world, tmp_path):
    """The demo transfer (handed over, receipt signed): the police ask for supplements, the bureau
    supplies them, the police decide and notify; the bureau builds a package (the page follows the
    build); the prosecutor acknowledges the copy, downloads the package and reads its verification."""
    transfer_url = f"/console/transfers/{world['transfer_id']}"
    police = new_page(browser, live)
    sign_in(police, "police")
    assert police.url.endswith("/console/transfers")
    shot(police, "police-transfers")
    police.click(f"a[href='{transfer_url}']")
    assert police.locator("#transfer-state").inner_text() == "receipt_signed"
    shot(police, "police-transfer")
    # a request without the list of materials is refused on the server; the typed note is kept
    police.fill("#request_supplement-note", "请于三日内补正")
    police.click("#btn-request_supplement")
    assert "须列明需补正的材料" in police.locator(".error").inner_text()
    assert police.input_value("#request_supplement-note") == "请于三日内补正"
    police.fill("#request_supplement-items", "危险废物鉴别报告\n现场监测报告原件")
    police.click("#btn-request_supplement")
    assert police.locator("#transfer-state").inner_text() == "supplement_requested"
    assert police.locator("#request_supplement-note").count() == 0  # the step is taken: its form is gone

    bureau = new_page(browser, live)
    sign_in(bureau, "inspector01")
    bureau.goto(transfer_url)
    bureau.fill("#supplement-note", "已补充危险废物鉴别报告及监测报告原件")
    bureau.click("#btn-supplement")
    assert bureau.locator("#transfer-state").inner_text() == "receipt_signed"

    police.goto(transfer_url)
    police.select_option("#decide-decision", "not_filed")
    police.fill("#decide-reason", " ")  # a decision not to file states its reason: the guard answers
    police.click("#btn-decide")
    error = police.locator(".error").inner_text()
    assert "不满足移送程序的法定条件" in error and "transfer.guard_failed" in error
    police.select_option("#decide-decision", "filed")
    police.click("#btn-decide")
    assert police.locator("#transfer-state").inner_text() == "decided"
    police.fill("#notify_agency-notice_number", "商公（环）立字〔2026〕18号")
    police.click("#btn-notify_agency")
    assert police.locator("#transfer-state").inner_text() == "agency_notified"
    history = police.locator("ol").last.inner_text()
    for action in ("request_supplement", "supplement", "decide", "notify_agency"):
        assert action in history, action
    shot(police, "police-transfer-decided")

    # the bureau builds a new package; its page follows the build until the volumes are listed
    bureau.goto(transfer_url)
    bureau.click("#btn-build")
    assert "/console/packages/" in bureau.url
    bureau.wait_for_selector("#package-status[data-status=done]", timeout=120000)
    shot(bureau, "bureau-package-built")
    package_url = bureau.url

    prosecutor = new_page(browser, live)
    sign_in(prosecutor, "prosecutor")
    assert prosecutor.url.endswith("/console/transfers")
    shot(prosecutor, "prosecutor-transfers")
    prosecutor.click(f"a[href='{transfer_url}']")
    prosecutor.fill("#typed_confirmation", "已收到抄送 检察官")
    prosecutor.click("#btn-ack")
    assert "已收到抄送 检察官" in prosecutor.locator("#acks").inner_text()
    shot(prosecutor, "prosecutor-transfer")
    for url in (f"/console/packages/{world['package_id']}", package_url):
        prosecutor.goto(url)
        assert prosecutor.locator("#package-state").get_attribute("data-status") == "done"
        shot(prosecutor, "prosecutor-package")
        with prosecutor.expect_download() as volume:
            prosecutor.locator("a.volume").first.click()
        volume.value.save_as(tmp_path / "package.zip")
        from server.modules.transfers import verify as package_verify

        assert not package_verify.verify(package_verify.open_source([str(tmp_path / "package.zip")])).failures
        prosecutor.click("#package-report")
        assert prosecutor.locator("#report-result").inner_text().startswith("RESULT: PASSED")
        shot(prosecutor, "prosecutor-package-report")
    for page in (police, bureau, prosecutor):
        page.context.close()


IPAD = {"width": 768, "height": 1024}  # a portrait tablet, the narrowest width the pages are made for
VISITORS = {"public": None, "supervisor": "supervisor", "legal_reviewer": "reviewer1", "prosecutor": "prosecutor",
            "police": "police", "inspector": "inspector01"}
NOT_PAGES = {"portal.static", "portal.set_language", "portal.draw_document", "portal.draw_verifier", "console.home"}


def page_urls(web_app: Any, role: str, *, signed_in: bool, values: dict[str, str]) -> list[tuple[str, str]]:
    """(endpoint, url) of every portal and console page ``role`` may open, real ids filled in."""
    import re

    from server.core.access import allowed_roles

    urls = []
    for rule in sorted(web_app.url_map.iter_rules(), key=lambda r: r.rule):
        roles = allowed_roles(rule.endpoint, "GET")
        if rule.endpoint.split(".")[0] not in ("portal", "console") or "GET" not in rule.methods \
                or rule.endpoint in NOT_PAGES or not ("public" in roles or role in roles):
            continue
        if signed_in and rule.endpoint == "console.login":
            continue
        urls.append((rule.endpoint, re.sub(r"<(?:[^:<>]+:)?([a-z_]+)>", lambda m: values[m.group(1)], rule.rule)))
    return urls


def _real_values(app: Any, world: dict[str, Any]) -> dict[str, str]:
    """An existing record for every page that shows one (a draw and an import are made if none exists)."""
    from server.modules.cases.models import Case
    from server.modules.directory import operations as directory
    from server.modules.directory import tasks as directory_tasks
    from server.modules.directory.models import DirectoryImport, Target
    from server.modules.draws import operations as draws
    from server.modules.draws.models import Draw, Level
    from server.modules.reviews.models import LegalReview

    with app.app_context():
        supervisor = scenes.user("supervisor")
        draw_id = db.session.scalar(sa.select(Draw.id).order_by(Draw.created_at))
        if draw_id is None:
            today = clock.today()
            draw_id = draws.create(db.session, supervisor, title="平板页面检查用抽取", region_codes=["611002"],
                                   level=Level.COUNTY, period_label=f"{today.year}T", window_start=today,
                                   window_end=today + dt.timedelta(days=30)).id
            db.session.commit()
        import_id = db.session.scalar(sa.select(DirectoryImport.id).order_by(DirectoryImport.created_at))
        if import_id is None:
            job = directory.request_import(db.session, by_user_id=supervisor.id, filename="tablet.csv",
                                           content=b"uscc,name,region_code,address,risk_class\n,x,1,,key\n",
                                           accept_valid=False)
            db.session.commit()
            directory_tasks.run_import.run(job.id)
            import_id = job.id
        values = {"review_id": str(db.session.scalar(sa.select(LegalReview.id).order_by(LegalReview.id))),
                  "case_id": db.session.scalar(sa.select(Case.id).where(Case.number.is_not(None)).order_by(Case.id)),
                  "target_id": str(db.session.scalar(sa.select(Target.id).order_by(Target.id))),
                  "draw_id": draw_id, "import_id": import_id, "transfer_id": world["transfer_id"],
                  "package_id": world["package_id"]}
        db.session.remove()
    return values


def test_every_page_fits_a_tablet_and_has_a_title(browser, live, world, web_app):
    """Each role opens every page the policy table gives it, 768 px wide: the page loads, is titled,
    and nothing but a table's own scroller is wider than the screen. One screenshot per page."""
    import re


    values = _real_values(web_app, world)
    shot_already: set[str] = set()
    problems = []
    for role, username in VISITORS.items():
        context = browser.new_context(viewport=IPAD, base_url=live.url, locale="zh-CN")
        context.set_default_timeout(20000)
        page = context.new_page()
        if username:
            sign_in(page, username)
        for endpoint, url in page_urls(web_app, role, signed_in=bool(username), values=values):
            response = page.goto(url)
            where = f"{url} as {role}"
            if response is None or response.status != 200:
                problems.append(f"{where}: {response.status if response else 'no response'}")
                continue
            if not re.match(r".+ · 秦岭移动执法$", page.title()):
                problems.append(f"{where}: title {page.title()!r}")
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > IPAD["width"]:
                problems.append(f"{where}: {wide} px wide")
            if endpoint not in shot_already:
                shot_already.add(endpoint)
                shot(page, "tablet-" + endpoint.replace(".", "-"))
        context.close()
    assert not problems, "\n".join(problems)
