"""The target directory (名录库): create, update and import targets. Operations flush; callers commit.

Every change is audited in the same transaction (STYLE rule 4). An import is all-or-nothing unless
the caller asks to take the valid rows: a file with errors changes nothing and returns a report.
A large import runs as a task (``request_import`` then ``run_import``) that stores its progress.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import time
from typing import Any, Callable

import marshmallow as ma
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Principal
from server.core.calendar import local_today
from server.core.db import utcnow
from server.core.geo import gcj02_to_wgs84
from server.core.storage import get_store, put_bytes
from server.modules.audit import operations as audit
from server.modules.directory import risk
from server.modules.directory import uscc as uscc_rules
from server.modules.directory.models import DirectoryImport, ImportStatus, RiskClass, Target
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection
from server.modules.users.models import Region

UsccInvalid = errors.error_code("directory.uscc_invalid", 422, "统一社会信用代码无效（GB 32100-2015 校验位不符）",
                                "Invalid unified social credit code (GB 32100-2015 check character)")
DuplicateTarget = errors.error_code("directory.duplicate_target", 409, "该统一社会信用代码已在名录库中",
                                    "A target with this credit code is already in the directory")
RegionUnknown = errors.error_code("directory.region_unknown", 422, "未知的行政区划代码", "Unknown region code")
VersionConflict = errors.error_code("directory.version_conflict", 409, "检查对象已被他人修改，请刷新后重试",
                                    "The target was changed by someone else; reload and retry")
ImportInvalid = errors.error_code("directory.import_invalid", 422, "导入文件有错误行，未作任何修改",
                                  "The import file has invalid rows; nothing was changed")
ImportMalformed = errors.error_code("directory.import_malformed", 400, "导入文件无法读取（须为含表头的 CSV 或 XLSX）",
                                    "The import file cannot be read (CSV or XLSX with a header row)")
ImportNotFound = errors.error_code("directory.import_not_found", 404, "导入任务不存在", "No such directory import")
PositiveListUndated = errors.error_code("directory.positive_list_undated", 422, "列入正面清单须注明纳入日期",
                                        "A positive-list entry needs its date")
PositiveListRemovalUnreasoned = errors.error_code(
    "directory.positive_list_removal_unreasoned", 422, "移出正面清单须说明理由", "Removing a target from the positive list needs a reason")
RiskBelowCriteria = errors.error_code(
    "directory.risk_class_below_criteria", 422, "监管类别低于准入标准所要求的类别（见类别依据）",
    "The risk class is lower than the entry criteria require (see the criteria met)")

# Column headers accepted in import files, Chinese or English.
HEADERS = {
    "统一社会信用代码": "uscc", "名称": "name", "单位名称": "name", "行政区划代码": "region_code", "地址": "address",
    "纬度": "lat", "经度": "lon", "坐标系": "coord_system", "行业": "industry", "监管类别": "risk_class",
    "类别依据": "risk_basis", "排污许可管理类别": "permit_class", "排污许可证编号": "permit_number",
    "正面清单": "positive_list", "正面清单纳入日期": "positive_list_since", "正面清单依据": "positive_list_basis",
    "环境信用等级": "credit_rating", "信用评价日期": "credit_rated_on",
}
EDITABLE = ("name", "region_code", "address", "lat", "lon", "industry", "risk_class", "risk_basis", "permit_class",
            "permit_number", "positive_list", "positive_list_since", "positive_list_basis", "credit_rating",
            "credit_rated_on", "active")
MAX_IMPORT_ROWS = 50_000
PROGRESS_ROWS = 200  # an import reports its progress every this many rows
IMPORT_TYPES = (".csv", ".xlsx")


def get(session: Session, target_id: int) -> Target:
    target = session.get(Target, target_id)
    if target is None:
        raise inspections.TargetNotFound()
    return target


def search(query: str | None = None, **filters: Any) -> sa.Select[tuple[Target]]:
    statement = sa.select(Target).order_by(Target.id)
    if query:
        like = f"%{query}%"
        statement = statement.where(sa.or_(Target.name.like(like), Target.uscc.like(f"{query.upper()}%")))
    for key, value in filters.items():
        if value is not None:
            statement = statement.where(getattr(Target, key) == value)
    return statement


def to_wgs84(data: dict[str, Any]) -> dict[str, Any]:
    """Phones and Chinese map SDKs give GCJ-02; we store WGS-84 (server.core.geo)."""
    data = dict(data)
    system = data.pop("coord_system", "wgs84") or "wgs84"
    if system == "gcj02" and (data.get("lat") is None) != (data.get("lon") is None):
        # one GCJ-02 coordinate cannot be converted alone: the offset depends on both
        missing = "lon" if data.get("lon") is None else "lat"
        raise errors.ValidationFailed(fields={missing: ["GCJ-02 坐标须同时给出经纬度 / gcj02 needs both lat and lon"]})
    if system == "gcj02" and data.get("lat") is not None:
        lat, lon = gcj02_to_wgs84(data["lat"], data["lon"])
        data["lat"], data["lon"] = round(lat, 7), round(lon, 7)
    return data


def check(data: dict[str, Any], regions: set[str]) -> dict[str, list[str]]:
    """Domain checks shared by create, update and import; returns field -> [error code]."""
    problems: dict[str, list[str]] = {}
    if "uscc" in data and not uscc_rules.is_valid(data["uscc"]):
        problems["uscc"] = [UsccInvalid.code]
    if "region_code" in data and data["region_code"] not in regions:
        problems["region_code"] = [RegionUnknown.code]
    if data.get("positive_list") and not data.get("positive_list_since"):
        problems["positive_list_since"] = [PositiveListUndated.code]
    if data.get("risk_class") is not None:
        floor, labels = _criteria_class(data)
        order = risk.default_criteria()["order"]  # strictest first
        if order.index(RiskClass(data["risk_class"]).value) > order.index(floor.value):
            problems["risk_class"] = [RiskBelowCriteria.code, f"{floor.value}: {'; '.join(labels)}"]
    return problems


def _criteria_class(data: dict[str, Any]) -> tuple[RiskClass, list[str]]:
    """The class the entry criteria give from the facts the directory holds (rule 4)."""
    permit = data.get("permit_class")
    return risk.classify({"permit_class": getattr(permit, "value", permit), "credit_rating": data.get("credit_rating")})


def _with_basis(data: dict[str, Any]) -> dict[str, Any]:
    """A target placed in the class its criteria give, with no basis stated, gets the criteria met."""
    if data.get("risk_class") is not None and not data.get("risk_basis"):
        floor, labels = _criteria_class(data)
        if RiskClass(data["risk_class"]) is floor:
            data = {**data, "risk_basis": "; ".join(labels)[:400]}
    return data


def _regions(session: Session) -> set[str]:
    return set(session.scalars(sa.select(Region.code)))


def _raise_first(problems: dict[str, list[str]]) -> None:
    for cls in (UsccInvalid, RegionUnknown, PositiveListUndated, RiskBelowCriteria):
        for field, codes in problems.items():
            if cls.code in codes:
                raise cls(fields={field: codes})


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return getattr(value, "value", value)


def create(session: Session, data: dict[str, Any]) -> Target:
    data = to_wgs84(data)
    data["uscc"] = data["uscc"].strip().upper()
    _raise_first(check(data, _regions(session)))
    if session.scalar(sa.select(Target.id).where(Target.uscc == data["uscc"])) is not None:
        raise DuplicateTarget(fields={"uscc": [data["uscc"]]})
    data = _with_basis(data)
    target = Target(**data)
    session.add(target)
    session.flush()
    audit.record(session, "directory:target:created", subjects={"target": target.id},
                 payload={key: _plain(value) for key, value in data.items()})
    return target


def update(session: Session, target: Target, version: int, changes: dict[str, Any]) -> Target:
    """Optimistic concurrency: the caller names the version it edited."""
    if version != target.version:
        raise VersionConflict(current=target.version, given=version)
    changes = to_wgs84(changes)
    merged = {"positive_list": target.positive_list, "positive_list_since": target.positive_list_since,
              "risk_class": target.risk_class, "permit_class": target.permit_class,
              "credit_rating": target.credit_rating, **changes}
    _raise_first(check(merged, _regions(session) if "region_code" in changes else set()))
    if target.positive_list and changes.get("positive_list") is False:
        if not (changes.get("positive_list_removal_reason") or "").strip():
            raise PositiveListRemovalUnreasoned(fields={"positive_list_removal_reason": ["required"]})
        changes.setdefault("positive_list_removed_on", local_today())
    before = {key: _plain(getattr(target, key)) for key in changes}
    for key, value in changes.items():
        setattr(target, key, value)
    try:
        session.flush()
    except sa.orm.exc.StaleDataError:
        raise VersionConflict(given=version) from None
    audit.record(session, "directory:target:updated", subjects={"target": target.id},
                 payload={"before": before, "after": {key: _plain(value) for key, value in changes.items()},
                          "version": target.version})
    return target


def history(session: Session, principal: Principal, target: Target) -> list[Inspection]:
    """Inspections of the target that the caller may see: drawn ones stay secret (rule 6)."""
    query = inspections.visible(session, principal).where(Inspection.target_id == target.id)
    return list(session.scalars(query))


# ---- import ------------------------------------------------------------------------------------

def read_rows(filename: str, content: bytes) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8, with or without BOM) or XLSX file, keyed by field name."""
    name = filename.lower()
    try:
        if name.endswith(".xlsx"):
            raw = _xlsx_rows(content)
        elif name.endswith(".csv"):
            raw = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
        else:
            raise ImportMalformed(f"unsupported file type: {filename}")
    except ImportMalformed:
        raise
    except Exception as exc:  # corrupt zip, bad encoding, broken CSV: the file, not the server
        raise ImportMalformed(f"{type(exc).__name__}: {exc}") from None
    if not raw:
        raise ImportMalformed("the file is empty")
    header = [HEADERS.get(str(cell).strip(), str(cell).strip()) if cell is not None else "" for cell in raw[0]]
    missing = {"uscc", "name", "region_code", "address", "risk_class"} - set(header)
    if missing:
        raise ImportMalformed(f"missing columns: {', '.join(sorted(missing))}", fields={"header": sorted(missing)})
    if len(raw) - 1 > MAX_IMPORT_ROWS:
        raise ImportMalformed(f"more than {MAX_IMPORT_ROWS} rows")
    rows = []
    for cells in raw[1:]:
        row = {key: cell for key, cell in zip(header, cells) if key and cell not in (None, "")}
        rows.append({key: (value.strip() if isinstance(value, str) else value) for key, value in row.items()})
    return rows


