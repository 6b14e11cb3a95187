"""Staff API of the target directory (名录库)."""
from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core.access import current_principal
from server.core.pagination import SelectPage
from server.extensions import db
from server.modules.directory import operations as ops
from server.modules.directory import schemas, tasks

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
        """导入 CSV/XLSX（在请求内完成，逐行报告错误；大文件请用 /target-imports）/ Import CSV or XLSX within the request, with a row-by-row error report; large files: use /target-imports"""
        upload = files["file"]
        report = ops.import_targets(db.session, filename=upload.filename or "", content=upload.read(),
                                    schema=schemas.TargetInputSchema(), accept_valid=form["accept_valid"])
        db.session.commit()
        return report


@blp.route("/target-imports")
class TargetImports(MethodView):
    @blp.response(200, schemas.DirectoryImportSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self) -> Any:
        """本人最近的导入任务（新的在前）/ Your recent directory imports, newest first"""
        return ops.imports_requested_by(current_principal().user_id)

    @blp.arguments(schemas.TargetImportFormSchema, location="form")
    @blp.arguments(schemas.TargetImportFileSchema, location="files")
    @blp.response(202, schemas.DirectoryImportSchema,
                  headers={"Location": {"description": "GET it for the progress and, once done, the report",
                                        "schema": {"type": "string"}}})
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> Any:
        """后台导入 CSV/XLSX（返回 202 与任务地址，轮询其进度与逐行错误报告）/ Import CSV or XLSX in the background: 202 with the import's Location; poll it for progress and the row error report"""
        upload = files["file"]
        job = ops.request_import(db.session, by_user_id=current_principal().user_id, filename=upload.filename or "",
                                 content=upload.read(), accept_valid=form["accept_valid"])
        tasks.send_import(db.session, job.id)  # runs once this commits
        db.session.commit()
        return job, 202, {"Location": url_for("directory.TargetImportDetail", import_id=job.id)}


@blp.route("/target-imports/<import_id>")
class TargetImportDetail(MethodView):
    @blp.response(200, schemas.DirectoryImportSchema)
    def get(self, import_id: str) -> Any:
        """导入任务的状态、进度与逐行错误报告 / An import's status, progress and, once done, its row error report"""
        return ops.get_import(db.session, import_id)
