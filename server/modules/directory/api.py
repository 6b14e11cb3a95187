"""Staff API of the target directory (名录库)."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.directory import operations as ops
from server.modules.directory import schemas

blp = Blueprint("directory", __name__, description="检查对象名录库 / Target directory")


class _WithHistory:
    """A target with the inspections the caller may see, for the detail schema."""

    def __init__(self, target: Any, inspections: list[Any]) -> None:
        self._target, self.inspections = target, inspections

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


@blp.route("/targets")
class Targets(MethodView):
    @blp.arguments(schemas.TargetQuerySchema, location="query")
    @blp.response(200, schemas.TargetSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """检索检查对象 / Search the directory"""
        return ops.search(args.pop("q", None), **args)

    @blp.arguments(schemas.TargetInputSchema)
    @blp.response(201, schemas.TargetSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """新增检查对象 / Add a target"""
        target = ops.create(db.session, data)
        db.session.commit()
        return target


@blp.route("/targets/<int:target_id>")
class TargetDetail(MethodView):
    @blp.response(200, schemas.TargetDetailSchema)
    def get(self, target_id: int) -> Any:
        """检查对象详情及检查记录 / One target and its inspection history"""
        target = ops.get(db.session, target_id)
        return _WithHistory(target, ops.history(db.session, current_principal(), target))

    @blp.arguments(schemas.TargetUpdateSchema(partial=True))
    @blp.response(200, schemas.TargetSchema)
    def patch(self, data: dict[str, Any], target_id: int) -> Any:
        """修改检查对象（须带版本号）/ Change a target (optimistic version)"""
        version = data.pop("version", None)
        if version is None:
            raise ops.errors.ValidationFailed(fields={"version": ["required"]})
        target = ops.update(db.session, ops.get(db.session, target_id), version, data)
        db.session.commit()
        return target


@blp.route("/targets/import")
class TargetImport(MethodView):
    @blp.arguments(schemas.TargetImportFormSchema, location="form")
    @blp.arguments(schemas.TargetImportFileSchema, location="files")
    @blp.response(201, schemas.TargetImportReportSchema)
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> Any:
        """导入 CSV/XLSX（逐行报告错误）/ Import CSV or XLSX with a row-by-row error report"""
        upload = files["file"]
        report = ops.import_targets(db.session, filename=upload.filename or "", content=upload.read(),
                                    schema=schemas.TargetInputSchema(), accept_valid=form["accept_valid"])
        db.session.commit()
        return report