def _xlsx_rows(content: bytes) -> list[list[Any]]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    while rows and all(cell in (None, "") for cell in rows[-1]):
        rows.pop()
    return [[cell.date() if isinstance(cell, dt.datetime) else cell for cell in row] for row in rows]


def import_targets(session: Session, *, filename: str, content: bytes, schema: ma.Schema,
                   accept_valid: bool = False, progress: Callable[[int, int], None] | None = None,
                   job: DirectoryImport | None = None) -> dict[str, Any]:
    """Validate every row, report every error, and create the targets only if all rows are valid
    (or ``accept_valid`` is set, in which case the valid rows are taken and the rest reported).
    ``progress(done, total)`` is called every PROGRESS_ROWS rows while the rows are checked (reads
    only, so its caller may commit); ``job`` is the import task this runs for."""
    rows = read_rows(filename, content)
    regions = _regions(session)
    existing = set(session.scalars(sa.select(Target.uscc)))
    seen: dict[str, int] = {}
    valid: list[dict[str, Any]] = []
    report: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=2):  # spreadsheet row numbers; row 1 is the header
        if progress is not None and (number - 2) % PROGRESS_ROWS == 0:
            progress(number - 2, len(rows))
        row = {key: str(value) if isinstance(value, (int, float)) and key in ("uscc", "region_code") else value
               for key, value in row.items()}
        try:
            data = schema.load(row, unknown=ma.EXCLUDE)
        except ma.ValidationError as exc:
            report.append({"row": number, "uscc": row.get("uscc"), "errors": exc.normalized_messages()})
            continue
        try:
            data = to_wgs84(data)
        except errors.ValidationFailed as exc:
            report.append({"row": number, "uscc": row.get("uscc"), "errors": exc.fields})
            continue
        data["uscc"] = data["uscc"].upper()
        problems = check(data, regions)
        if data["uscc"] in existing:
            problems.setdefault("uscc", []).append(DuplicateTarget.code)
        elif data["uscc"] in seen:
            problems.setdefault("uscc", []).append(f"{DuplicateTarget.code} (row {seen[data['uscc']]})")
        seen.setdefault(data["uscc"], number)
        if problems:
            report.append({"row": number, "uscc": data["uscc"], "errors": problems})
        else:
            valid.append(_with_basis(data))
    if progress is not None:
        progress(len(rows), len(rows))
    summary = {"filename": filename, "sha256": hashlib.sha256(content).hexdigest(), "total": len(rows),
               "valid": len(valid), "invalid": len(report), "errors": report, "applied": False, "created": 0}
    if report and not accept_valid:
        raise ImportInvalid(f"{len(report)} of {len(rows)} rows have errors", report=summary)
    targets = [Target(**data) for data in valid]
    session.add_all(targets)
    session.flush()
    summary.update(applied=True, created=len(targets))
    subjects = [("target", t.id) for t in targets] + ([("directory_import", job.id)] if job else [])
    audit.record(session, "directory:target:imported", subjects=subjects,
                 actor=audit.Actor("user", str(job.requested_by)) if job else None,
                 payload={key: summary[key] for key in ("filename", "sha256", "total", "valid", "invalid", "created")}
                 | {"accepted_partial": bool(report), "uscc": [t.uscc for t in targets]})
    return summary


