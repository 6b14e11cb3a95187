"""Offline sync for devices (/mobile/v1/sync/…): handshake, offline package, pull, push.

Bodies may be gzip- or zstd-compressed both ways; see ``sync/PROTOCOL.md``.
"""
from __future__ import annotations

import io
import json
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import errors, metrics
from server.core.access import current_principal
from server.core.calendar import local_today
from server.core.db import utcnow
from server.extensions import db
from server.modules.devices import operations as devices
from server.modules.evidence import operations as evidence
from server.modules.sync import operations as ops
from server.modules.sync import schemas
from sync import codec

blp = Blueprint("mobile_sync", __name__, description="离线同步 / Offline sync")


@blp.before_request
def _inflate() -> None:
    """Replace a compressed body by its decompressed bytes before anything parses it."""
    encoding = request.headers.get("Content-Encoding", "")
    if not encoding or encoding.lower() == "identity":
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        body = codec.decompress(request.get_data(cache=False), encoding, limit)
    except codec.UnknownEncoding:
        raise ops.UnsupportedEncoding(encoding=encoding) from None
    except codec.BodyTooLarge:
        raise errors.TooLarge(f"decompressed body exceeds {limit} bytes", limit=limit) from None
    except ValueError as exc:
        raise errors.BadRequest(str(exc)) from None
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["CONTENT_LENGTH"] = str(len(body))
    request.environ.pop("HTTP_CONTENT_ENCODING", None)
    for cached in ("stream", "_cached_data"):
        request.__dict__.pop(cached, None)


@blp.after_request
def _deflate(response: Response) -> Response:
    encoding = codec.choose(request.headers.get("Accept-Encoding", ""))
    if (encoding is None or response.direct_passthrough or "Content-Encoding" in response.headers
            or response.content_length is None or response.content_length < codec.MIN_COMPRESS):
        return response
    response.set_data(codec.compress(response.get_data(), encoding))
    response.headers["Content-Encoding"] = encoding
    response.vary.add("Accept-Encoding")
    return response


def _json(text: str | bytes, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="application/json")


def _device() -> Any:
    """The calling device, its contact noted (the upload clock of DOMAIN-RULES rule 16 starts at the
    first request after a silence; within a minute of the last one this writes nothing)."""
    device = devices.get_device(db.session, current_principal().device_id)
    evidence.note_contact(db.session, device)
    return device


@blp.route("/sync/hello")
class Hello(MethodView):
    @blp.arguments(schemas.HelloSchema)
    @blp.response(200, schemas.HelloResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """同步握手：估计设备时钟偏差并上报状态 / Handshake: clock offset (NTP-style) and device report"""
        received = utcnow()
        result = ops.handshake(db.session, _device(), client_time=data["client_time"], received_at=received,
                               previous=data.get("previous"), report=data.get("report"))
        db.session.commit()
        return result


@blp.route("/sync/package")
class Package(MethodView):
    @blp.arguments(schemas.PackageQuerySchema, location="query")
    @blp.response(200, schemas.PackageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """离线包：任务、检查对象档案、模板、检查组执法证、预分配文书编号 / The offline package"""
        result = ops.package(db.session, _device(), today=local_today(), inspection_id=args["inspection_id"])
        db.session.commit()
        return _json(json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str))


@blp.route("/sync/changes")
class Changes(MethodView):
    @blp.arguments(schemas.PullQuerySchema, location="query")
    @blp.response(200, schemas.PullResultSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """拉取游标之后的变更（按任务范围，分页）/ Changes after the cursor, scoped and paged"""
        bodies, cursor, more = ops.pull(db.session, _device(), args["cursor"], args["limit"])
        db.session.commit()
        # The change bodies are stored as JSON text: spliced, not decoded and encoded again.
        text = '{"changes":[' + ",".join(bodies) + f'],"cursor":"{cursor}","more":{str(more).lower()}}}'
        metrics.sync_pulled(len(bodies), len(text))
        return _json(text)


@blp.route("/sync/push")
class Push(MethodView):
    @blp.arguments(schemas.PushSchema)
    @blp.response(200, schemas.PushResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """上传一批离线操作（恰好一次，逐项结果）/ Push a batch of offline operations, exactly once"""
        principal = current_principal()
        if data.get("device_id") not in (None, principal.device_id):
            raise ops.DeviceMismatch(device_id=data["device_id"])
        result = ops.push(db.session, _device(), data["ops"], report=data.get("report"))
        db.session.commit()
        metrics.sync_pushed(result["results"], request.content_length or 0)
        return _json(json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str))
