"""Sign-in, sign-out, the language switch and each role's home page."""
from __future__ import annotations

from typing import Any

from flask import flash, make_response, redirect, render_template, request, session, url_for
from sqlalchemy.orm import selectinload

from server.core import errors, ratelimit
from server.core.access import Principal, current_principal
from server.core.calendar import get_calendar, local_today, schedule_warnings
from server.core.db import utcnow
from server.extensions import db
from server.modules.auth import operations as auth
from server.modules.cases import operations as cases
from server.modules.deadlines import operations as deadlines
from server.modules.disclosure import operations as disclosure
from server.modules.disclosure import schemas as disclosure_schemas
from server.modules.disclosure.models import Outcome
from server.modules.evidence import operations as evidence
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection
from server.modules.reviews import operations as reviews
from server.modules.sync import operations as sync
from server.modules.transfers import operations as transfers
from server.modules.users import operations as users
from server.web import HOME_BY_ROLE, console, i18n, portal, safe_next
from server.web.common import count, load_form, paged, paged_list, render_error, run, run_keeping

SHORT = 10  # rows per list on a home page; each list pages on its own


@portal.get("/lang/<code>")
def set_language(code: str) -> Any:
    """语言切换 / Language switch (a cookie, so it works signed in or not)"""
    response = make_response(redirect(safe_next(request.args.get("next")) or url_for("portal.home")))
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


@console.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """工作人员登录 / Staff sign-in"""
    if request.method == "GET":
        return render_template("console/login.html", expired=request.args.get("expired") == "1",
                               next=safe_next(request.args.get("next")))
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    nxt = safe_next(request.form.get("next"))
    with ratelimit.login_limits():  # shared with the API's sign-in; a 401 below counts as a failure
        user, error = run_keeping(lambda: users.authenticate(db.session, username, password, request.remote_addr))
    if error is not None:
        return render_error("console/login.html", error, next=nxt, expired=False)
    if user.must_change_password:
        return render_template("console/password.html", username=username, next=nxt)
    auth.start_session(user)
    return redirect(nxt or url_for(HOME_BY_ROLE.get(user.role.value, "console.cases")))


@console.post("/password")
def password_change() -> Any:
    """首次登录修改一次性密码 / Choose one's own password in place of a one-time one"""
    username = (request.form.get("username") or "").strip()
    nxt = safe_next(request.form.get("next"))
    new_password = request.form.get("new_password") or ""
    if new_password != (request.form.get("new_password_again") or ""):
        return render_error("console/password.html", errors.ValidationFailed(
            fields={"new_password_again": ["两次输入不一致 / the two entries differ"]}), username=username, next=nxt)

    def change() -> Any:
        user = users.authenticate(db.session, username, request.form.get("password") or "", request.remote_addr)
        return users.change_own_password(db.session, user, new_password)

    user, error = run_keeping(change)
    if error is not None:
        return render_error("console/password.html", error, username=username, next=nxt)
    auth.start_session(user)
    return redirect(nxt or url_for(HOME_BY_ROLE.get(user.role.value, "console.cases")))


@console.post("/logout")
def logout() -> Any:
    """退出 / Sign out"""
    # On the server, not only in this browser: a copy of the cookie stops working too.
    users.end_sessions(db.session, users.current_user(db.session), "web:login:logged_out", via="console")
    db.session.commit()
    session.clear()
    flash(i18n.t("sign_out") + " ✓")
    return redirect(url_for("console.login"))


@console.get("/")
def home() -> Any:
    """各角色首页 / Each role's home page"""
    return redirect(url_for(HOME_BY_ROLE.get(current_principal().role, "console.cases")))


@console.get("/supervisor")
def supervisor_home() -> Any:
    """负责人首页：待办与期限 / Supervisor home: what is due"""
    return render_template("console/supervisor_home.html", **_supervisor_context())


