"""Directory imports as a task: the file is kept, the task stores its progress as it checks the rows,
and the targets, the row error report and the audit entry commit together (or nothing changes).

The suite runs long tasks in the request (TASK_THREADS=0); tests/web/test_import_pages.py and
tests/web/test_browser.py drive the console and the threaded default."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from server.extensions import db
from server.modules.directory import operations as directory
from server.modules.directory import schemas, tasks, uscc
from server.modules.directory.models import DirectoryImport, ImportStatus, Target
from tests.helpers import audit_entries


def _code(n: int) -> str:
    return uscc.complete(f"91611002MB{n:07d}")


def _csv(first: int, count: int, bad_rows: tuple[int, ...] = ()) -> bytes:
    lines = ["uscc,name,region_code,address,risk_class"]
    for i in range(count):
        region = "999999" if i in bad_rows else "611002"
        lines.append(f"{_code(first + i)},导入测试{first + i}有限公司,{region},商州区{i}号,general")
    return ("\n".join(lines) + "\n").encode()


def _count(prefix: str = "91611002MB") -> int:
    return db.session.scalar(sa.select(sa.func.count(Target.id)).where(Target.uscc.like(f"{prefix}%")))


def test_progress_is_reported_every_few_hundred_rows(db_session, supervisor):
    calls: list[tuple[int, int]] = []
    directory.import_targets(db_session, filename="t.csv", content=_csv(1, 450), schema=schemas.TargetInputSchema(),
                             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 450), (200, 450), (400, 450), (450, 450)]


def test_the_task_stores_its_progress_and_commits_the_targets_with_the_report(client, db_session, supervisor):
    job = directory.request_import(db_session, by_user_id=supervisor.id, filename="targets.csv",
                                   content=_csv(1000, 450), accept_valid=False)
    db_session.commit()
    assert job.status is ImportStatus.QUEUED and job.size == len(_csv(1000, 450))
    stored: list[tuple[str, int, int | None]] = []

    def commit() -> None:  # the boundary's commit; record what a polling page would read after it
        db_session.commit()
        row = db_session.execute(sa.select(DirectoryImport.status, DirectoryImport.done_rows,
                                           DirectoryImport.total_rows).where(DirectoryImport.id == job.id)).one()
        stored.append((row.status.value, row.done_rows, row.total_rows))

    done = directory.run_import(db_session, job.id, schema=schemas.TargetInputSchema(), commit=commit,
                                progress_every_s=0)
    commit()
    assert stored[:2] == [("running", 0, None), ("running", 0, 450)]
    assert ("running", 200, 450) in stored and ("running", 400, 450) in stored
    assert stored[-1] == ("applied", 450, 450)
    assert done.report["created"] == 450 and done.report["errors"] == [] and _count() == 450
    [entry] = audit_entries("directory:target:imported", directory_import=job.id)
    assert entry["actor"] == {"kind": "user", "id": str(supervisor.id)} and entry["payload"]["created"] == 450
    assert audit_entries("directory:import:requested", directory_import=job.id)
    # idempotent: a finished import is not run again
    again = directory.run_import(db_session, job.id, schema=schemas.TargetInputSchema(), commit=db_session.commit)
    assert again.status is ImportStatus.APPLIED and _count() == 450


def test_rows_with_errors_reject_the_whole_file_unless_the_valid_rows_are_wanted(client, db_session, supervisor):
    content = _csv(2000, 5, bad_rows=(1, 3))
    rejected = directory.request_import(db_session, by_user_id=supervisor.id, filename="t.csv", content=content,
                                        accept_valid=False)
    db_session.commit()
    tasks.run_import.run(rejected.id)
    db_session.expire_all()
    assert rejected.status is ImportStatus.REJECTED and _count("91611002MB00020") == 0
    assert [e["row"] for e in rejected.report["errors"]] == [3, 5] and rejected.report["applied"] is False
    assert audit_entries("directory:import:rejected", directory_import=rejected.id)
    partial = directory.request_import(db_session, by_user_id=supervisor.id, filename="t.csv", content=content,
                                       accept_valid=True)
    db_session.commit()
    tasks.run_import.run(partial.id)
    db_session.expire_all()
    assert partial.status is ImportStatus.APPLIED and partial.report["created"] == 3 and _count("91611002MB00020") == 3


def test_a_file_that_cannot_be_read_fails_the_import_with_the_reason(client, db_session, supervisor):
    with pytest.raises(directory.ImportMalformed):  # refused before anything is kept or queued
        directory.request_import(db_session, by_user_id=supervisor.id, filename="t.pdf", content=b"%PDF",
                                 accept_valid=False)
    job = directory.request_import(db_session, by_user_id=supervisor.id, filename="t.xlsx", content=b"not a zip",
                                   accept_valid=False)
    db_session.commit()
    tasks.run_import.run(job.id)
    db_session.expire_all()
    assert job.status is ImportStatus.FAILED and job.error["code"] == "directory.import_malformed"
    assert audit_entries("directory:import:failed", directory_import=job.id)[0]["payload"]["error"] == \
        "directory.import_malformed"


def test_a_broken_task_marks_the_import_failed(client, db_session, supervisor, app):
    from server.core.storage import get_store

    content = _csv(3000, 2) + b"# unique to this test\n"
    job = directory.request_import(db_session, by_user_id=supervisor.id, filename="t.csv", content=content,
                                   accept_valid=False)
    db_session.commit()
    get_store().delete(job.sha256)  # the storage lost the file
    with pytest.raises(OSError):
        tasks.run_import.run(job.id)
    db_session.expire_all()
    assert job.status is ImportStatus.FAILED and job.error["code"] == "server.internal_error"
    assert _count("91611002MB00030") == 0