# ---- imports as tasks, with progress -------------------------------------------------------------

def request_import(session: Session, *, by_user_id: int, filename: str, content: bytes,
                   accept_valid: bool) -> DirectoryImport:
    """Keep the file (blob storage, by its SHA-256) and queue its import; the caller sends the task
    (``directory.tasks.send_import``) so that it runs after this commits."""
    if not filename.lower().endswith(IMPORT_TYPES):
        raise ImportMalformed(f"unsupported file type: {filename}", fields={"file": [", ".join(IMPORT_TYPES)]})
    if not content:
        raise ImportMalformed("the file is empty", fields={"file": ["empty"]})
    digest = put_bytes(content)
    job = DirectoryImport(filename=filename[-255:], sha256=digest, size=len(content), accept_valid=accept_valid,
                          requested_by=by_user_id)
    session.add(job)
    session.flush()
    audit.record(session, "directory:import:requested", subjects={"directory_import": job.id},
                 payload={"filename": job.filename, "sha256": digest, "size": job.size, "accept_valid": accept_valid})
    return job


def get_import(session: Session, import_id: str) -> DirectoryImport:
    job = session.get(DirectoryImport, import_id)
    if job is None:
        raise ImportNotFound(directory_import=import_id)
    return job


def imports_requested_by(user_id: int) -> sa.Select[tuple[DirectoryImport]]:
    """A user's imports, newest first."""
    return (sa.select(DirectoryImport).where(DirectoryImport.requested_by == user_id)
            .order_by(DirectoryImport.created_at.desc(), DirectoryImport.id))


