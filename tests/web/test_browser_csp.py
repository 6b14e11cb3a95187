"""The pages under their Content-Security-Policy in a real browser (issue 14 #6): each role opens every
page the policy table gives it, and the API docs, and the browser reports no CSP violation; the
behaviour that used to be inline (a select that sends its form, "back") still works from console.js."""
from __future__ import annotations

from typing import Any

import pytest

from tests.web.test_browser import TABLET, VISITORS, _real_values, page_urls, sign_in, world  # noqa: F401

pytestmark = pytest.mark.browser

WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});
"""


def _page(browser: Any, live: Any, problems: list[str]) -> Any:
    context = browser.new_context(viewport=TABLET, base_url=live.url, locale="zh-CN")
    context.set_default_timeout(20000)
    context.add_init_script(WATCH)
    page = context.new_page()
    page.on("console", lambda msg: problems.append(f"{page.url}: console: {msg.text}")
            if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
    return page


def _violations(page: Any) -> list[str]:
    return [f"{page.url}: {v}" for v in page.evaluate("window.__csp || []")]


def test_no_page_breaks_its_content_security_policy(browser, live, world, web_app):  # noqa: F811

    values = _real_values(web_app, world)
    problems: list[str] = []
    for role, username in VISITORS.items():
        page = _page(browser, live, problems)
        if username:
            sign_in(page, username)
        for _, url in page_urls(web_app, role, signed_in=bool(username), values=values):
            response = page.goto(url)
            assert response is not None and response.status == 200, f"{url} as {role}"
            assert "unsafe-inline" not in response.headers["content-security-policy"]
            page.wait_for_load_state("load")
            problems += _violations(page)
        page.context.close()

    page = _page(browser, live, problems)
    for docs in ("/api/v1/docs", "/mobile/v1/docs"):
        page.goto(docs)
        page.wait_for_selector(".swagger-ui .info .title")  # Swagger UI started from swagger-init.js
        problems += _violations(page)
    page.context.close()
    assert not problems, "\n".join(problems)


def test_inline_behaviour_moved_to_console_js_still_works(browser, live, world):  # noqa: F811
    problems: list[str] = []
    page = _page(browser, live, problems)
    sign_in(page, "supervisor")
    page.goto("/console/deadlines")
    with page.expect_navigation():
        page.select_option("select[name=days]", "90")  # was onchange="this.form.submit()"
    assert "days=90" in page.url
    missing = page.goto("/console/cases/no-such-case")
    assert missing is not None and missing.status == 404
    with page.expect_navigation():
        page.click("a[data-back]")  # was href="javascript:history.back()"
    assert page.url.endswith("/console/deadlines?days=90")
    problems += _violations(page)
    page.context.close()
    assert not problems, "\n".join(problems)