def _supervisor_context() -> dict[str, Any]:
    """The unit's deadlines, reviews, devices and results to disclose (an admin's: every unit's)."""
    principal = current_principal()
    today = local_today()
    unit_id = None if principal.role == "admin" else principal.unit_id
    return {
        "case_deadlines": deadlines.dashboard(db.session, unit_id=unit_id, today=today),
        "transfer_deadlines": transfers.dashboard(db.session, principal, utcnow()),
        "disclosure_due": paged_list(disclosure.deadlines(db.session, unit_id=unit_id, today=today), per_page=20,
                                     param="disclosure_page"),
        "outcomes": [o.value for o in Outcome],
        "reviews": reviews.queue(db.session, today, unit_id=unit_id, limit=20),
        "devices": sync.health(db.session, principal),
        "calendar_warnings": schedule_warnings(get_calendar(), today),
    }


@console.post("/disclosure/results")
def result_publish() -> Any:
    """公开本单位一项双随机抽查结果（检查结束后20个工作日内）/ Publish one of the unit's random-inspection results"""
    def publish() -> Any:
        loaded = load_form(disclosure_schemas.DisclosedResultPublishSchema(), {
            name: (request.form.get(name) or "").strip() for name in ("inspection_id", "findings", "outcome")})
        return disclosure.publish_result(db.session, by_user_id=current_principal().user_id, **loaded)

    result, error = run(publish)
    if error is not None:
        return render_error("console/supervisor_home.html", error, failed=request.form.get("inspection_id"),
                            **_supervisor_context())
    late = "" if result.on_time else ("（逾期公开）" if i18n.current() == "zh" else " (published late)")
    flash(f"{'结果已公开' if i18n.current() == 'zh' else 'Result published'}: {result.target_name}{late} ✓")
    return redirect(url_for("console.supervisor_home"))


@console.get("/my-work")
def inspector_home() -> Any:
    """我的工作：检查任务、案件期限、待上传与有疑点的证据、同步 / My work: inspections, case deadlines, evidence, sync"""
    principal = current_principal()
    user_id, today = principal.user_id, local_today()
    handled = db.session.scalars(cases.handled_by(db.session, user_id)).all()
    next_due = deadlines.next_per_case(db.session, [c.id for c in handled], today)
    lists = {
        "inspections": inspections.open_for(db.session, principal).options(selectinload(Inspection.target)),
        "awaiting": evidence.awaiting_bytes(user_id), "flagged": evidence.flagged(user_id),
        "conflicts": sync.open_conflicts_of(user_id)}
    pages = {name: paged(query, per_page=SHORT, param=f"{name}_page") for name, query in lists.items()}
    awaiting, conflicts = pages["awaiting"]["rows"], pages["conflicts"]["rows"]
    return render_template(
        "console/inspector_home.html", today=today, **pages,
        totals={name: count(query) for name, query in lists.items()}
        | {"cases": len(handled), "overdue": sum(1 for d in next_due.values() if d["overdue"])},
        cases=paged_list([{"case": c, "next": next_due.get(c.id)} for c in
                          sorted(handled, key=lambda c: deadlines.urgency(next_due.get(c.id)))],
                         per_page=SHORT, param="cases_page"),
        uploads=evidence.upload_progress(db.session, [item.sha256 for item in awaiting]),
        upload_due={item.id: evidence.upload_clock(db.session, item)[1] for item in awaiting},
        fields={c.id: sync.field_label(db.session, c) for c in conflicts},
        targets=_target_names(principal, {row.inspection_id for name in ("awaiting", "flagged", "conflicts")
                                          for row in pages[name]["rows"]}),
        devices=sync.health(db.session, principal, user_id=user_id),
    )


def _target_names(principal: Principal, inspection_ids: set[str | None]) -> dict[str, str]:
    """Target names of these inspections, through the inspections' own scope rule, so a drawn
    target is never named to anyone off its team (DOMAIN-RULES rule 6)."""
    wanted = inspection_ids - {None}
    if not wanted:
        return {}
    return {i.id: i.target.name for i in db.session.scalars(
        inspections.visible(db.session, principal).where(Inspection.id.in_(wanted))
        .options(selectinload(Inspection.target)))}
