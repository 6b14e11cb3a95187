"""flask-smorest pagination over SQLAlchemy 2 ``select()`` statements (X-Pagination header)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_smorest import Page


class SelectPage(Page):
    @property
    def items(self) -> list[Any]:
        from server.extensions import db

        params = self.page_params
        statement = self.collection.limit(params.page_size).offset(params.first_item)
        return list(db.session.scalars(statement))

    @property
    def item_count(self) -> int:
        from server.extensions import db

        counted = sa.select(sa.func.count()).select_from(self.collection.order_by(None).subquery())
        return db.session.scalar(counted) or 0
