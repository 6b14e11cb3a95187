"""Discretion benchmarks: list versions, load a new one (admin), preview a calculation."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.calendar import local_today
from server.extensions import db
from server.modules.discretion import calculator as calc
from server.modules.discretion import operations as ops
from server.modules.discretion import schemas
from server.modules.discretion.models import DiscretionBenchmark

blp = Blueprint("discretion", __name__, description="自由裁量基准 / Discretion benchmarks")


@blp.route("/discretion/benchmarks")
class Benchmarks(MethodView):
    @blp.arguments(schemas.BenchmarkQuerySchema, location="query")
    @blp.response(200, schemas.BenchmarkSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """裁量基准版本列表 / Benchmark versions with their effective dates"""
        query = sa.select(DiscretionBenchmark).order_by(DiscretionBenchmark.violation_code,
                                                        DiscretionBenchmark.effective_from)
        if "violation_code" in args:
            query = query.where(DiscretionBenchmark.violation_code == args["violation_code"])
        return db.session.scalars(query).all()

    @blp.arguments(schemas.BenchmarkLoadSchema)
    @blp.response(201, schemas.BenchmarkSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """载入新版本裁量基准（含生效日期）/ Load a new benchmark version with its effective date"""
        row = ops.load(db.session, data["data"], loaded_by=str(current_principal().user_id))
        db.session.commit()
        return row


@blp.route("/discretion/preview")
class Preview(MethodView):
    @blp.arguments(schemas.PreviewSchema)
    @blp.response(200)
    def post(self, data: dict[str, Any]) -> Any:
        """试算罚款（不记录）/ Preview a fine with the benchmark in force on a date (nothing recorded)"""
        row = ops.in_force(db.session, data["violation_code"], data.get("on") or local_today())
        result = calc.calculate(ops.parsed(row), data["inputs"], corrections=data["corrections"],
                                circumstance=data["circumstance"])
        return result.as_dict()
