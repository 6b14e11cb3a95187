"""The working-day calendar as a service: every deadline in the system is computed by it."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from server.core.calendar import DayKind, get_calendar
from server.modules.system import rules

blp = Blueprint("system", __name__, description="工作日历与待确认规则 / Working-day calendar and rules to confirm")


class DeadlineQuery(ma.Schema):
    start = ma.fields.Date(required=True, metadata={"description": "the day the period starts (not counted)"})
    days = ma.fields.Integer(required=True, validate=validate.Range(min=0, max=3660))
    kind = ma.fields.Enum(DayKind, by_value=True, load_default=DayKind.WORKING)


class DeadlineSchema(ma.Schema):
    start = ma.fields.Date()
    days = ma.fields.Integer()
    kind = ma.fields.Enum(DayKind, by_value=True)
    due = ma.fields.Date()
    provisional = ma.fields.Boolean(metadata={"description": "counted with the provisional rule: a year lacked "
                                                             "its official holiday schedule"})
    provisional_years = ma.fields.List(ma.fields.Integer(), metadata={"description": "the years assumed"})


@blp.route("/calendar/deadline")
class Deadline(MethodView):
    @blp.arguments(DeadlineQuery, location="query")
    @blp.response(200, DeadlineSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """N 个工作日或自然日之后的期限 / The due date N working or natural days after a date"""
        calendar = get_calendar()
        due = calendar.add(args["start"], args["days"], args["kind"])
        return {**args, "due": due, "provisional": bool(calendar.assumed), "provisional_years": sorted(calendar.assumed)}


class UnconfirmedRuleSchema(ma.Schema):
    area = ma.fields.String(metadata={"description": "deadlines | procedure | legal_review_scope"})
    key = ma.fields.String(metadata={"description": "where the entry lives in its data file"})
    name_zh = ma.fields.String()
    source = ma.fields.String(metadata={"description": "the source it rests on, as far as known"})
    question = ma.fields.String(metadata={"description": "what to confirm with the bureau"})


@blp.route("/system/unconfirmed-rules")
class UnconfirmedRules(MethodView):
    @blp.response(200, UnconfirmedRuleSchema(many=True))
    def get(self) -> Any:
        """待确认的规则配置（依据未核实或须本局确认）/ Rules whose source or figure is still to be confirmed"""
        return rules.unconfirmed()
