"""Declarative base, column types and mixins shared by every domain's models."""
from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Any

import sqlalchemy as sa
from blinker import signal
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

# Stable constraint names so Alembic autogenerate and the drift check agree on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


def value_enum(cls: type[enum.Enum], length: int = 20) -> sa.Enum:
    """A Python enum stored as its values in a VARCHAR: portable, readable in SQL, no native type."""
    return sa.Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on PostgreSQL and SQLite alike (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            dt.datetime: UTCDateTime(),
            dict[str, Any]: sa.JSON(),
            list[Any]: sa.JSON(),
        },
    )


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, comment="row creation time (UTC)")
    updated_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, comment="last change time (UTC)"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    if isinstance(value, (dt.date, uuid.UUID)):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in a JSON row")


def among(column: Any, values: Any) -> Any:
    """``column IN (values)`` for ids the server produced (never user text), written into the SQL
    text at execution: with thousands of ids, one bind parameter each costs the driver more than
    the database spends on the query (4× on PostgreSQL for 10,000 ids)."""
    return column.in_(sa.bindparam(None, list(values), expanding=True, literal_execute=True, unique=True))


def plain_rows(session: Any, statement: Any) -> list[tuple[Any, ...]]:
    """A Core SELECT's rows as the driver's tuples, for reads of hundreds of thousands of rows: on
    PostgreSQL it runs on the driver's cursor (SQLAlchemy's row handling was 0.35 of 0.55 s for
    200,000 rows). Nothing is converted: select plain columns (enums cast to text) and pass
    parameters that need no SQLAlchemy type processing."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in connection.execute(statement)]
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    with connection.connection.driver_connection.cursor() as cursor:
        return cursor.execute(compiled.string, compiled.params).fetchall()


# Sent by insert_rows (sender: the table; session=, rows=): set-based writes skip the ORM's flush
# events, so a module that follows another's rows (the devices' change log) listens here instead.
rows_inserted = signal("enforce.rows-inserted")


def insert_rows(session: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys). On PostgreSQL: one statement with the rows as one
    JSON document unpacked by ``json_to_recordset`` (one json.dumps, one statement to plan)
    instead of one pipelined INSERT per row. Elsewhere, or when a column left out has a Python-side
    default to fill in, Core executemany."""
    if not rows:
        return
    connection = session.connection()
    names = list(rows[0])
    rows_inserted.send(table, session=session, rows=rows)
    if connection.dialect.name != "postgresql" or any(
            column.default is not None and column.name not in rows[0] for column in table.c):
        session.execute(table.insert(), rows)
        return
    dialect = connection.dialect
    spec = ", ".join(f'"{name}" {table.c[name].type.compile(dialect=dialect)}' for name in names)
    quoted = ", ".join(f'"{name}"' for name in names)
    statement = (f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} '
                 f"FROM json_to_recordset(CAST(%(rows)s AS json)) AS r({spec})")
    payload = json.dumps(rows, ensure_ascii=False, default=_json_default, allow_nan=False)
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(statement, {"rows": payload})


def drop_rolled_back(pending: list[Any], rolled_back: Any) -> None:
    """Remove the queued items (each with an ``owner`` transaction) made inside ``rolled_back``,
    a savepoint that was just rolled back: what it wrote is gone, so must be what it queued."""

    def inside(transaction: Any) -> bool:
        while transaction is not None:
            if transaction is rolled_back:
                return True
            transaction = transaction.parent
        return False

    pending[:] = [item for item in pending if not inside(item.owner)]
