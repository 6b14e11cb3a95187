"""Resumable uploads for the apps: tus 1.0 at /mobile/v1/uploads/ (core, creation,
creation-with-upload, checksum, termination, expiration). Headers carry the protocol, so the
views are MethodViews without schemas; errors still follow the error contract.

``X-HTTP-Method-Override`` is honoured on these routes (tus: MUST), by a small WSGI wrapper that
runs before routing."""
from __future__ import annotations

import base64
from typing import Any, Callable, Iterable

from flask import Flask, Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from server.core import errors, metrics
from server.core.access import current_principal
from server.extensions import db
from server.modules.devices import operations as devices
from server.modules.evidence import operations as evidence
from server.modules.evidence import uploads as ops
from server.modules.evidence.receive import READ_SIZE, BodyReader, receive

blp = Blueprint("mobile_uploads", __name__, description="证据文件断点续传（tus 1.0）/ Resumable evidence uploads (tus 1.0)")

OFFSET_STREAM = "application/offset+octet-stream"
PREFIX = "/mobile/v1/uploads/"
OVERRIDABLE = {"PATCH", "DELETE", "HEAD", "GET", "OPTIONS", "POST"}


class MethodOverride:
    """tus: "the Server MUST interpret the value of X-HTTP-Method-Override as the request method"
    (for clients behind proxies that only pass GET and POST). Only for the upload routes."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").strip().upper()
        if method in OVERRIDABLE and environ.get("PATH_INFO", "").startswith(PREFIX):
            environ["enforce.original_method"] = environ.get("REQUEST_METHOD")
            environ["REQUEST_METHOD"] = method
        return self.wsgi_app(environ, start_response)


@blp.record_once
def _install_override(state: Any) -> None:
    app: Flask = state.app
    app.wsgi_app = MethodOverride(app.wsgi_app)  # type: ignore[method-assign]


def _answer(status: int, description: str, *headers: str, request: tuple[str, ...] = ("Tus-Resumable",)) -> Any:
    """Document a tus exchange: the request headers it needs; an answer with no body, the
    protocol in its headers."""
    integer = {"type": "integer", "minimum": 0}
    schemas = {"Tus-Resumable": {"type": "string", "enum": [ops.TUS_VERSION]}, "Upload-Length": integer,
               "Upload-Offset": integer, "Upload-Metadata": {"type": "string"}}
    return blp.doc(parameters=[{"in": "header", "name": name, "required": name != "Upload-Metadata",
                                "schema": schemas[name]} for name in request],
                   responses={str(status): {
                       "description": description,
                       "headers": {name: {"schema": {"type": "string"}} for name in ("Tus-Resumable", *headers)}}})


@blp.before_request
def _tus_version() -> None:
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != ops.TUS_VERSION:
        raise ops.VersionUnsupported(supported=ops.TUS_VERSION)


@blp.after_request
def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = ops.TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = ops.TUS_VERSION
    return response


def _device() -> Any:
    device = devices.get_device(db.session, current_principal().device_id)
    evidence.note_contact(db.session, device)
    return device


def _may_take_over(upload_id: str, allow_expired: bool = False) -> None:
    """Only the upload's own device may ask the lock holder to give way; no transaction while waiting."""
    ops.get_for_device(db.session, upload_id, current_principal().device_id, allow_expired=allow_expired)
    db.session.commit()


def _write(upload_id: str, offset: int) -> tuple[Any, dict[str, str]]:
    """Append the request body under the upload's lock; commit before answering (fsync first)."""
    checksum = ops.parse_checksum(request.headers.get("Upload-Checksum"))
    device_id = current_principal().device_id
    # only its own device may ask a holder to give way (checked only when the lock is taken)
    with ops.locked(upload_id, take_over=lambda: _may_take_over(upload_id)) as fh:
        upload = ops.get_for_device(db.session, upload_id, device_id)
        if upload.upload_offset != offset:
            raise ops.OffsetMismatch(offset=upload.upload_offset)
        remaining = upload.upload_length - upload.upload_offset
        if request.content_length is not None and request.content_length > remaining:
            raise ops.BeyondLength(length=upload.upload_length, offset=upload.upload_offset)  # nothing read, nothing written
        request.max_content_length = upload.upload_length + READ_SIZE  # our own check below is exact
        start, length, state = upload.upload_offset, upload.upload_length, upload.hash_state
        # Hold no transaction (and no pooled connection) while the bytes stream in: after this
        # commit nothing may touch ``upload`` (expired: it would be re-read) until they are in.
        db.session.commit()
        ops.before_write(upload_id, start)
        body = BodyReader(request.environ, request.stream, timeout=current_app.config["UPLOAD_READ_TIMEOUT_S"],
                          should_yield=ops.takeover_requested(upload_id))
        metrics.UPLOADS_RECEIVING.inc()
        try:
            received = receive(fh, start, length, state, body, checksum)
        finally:
            body.close()
            metrics.UPLOADS_RECEIVING.dec()
        metrics.UPLOAD_BYTES.inc(received.offset - received.start)
        ops.acknowledge(db.session, upload, received)
        result = ops.complete(db.session, upload, received.digest, fh) if received.digest else None
        db.session.commit()
        ops.after_commit(upload, fh)
    if isinstance(result, errors.DomainError):
        raise result
    if received.error is not None:
        raise received.error  # what was durably written before it is acknowledged (HEAD shows it)
    return upload, ops.headers(upload)


