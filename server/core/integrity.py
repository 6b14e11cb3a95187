"""Integrity errors from the database, translated into the error contract.

An operation that stores a reference the client gave (``source_inspection_id``, ``target_id``…)
without looking it up first fails in the database with a foreign-key violation. Rather than a
lookup in every operation, the engine remembers which table and values a failed INSERT or UPDATE
carried, and the request boundary asks the database which of the referenced rows do not exist:
the client gets a 422 naming the field, on PostgreSQL and SQLite alike (SQLite's message names no
column at all).
"""
from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.orm import Session

log = logging.getLogger("server")

DOES_NOT_EXIST = "不存在 / does not exist"

# SQLSTATE class 23 (integrity constraint violation) and SQLite's messages for the same.
FOREIGN_KEY, UNIQUE, CHECK, NOT_NULL = "foreign_key", "unique", "check", "not_null"
_PG_STATES = {"23503": FOREIGN_KEY, "23505": UNIQUE, "23514": CHECK, "23502": NOT_NULL}
_SQLITE_PREFIXES = {"FOREIGN KEY": FOREIGN_KEY, "UNIQUE": UNIQUE, "CHECK": CHECK, "NOT NULL": NOT_NULL}


def kind(exc: sqlalchemy.exc.IntegrityError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    if state:
        return _PG_STATES.get(state)
    message = str(exc.orig)
    return next((k for prefix, k in _SQLITE_PREFIXES.items() if message.startswith(prefix)), None)


@event.listens_for(Engine, "handle_error")
def _remember_written_values(context: ExceptionContext) -> None:
    """Keep the failed statement's table and values on the exception (not its SQL text:
    the compiled parameters are keyed by column on both drivers)."""
    if not isinstance(context.sqlalchemy_exception, sqlalchemy.exc.IntegrityError):
        return
    execution = context.execution_context
    compiled = getattr(execution, "compiled", None)
    statement = getattr(compiled, "statement", None)
    if not isinstance(statement, (sa.Insert, sa.Update)) or not isinstance(statement.table, sa.Table):
        return
    rows = list(getattr(execution, "compiled_parameters", None) or [])
    context.sqlalchemy_exception.written = (statement.table, rows)  # type: ignore[attr-defined]


def missing_references(session: Session, exc: sqlalchemy.exc.IntegrityError) -> dict[str, list[str]] | None:
    """For a foreign-key violation on INSERT or UPDATE: the columns whose referenced row does not
    exist, as validation ``fields``. Call it after the failed transaction was rolled back."""
    written = getattr(exc, "written", None)
    if kind(exc) != FOREIGN_KEY or written is None:
        return None
    table, rows = written
    fields: dict[str, list[str]] = {}
    try:
        for constraint in table.foreign_key_constraints:
            local = [element.parent for element in constraint.elements]
            remote = [element.column for element in constraint.elements]
            for row in rows:
                values = [row.get(column.key) for column in local]
                if any(value is None for value in values):
                    continue
                found = session.execute(sa.select(sa.literal(1)).select_from(remote[0].table).where(
                    *(column == value for column, value in zip(remote, values))).limit(1)).first()
                if found is None:
                    for column in local:
                        fields[column.key] = [DOES_NOT_EXIST]
                    break
    except sqlalchemy.exc.SQLAlchemyError:
        log.warning("could not tell which reference is missing", exc_info=True)
        session.rollback()
        return None
    return fields or None