def run_import(session: Session, import_id: str, *, schema: ma.Schema, commit: Callable[[], None],
               progress_every_s: float = 1.0) -> DirectoryImport:
    """The import task's work. ``commit`` is the boundary's commit: called when the import starts,
    for progress (at most every ``progress_every_s``), and once at the end, where the targets, the
    report and the audit entry commit together. Idempotent: a finished import is returned as it is."""
    job = get_import(session, import_id)
    if job.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return job
    job.status, job.started_at, job.done_rows = ImportStatus.RUNNING, utcnow(), 0
    commit()
    with get_store().open(job.sha256) as blob:
        content = blob.read()
    last = [float("-inf")]

    def progress(done: int, total: int) -> None:
        if done == total or time.monotonic() - last[0] >= progress_every_s:
            last[0] = time.monotonic()
            session.execute(sa.update(DirectoryImport).where(DirectoryImport.id == import_id)
                            .values(done_rows=done, total_rows=total))
            commit()

    try:
        summary = import_targets(session, filename=job.filename, content=content, schema=schema,
                                 accept_valid=job.accept_valid, progress=progress, job=job)
    except ImportInvalid as exc:
        session.rollback()
        return _finish(session, import_id, ImportStatus.REJECTED, report=exc.context["report"])
    except errors.DomainError as exc:
        session.rollback()
        return _finish(session, import_id, ImportStatus.FAILED, error=exc.as_dict())
    except sa.exc.IntegrityError:  # a target of the file was added by someone else meanwhile
        session.rollback()
        return _finish(session, import_id, ImportStatus.FAILED,
                       error=DuplicateTarget("a target in the file was added while it was imported").as_dict())
    return _finish(session, import_id, ImportStatus.APPLIED, report=summary)


def fail_import(session: Session, import_id: str, error: errors.DomainError) -> DirectoryImport:
    """The task broke (a bug, the storage or database went away): the import is shown as failed."""
    return _finish(session, import_id, ImportStatus.FAILED, error=error.as_dict())


def _finish(session: Session, import_id: str, status: ImportStatus, *, report: dict[str, Any] | None = None,
            error: dict[str, Any] | None = None) -> DirectoryImport:
    job = get_import(session, import_id)
    job.status, job.report, job.error, job.finished_at = status, report, error, utcnow()
    if report is not None:
        job.total_rows = job.done_rows = report["total"]
    session.flush()
    if status is not ImportStatus.APPLIED:  # an applied import is in its directory:target:imported entry
        audit.record(session, f"directory:import:{status.value}", subjects={"directory_import": job.id},
                     actor=audit.Actor("user", str(job.requested_by)),
                     payload={"sha256": job.sha256, "total": job.total_rows,
                              "invalid": report["invalid"] if report else None,
                              "error": error["code"] if error else None})
    return job
