"""Small helpers shared by the page views: the signed-in user, paging, and operation errors."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import sqlalchemy as sa
from flask import render_template, request

from server.core import errors
from server.core.access import current_principal
from server.extensions import db
from server.modules.users import operations as users
from server.modules.users.models import User

PER_PAGE = 50


def me() -> User:
    return users.get_user(db.session, current_principal().user_id)


def page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


def paged(query: sa.Select[Any], *, scalars: bool = True, per_page: int = PER_PAGE) -> dict[str, Any]:
    """One page of a query, plus whether there is a next one (no COUNT over large tables)."""
    page = page_number()
    limited = query.limit(per_page + 1).offset((page - 1) * per_page)
    rows = list(db.session.scalars(limited) if scalars else db.session.execute(limited))
    return {"rows": rows[:per_page], "page": page, "has_next": len(rows) > per_page}


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
