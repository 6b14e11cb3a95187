"""The directory import page over HTTP, with long tasks on threads as in `make run`: the form
returns at once, the page shows the import's stored progress and, once done, its row error report."""
from __future__ import annotations

import io
import time

import sqlalchemy as sa

from server.extensions import db
from server.modules.directory import uscc
from tests.web.conftest import HTML, csrf_of, sign_in


def _csv(first: int, count: int, bad_rows: tuple[int, ...] = ()) -> bytes:
    lines = ["统一社会信用代码,名称,行政区划代码,地址,监管类别"]
    for i in range(count):
        lines.append(f"{uscc.complete(f'91611002MC{first + i:07d}')},页面导入{first + i}有限公司,"
                     f"{'999999' if i in bad_rows else '611002'},商州区{i}号,general")
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def _finished(client, location: str) -> str:
    """Poll the page's fragment as htmx does until the import is over (the thread runs it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fragment = client.get(location, headers={"HX-Request": "true"}).get_data(as_text=True)
        if 'data-status="queued"' not in fragment and 'data-status="running"' not in fragment:
            return fragment
        time.sleep(0.2)
    raise AssertionError(f"the import at {location} did not finish: {fragment}")


def test_an_import_runs_in_the_background_and_its_page_shows_the_report(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    page = client.get("/console/directory", headers=HTML).get_data(as_text=True)
    sent = client.post("/console/directory/import", headers=HTML, content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": (io.BytesIO(_csv(1, 3, bad_rows=(2,))), "targets.csv")})
    assert sent.status_code == 302 and "/console/directory/imports/" in sent.headers["Location"]
    location = sent.headers["Location"]
    first = client.get(location, headers=HTML).get_data(as_text=True)
    assert "<title>导入: targets.csv · 秦岭移动执法</title>" in first and 'id="import-progress"' in first
    report = _finished(client, location)
    assert 'data-status="rejected"' in report and "hx-trigger" not in report  # over: the page stops polling
    assert "未作任何修改" in report and "<td>4</td>" in report and "directory.region_unknown" in report
    assert location in client.get("/console/directory", headers=HTML).get_data(as_text=True)  # recent imports
    # the valid rows only, on request
    kept = client.post("/console/directory/import", headers=HTML, content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "accept_valid": "1",
        "file": (io.BytesIO(_csv(1, 3, bad_rows=(2,))), "targets.csv")})
    done = _finished(client, kept.headers["Location"])
    assert 'data-status="applied"' in done and "已导入" in done
    from server.modules.directory.models import Target

    with web_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Target.id)).where(Target.uscc.like("91611002MC%"))) == 2
        db.session.remove()


def test_the_form_answers_a_missing_or_unreadable_file_at_once(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    page = client.get("/console/directory", headers=HTML).get_data(as_text=True)
    for data, code in (({}, "request.validation_failed"), ({"file": (io.BytesIO(b"x"), "t.doc")},
                                                          "directory.import_malformed")):
        refused = client.post("/console/directory/import", headers=HTML, content_type="multipart/form-data",
                              data={"csrf_token": csrf_of(page), **data})
        text = refused.get_data(as_text=True)
        assert refused.status_code in (400, 422) and "操作未完成" in text and code in text
        assert '<details class="card" open>' in text  # the import form stays open with the message


def test_an_unknown_import_is_a_page_not_found(web_app):
    client = web_app.test_client()
    sign_in(client, "supervisor")
    missing = client.get("/console/directory/imports/" + "0" * 36, headers=HTML)
    assert missing.status_code == 404 and "导入任务不存在" in missing.get_data(as_text=True)


def test_task_threads_is_a_count_of_threads(tmp_path):
    import pytest

    from server.config import ConfigError, load

    environ = {"ENFORCE_SECRET_KEY": "a-long-enough-secret-key"}
    assert load(str(tmp_path), environ=environ)["TASK_THREADS"] == 2
    assert load(str(tmp_path), environ={**environ, "ENFORCE_TASK_THREADS": "0"})["TASK_THREADS"] == 0
    with pytest.raises(ConfigError, match="ENFORCE_TASK_THREADS must be 0 or more"):
        load(str(tmp_path), environ={**environ, "ENFORCE_TASK_THREADS": "-1"})
