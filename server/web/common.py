"""Small helpers shared by the page views: the signed-in user, paging, and operation errors."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable, Sequence

import marshmallow as ma
import sqlalchemy as sa
from flask import render_template, request, url_for

from server.core import errors
from server.extensions import db
from server.modules.users import operations as users
from server.modules.users.models import User

PER_PAGE = 50


def me() -> User:
    return users.current_user(db.session)


def page_number(param: str = "page") -> int:
    try:
        return max(1, int(request.args.get(param, "1")))
    except ValueError:
        return 1


def paged(query: sa.Select[Any], *, scalars: bool = True, per_page: int = PER_PAGE, param: str = "page") -> dict[str, Any]:
    """One page of a query, plus whether there is a next one (no COUNT over large tables)."""
    page = page_number(param)
    limited = query.limit(per_page + 1).offset((page - 1) * per_page)
    rows = list(db.session.scalars(limited) if scalars else db.session.execute(limited))
    return {"rows": rows[:per_page], "page": page, "has_next": len(rows) > per_page, "param": param}


def count(query: sa.Select[Any]) -> int:
    """How many rows a list query has (for a page's totals; its order is dropped)."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())) or 0


def paged_list(items: Sequence[Any], *, per_page: int = PER_PAGE, param: str = "page") -> dict[str, Any]:
    """One page of a list an operation returned (a queue, a roster sorted by urgency)."""
    page = page_number(param)
    start = (page - 1) * per_page
    return {"rows": list(items[start:start + per_page]), "page": page, "has_next": len(items) > start + per_page,
            "param": param}


def page_url(number: int, param: str = "page") -> str:
    """This page's URL with its other query arguments kept and ``param`` set to ``number``."""
    args = request.args.to_dict(flat=False)
    args[param] = [str(number)]
    return url_for(request.endpoint or "portal.home", **(request.view_args or {}), **args)


def run(action: Callable[[], Any]) -> tuple[Any, errors.DomainError | None]:
    """Call an operation and commit once; a domain error rolls back and is returned for the page."""
    try:
        result = action()
        db.session.commit()
        return result, None
    except errors.DomainError as exc:
        db.session.rollback()
        return None, exc


def run_keeping(action: Callable[[], Any]) -> tuple[Any, errors.DomainError | None]:
    """As ``run``, but a refused attempt that the operation recorded (a failed login, a wrong reveal)
    is committed too, as the API does."""
    try:
        result = action()
        db.session.commit()
        return result, None
    except errors.DomainError as exc:
        db.session.commit()
        return None, exc


# marshmallow's messages, with the Chinese put first (same schemas as the API, so same rules).
_MESSAGES_ZH = (
    (re.compile(r"^Missing data for required field"), "必填"),
    (re.compile(r"^Field may not be null"), "必填"),
    (re.compile(r"^Not a valid date"), "日期格式 YYYY-MM-DD"),
    (re.compile(r"^Not a valid (integer|number|decimal)"), "须为数字"),
    (re.compile(r"^Must be one of"), "须为所列选项之一"),
    (re.compile(r"^Must be (greater|less)"), "超出允许范围"),
    (re.compile(r"^(Length|Shorter|Longer)"), "长度不符合要求"),
    (re.compile(r"^String does not match"), "格式不正确"),
    (re.compile(r"^Unknown field"), "未知字段"),
)


def _bilingual(message: str) -> str:
    zh = next((zh for pattern, zh in _MESSAGES_ZH if pattern.search(message)), "输入无效")
    return f"{zh} / {message}"


def load_form(schema: ma.Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Load form fields with the API's own schema; blank fields count as absent. A failure is the
    API's ``request.validation_failed`` with each field's message in Chinese and English."""
    try:
        return schema.load({key: value for key, value in data.items() if value not in ("", None, [])})
    except ma.ValidationError as exc:
        fields: dict[str, list[str]] = {}
        _flatten(exc.normalized_messages(), "", fields)
        raise errors.ValidationFailed(fields=fields) from None


def _flatten(found: Any, name: str, into: dict[str, list[str]]) -> None:
    if isinstance(found, dict):
        for key, inner in found.items():
            _flatten(inner, f"{name}.{key}" if name else str(key), into)
    elif isinstance(found, list):
        into.setdefault(name or "form", []).extend(_bilingual(str(m)) for m in found)
    else:
        into.setdefault(name or "form", []).append(_bilingual(str(found)))


def render_error(template: str, error: errors.DomainError, **context: Any) -> tuple[str, int]:
    status = error.status if 400 <= error.status < 500 else 422
    return render_template(template, error=error, form=request.form, **context), status


def required(*names: str) -> None:
    """Server-side form validation: every named field present and not blank."""
    missing = [n for n in names if not (request.form.get(n) or "").strip()]
    if missing:
        raise errors.ValidationFailed(fields={n: ["必填 / required"] for n in missing})


def form_date(name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(request.form.get(name, ""))
    except ValueError:
        raise errors.ValidationFailed(fields={name: ["日期格式 YYYY-MM-DD / a date, YYYY-MM-DD"]}) from None


def form_int(name: str) -> int:
    try:
        return int(request.form.get(name, ""))
    except ValueError:
        raise errors.ValidationFailed(fields={name: ["须为整数 / a whole number"]}) from None
