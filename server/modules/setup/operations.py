"""``enforce setup --org FILE``: a bureau's regions, agencies, units and first administrator from a
YAML file, idempotently. A second run with the same file changes nothing; an edited file adds what
is new and updates the English name, kind or region of what exists (names in Chinese are the keys).
Operations flush; the command commits."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors, passwords
from server.core.access import Role
from server.modules.audit import operations as audit
from server.modules.users import operations as users
from server.modules.users.models import Agency, AgencyKind, Region, Unit, UnitKind, User

OrgFileInvalid = errors.error_code("setup.org_file_invalid", 422, "机构配置文件有误", "The organisation file is invalid")


@dataclass
class SetupResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    admin: str = ""
    one_time_password: str | None = None  # only when the administrator was created by this run


def read(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise OrgFileInvalid(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise OrgFileInvalid(f"{path}: expected a mapping with regions, agencies and admin")
    return data


def _need(item: dict[str, Any], key: str, where: str) -> Any:
    value = item.get(key) if isinstance(item, dict) else None
    if value in (None, ""):
        raise OrgFileInvalid(fields={where: [f"缺少 / missing {key}"]})
    return value


def _enum(kind_cls: type, value: str, where: str) -> Any:
    try:
        return kind_cls(value)
    except ValueError:
        raise OrgFileInvalid(fields={where: [f"kind: {value!r} ∉ {[k.value for k in kind_cls]}"]}) from None


def apply(session: Session, data: dict[str, Any]) -> SetupResult:
    result = SetupResult()
    _validate(data)
    for i, item in enumerate(data.get("regions") or []):
        _region(session, item, f"regions[{i}]", result)
    session.flush()
    known_regions = set(session.scalars(sa.select(Region.code)))
    for i, item in enumerate(data["agencies"]):
        where = f"agencies[{i}]"
        agency = _upsert(session, Agency, item, where, result, {
            "kind": _enum(AgencyKind, _need(item, "kind", where), where),
            "name_en": _need(item, "name_en", where),
            "region_code": _region_code(item, where, known_regions)})
        for j, unit_item in enumerate(item.get("units") or []):
            uwhere = f"{where}.units[{j}]"
            _upsert(session, Unit, unit_item, uwhere, result, {
                "agency_id": agency.id,
                "kind": _enum(UnitKind, _need(unit_item, "kind", uwhere), uwhere),
                "name_en": _need(unit_item, "name_en", uwhere),
                "region_code": _region_code(unit_item, uwhere, known_regions)})
    _admin(session, data["admin"], result)
    return result


def _validate(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - {"regions", "agencies", "admin"})
    if unknown:
        raise OrgFileInvalid(fields={key: ["未知项 / unknown key"] for key in unknown})
    if not isinstance(data.get("agencies"), list) or not data["agencies"]:
        raise OrgFileInvalid(fields={"agencies": ["至少一个机构 / at least one agency"]})
    _need(data.get("admin") or {}, "username", "admin")
    _need(data.get("admin") or {}, "unit", "admin")
    names = [u.get("name_zh") for a in data["agencies"] for u in (a.get("units") or []) if isinstance(u, dict)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise OrgFileInvalid(fields={"units": [f"重名 / named twice: {', '.join(twice)}"]})


def _region_code(item: dict[str, Any], where: str, known: set[str]) -> str:
    code = str(_need(item, "region", where))
    if code not in known:
        raise OrgFileInvalid(fields={where: [f"未知的行政区划代码 / unknown region {code}; add it under regions"]})
    return code


def _region(session: Session, item: dict[str, Any], where: str, result: SetupResult) -> None:
    code = str(_need(item, "code", where))
    if len(code) != 6 or not code.isdigit():
        raise OrgFileInvalid(fields={where: [f"GB/T 2260 六位代码 / six digits: {code!r}"]})
    region = session.get(Region, code)
    wanted = {"name_zh": _need(item, "name_zh", where), "name_en": _need(item, "name_en", where),
              "parent_code": str(item["parent"]) if item.get("parent") else None}
    if region is None:
        session.add(Region(code=code, **wanted))
        session.flush()
        audit.record(session, "admin:region:created", subjects={"region": code}, payload=wanted)
        result.created.append(f"region {code} {wanted['name_zh']}")
        return
    _update(session, region, wanted, "region", code, result)


def _upsert(session: Session, model: type, item: dict[str, Any], where: str, result: SetupResult,
            wanted: dict[str, Any]) -> Any:
    name_zh = _need(item, "name_zh", where)
    kind = model.__tablename__
    row = session.scalar(sa.select(model).where(model.name_zh == name_zh))
    if row is None:
        row = model(name_zh=name_zh, **wanted)
        session.add(row)
        session.flush()
        audit.record(session, f"admin:{kind}:created", subjects={kind: row.id},
                     payload={"name_zh": name_zh, **{k: _plain(v) for k, v in wanted.items()}})
        result.created.append(f"{kind} {name_zh}")
        return row
    _update(session, row, wanted, kind, row.id, result)
    return row


def _update(session: Session, row: Any, wanted: dict[str, Any], kind: str, key: Any, result: SetupResult) -> None:
    before = {k: _plain(getattr(row, k)) for k, v in wanted.items() if getattr(row, k) != v}
    if not before:
        return
    for k in before:
        setattr(row, k, wanted[k])
    session.flush()
    audit.record(session, f"admin:{kind}:updated", subjects={kind: key},
                 payload={"before": before, "after": {k: _plain(wanted[k]) for k in before}})
    result.updated.append(f"{kind} {getattr(row, 'name_zh', key)}: {', '.join(before)}")


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _admin(session: Session, item: dict[str, Any], result: SetupResult) -> None:
    username = str(item["username"])
    result.admin = username
    if users.user_by_name(session, username) is not None:
        return  # never reset an existing account's password from a file
    unit = session.scalar(sa.select(Unit).where(Unit.name_zh == item["unit"]))
    if unit is None:
        raise OrgFileInvalid(fields={"admin.unit": [f"不在文件的单位中 / not one of the file's units: {item['unit']}"]})
    password = passwords.generate(username)
    user = users.create_user(session, username=username, display_name=str(item.get("display_name") or username),
                             role=Role.ADMIN, unit_id=unit.id, password=password, phone=item.get("phone"))
    user.must_change_password = True
    session.flush()
    result.created.append(f"user {username} (admin)")
    result.one_time_password = password


def admins(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count(User.id)).where(User.role == Role.ADMIN)) or 0
