"""Directory imports over the web API as a task: POST /target-imports answers 202 with the import's
Location, GET shows its status, progress and, once done, the synchronous import's row report.

The suite runs long tasks in the request (TASK_THREADS=0), so an import is over when its POST
answers; the progress of a running import is read through the API while ``run_import`` commits."""
from __future__ import annotations

import datetime as dt
import io
import json
import time

import openpyxl
import sqlalchemy as sa

from server.core.access import Role
from server.extensions import db
from server.modules.directory import operations as directory
from server.modules.directory import schemas, uscc
from server.modules.directory.models import DirectoryImport, Target
from server.modules.users.models import Region
from tests import factories
from tests.helpers import assert_contract, audit_entries, staff_headers

PREFIX = "91611002ME"


def _code(n: int) -> str:
    return uscc.complete(f"{PREFIX}{n:07d}")


def _csv(first: int, count: int, bad_rows: tuple[int, ...] = ()) -> bytes:
    lines = ["统一社会信用代码,名称,行政区划代码,地址,监管类别"]
    for i in range(count):
        lines.append(f"{_code(first + i)},接口导入{first + i}有限公司,{'999999' if i in bad_rows else '611002'},"
                     f"商州区{i}号,general")
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def _count() -> int:
    return db.session.scalar(sa.select(sa.func.count(Target.id)).where(Target.uscc.like(f"{PREFIX}%")))


def _post(client, user, content: bytes, filename: str = "targets.csv", **form: str):
    return client.post("/api/v1/target-imports", headers=staff_headers(user), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(content), filename), **form})


def test_a_file_with_errors_ends_in_a_report_and_changes_nothing_unless_the_valid_rows_are_wanted(
        client, db_session, supervisor):
    content = _csv(1, 5, bad_rows=(1, 3))
    sent = _post(client, supervisor, content)
    assert sent.status_code == 202, sent.json
    location = sent.headers["Location"]
    assert location == f"/api/v1/target-imports/{sent.json['id']}"
    shown = client.get(location, headers=staff_headers(supervisor))
    assert shown.status_code == 200
    job = shown.json
    assert job["status"] == "rejected" and job["accept_valid"] is False and job["error"] is None
    assert job["report"]["applied"] is False and job["report"]["created"] == 0
    assert [(e["row"], e["errors"]) for e in job["report"]["errors"]] == [
        (3, {"region_code": ["directory.region_unknown"]}), (5, {"region_code": ["directory.region_unknown"]})]
    assert (job["report"]["total"], job["report"]["valid"], job["report"]["invalid"]) == (5, 3, 2)
    assert _count() == 0
    assert audit_entries("directory:import:rejected", directory_import=job["id"])

    kept = _post(client, supervisor, content, accept_valid="true")
    assert kept.status_code == 202, kept.json
    job = client.get(kept.headers["Location"], headers=staff_headers(supervisor)).json
    assert job["status"] == "applied" and job["accept_valid"] is True
    assert job["report"]["applied"] is True and job["report"]["created"] == 3
    assert [e["row"] for e in job["report"]["errors"]] == [3, 5]
    assert set(db_session.scalars(sa.select(Target.uscc).where(Target.uscc.like(f"{PREFIX}%")))) == {
        _code(1), _code(3), _code(5)}
    [entry] = audit_entries("directory:target:imported", directory_import=job["id"])
    assert entry["payload"]["accepted_partial"] is True and entry["actor"]["id"] == str(supervisor.id)


def test_the_report_is_the_synchronous_import_s_report(client, db_session, supervisor):
    content = _csv(10, 3, bad_rows=(0,))
    job = _post(client, supervisor, content).json
    synchronous = client.post("/api/v1/targets/import", headers=staff_headers(supervisor),
                              content_type="multipart/form-data",
                              data={"file": (io.BytesIO(content), "targets.csv")})
    report = assert_contract(synchronous, 422, "directory.import_invalid")["context"]["report"]
    assert job["report"] == report


def test_progress_is_visible_while_the_import_runs(client, db_session, supervisor):
    job = directory.request_import(db_session, by_user_id=supervisor.id, filename="targets.csv",
                                   content=_csv(100, 450), accept_valid=False)
    db_session.commit()
    location = f"/api/v1/target-imports/{job.id}"
    queued = client.get(location, headers=staff_headers(supervisor)).json
    assert (queued["status"], queued["done_rows"], queued["total_rows"], queued["progress"]) == ("queued", 0, None, 0)
    assert queued["report"] is None
    seen: list[tuple[str, int, int | None, float]] = []

    def commit() -> None:  # the task's commit; then poll as an API client would
        db_session.commit()
        body = client.get(location, headers=staff_headers(supervisor)).json
        seen.append((body["status"], body["done_rows"], body["total_rows"], body["progress"]))

    directory.run_import(db_session, job.id, schema=schemas.TargetInputSchema(), commit=commit, progress_every_s=0)
    db_session.commit()
    assert ("running", 200, 450, 0.4444) in seen and ("running", 400, 450, 0.8889) in seen
    done = client.get(location, headers=staff_headers(supervisor)).json
    assert (done["status"], done["done_rows"], done["total_rows"], done["progress"]) == ("applied", 450, 450, 1.0)
    assert done["report"]["created"] == 450 and done["finished_at"] and _count() == 450