@blp.route("/uploads/")
class Uploads(MethodView):
    @_answer(204, "Capabilities", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm",
             request=())
    def options(self) -> Any:
        """tus 能力说明 / tus capabilities"""
        return Response(status=204, headers={
            "Tus-Version": ops.TUS_VERSION, "Tus-Extension": ops.EXTENSIONS,
            "Tus-Max-Size": str(current_app.config["UPLOAD_MAX_BYTES"]),
            "Tus-Checksum-Algorithm": ",".join(ops.CHECKSUMS)})

    @_answer(201, "Created", "Location", "Upload-Offset", "Upload-Expires",
             request=("Tus-Resumable", "Upload-Length", "Upload-Metadata"))
    def post(self) -> Any:
        """创建上传（可附带首块数据）；Upload-Metadata 须含 sha256 / Create an upload (optionally with its first bytes); Upload-Metadata must carry sha256"""
        if request.headers.get("Upload-Defer-Length"):
            raise ops.HeaderInvalid("Upload-Defer-Length is not supported; send Upload-Length", header="Upload-Length")
        length = ops.parse_int(request.headers.get("Upload-Length"), "Upload-Length")
        metadata = ops.parse_metadata(request.headers.get("Upload-Metadata"))
        device = _device()
        upload = ops.create(db.session, device=device, length=length, metadata=metadata)
        db.session.commit()
        headers = {"Location": f"{request.path}{upload.id}", **ops.headers(upload)}
        if request.mimetype == OFFSET_STREAM or length == 0:  # creation-with-upload
            upload, more = _write(upload.id, 0)
            headers.update(more)
        return Response(status=201, headers=headers)


@blp.route("/uploads/<upload_id>")
class UploadResource(MethodView):
    @_answer(200, "The acknowledged offset", "Upload-Offset", "Upload-Length", "Upload-Metadata")
    def head(self, upload_id: str) -> Any:
        """已确认的偏移量 / The acknowledged offset"""
        upload = ops.get_for_device(db.session, upload_id, current_principal().device_id, allow_finished=True)
        headers = {**ops.headers(upload), "Cache-Control": "no-store"}
        if upload.upload_metadata:
            headers["Upload-Metadata"] = ",".join(
                f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in upload.upload_metadata.items())
        return Response(status=200, headers=headers)

    @_answer(204, "Appended", "Upload-Offset", "Upload-Expires", request=("Tus-Resumable", "Upload-Offset"))
    def patch(self, upload_id: str) -> Any:
        """在已确认的偏移量处追加数据 / Append bytes at the acknowledged offset"""
        if request.mimetype != OFFSET_STREAM:
            raise errors.UnsupportedMediaType(f"Content-Type must be {OFFSET_STREAM}")
        offset = ops.parse_int(request.headers.get("Upload-Offset"), "Upload-Offset")
        _device()
        _, headers = _write(upload_id, offset)
        return Response(status=204, headers=headers)

    @_answer(204, "Terminated")
    def delete(self, upload_id: str) -> Any:
        """终止上传并删除已收数据 / Terminate the upload and delete its bytes"""
        with ops.locked(upload_id, take_over=lambda: _may_take_over(upload_id, allow_expired=True)):
            upload = ops.get_for_device(db.session, upload_id, current_principal().device_id, allow_expired=True)
            if upload.expires_at <= ops.utcnow():
                ops.expire_one(db.session, upload)  # expired: freed now, not left for the next sweep
            else:
                ops.terminate(db.session, upload)
            db.session.commit()
        return Response(status=204)