def test_an_xlsx_file_is_imported(client, db_session, supervisor):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["uscc", "name", "region_code", "address", "risk_class", "positive_list", "positive_list_since"])
    sheet.append([_code(200), "己公司", "611021", "洛南县1号", "special", "false", None])
    sheet.append([_code(201), "庚公司", "611021", "洛南县2号", "general", "true", dt.datetime(2024, 3, 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    sent = _post(client, supervisor, buffer.getvalue(), filename="targets.xlsx")
    assert sent.status_code == 202, sent.json
    job = client.get(sent.headers["Location"], headers=staff_headers(supervisor)).json
    assert job["status"] == "applied" and job["report"]["created"] == 2 and job["filename"] == "targets.xlsx"
    target = db_session.scalar(sa.select(Target).where(Target.uscc == _code(201)))
    assert target.positive_list and target.positive_list_since == dt.date(2024, 3, 1)


def test_malformed_files_are_refused_or_fail_with_the_reason(client, db_session, supervisor):
    before = db_session.scalar(sa.select(sa.func.count(DirectoryImport.id)))
    for content, name in ((b"%PDF", "t.pdf"), (b"", "t.csv")):  # refused before anything is kept or queued
        assert_contract(_post(client, supervisor, content, filename=name), 400, "directory.import_malformed")
    missing = client.post("/api/v1/target-imports", headers=staff_headers(supervisor),
                          content_type="multipart/form-data", data={"accept_valid": "true"})
    assert_contract(missing, 422, "request.validation_failed")
    assert db_session.scalar(sa.select(sa.func.count(DirectoryImport.id))) == before
    # a file that cannot be read is only found out by the task: the import fails with the reason
    for content, name in ((b"not a zip", "t.xlsx"), ("名称\n甲\n".encode(), "t.csv")):
        sent = _post(client, supervisor, content, filename=name)
        assert sent.status_code == 202, sent.json
        job = client.get(sent.headers["Location"], headers=staff_headers(supervisor)).json
        assert job["status"] == "failed" and job["report"] is None
        assert job["error"]["code"] == "directory.import_malformed" and job["error"]["message_zh"]


def test_an_unknown_import_is_404_with_a_stable_code(client, db_session, supervisor):
    for import_id in ("0" * 36, "no-such-import"):
        missing = client.get(f"/api/v1/target-imports/{import_id}", headers=staff_headers(supervisor))
        assert assert_contract(missing, 404, "directory.import_not_found")["context"] == {
            "directory_import": import_id}


def test_the_list_holds_the_caller_s_imports_newest_first_paginated(client, db_session, supervisor):
    other = factories.UserFactory(role=Role.SUPERVISOR)
    theirs = _post(client, other, _csv(300, 1)).json["id"]
    mine = [_post(client, supervisor, _csv(310 + i, 1), filename=f"t{i}.csv").json["id"] for i in range(3)]
    listed = client.get("/api/v1/target-imports", headers=staff_headers(supervisor))
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json] == mine[::-1] and theirs not in {job["id"] for job in listed.json}
    assert listed.json[0]["filename"] == "t2.csv" and listed.json[0]["status"] == "applied"
    page = client.get("/api/v1/target-imports?page=2&page_size=2", headers=staff_headers(supervisor))
    assert [job["id"] for job in page.json] == [mine[0]]
    assert json.loads(page.headers["X-Pagination"])["total"] == 3
    # the directory is one register for the city: any supervisor may follow any import (as in the console)
    assert client.get(f"/api/v1/target-imports/{theirs}", headers=staff_headers(supervisor)).status_code == 200


def test_an_inspector_is_refused(client, db_session, supervisor):
    inspector = factories.inspector(unit=supervisor.unit)
    job = _post(client, supervisor, _csv(400, 1)).json
    before = db_session.scalar(sa.select(sa.func.count(DirectoryImport.id)))
    assert_contract(_post(client, inspector, _csv(410, 1)), 403, "auth.forbidden")
    assert_contract(client.get("/api/v1/target-imports", headers=staff_headers(inspector)), 403, "auth.forbidden")
    assert_contract(client.get(f"/api/v1/target-imports/{job['id']}", headers=staff_headers(inspector)), 403,
                    "auth.forbidden")
    assert db_session.scalar(sa.select(sa.func.count(DirectoryImport.id))) == before
    assert not db_session.scalar(sa.select(Target.id).where(Target.uscc == _code(410)))


def test_with_task_threads_the_post_answers_before_the_import_ends_and_the_get_follows_it(fresh_app):
    """The embedded default (`make run`): the import runs on a thread of the web process."""
    app = fresh_app("target_imports", BROKER_URL="memory://", TASK_THREADS=2)  # in-process, as make run
    with app.app_context():
        assert db.session.get(Region, "611002") is not None  # the migrations seed the regions
        headers = staff_headers(factories.UserFactory(role=Role.SUPERVISOR))
        db.session.commit()
    client = app.test_client()
    sent = client.post("/api/v1/target-imports", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(_csv(500, 2000, bad_rows=(7,))), "county.csv"),
                             "accept_valid": "true"})
    assert sent.status_code == 202, sent.json
    seen = [sent.json["status"]]
    deadline = time.monotonic() + 60
    while seen[-1] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(sent.headers["Location"], headers=headers).json
        seen.append(job["status"])
    assert seen[0] in ("queued", "running") and seen[-1] == "applied", seen
    assert job["report"]["created"] == 1999 and [e["row"] for e in job["report"]["errors"]] == [9]
    with app.app_context():
        assert _count() == 1999
        db.session.remove()
