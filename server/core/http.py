"""Request ids, structured logs and the translation of every failure into the error contract."""
from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import Any

import flask_smorest
import marshmallow as ma
import sqlalchemy.exc
from flask import Flask, Request, g, has_request_context, jsonify, request
from pythonjsonlogger.json import JsonFormatter
from webargs import core as webargs_core
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from server.core import errors, inputs, integrity

log = logging.getLogger("server")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_HTTP_CODES: dict[int, type[errors.DomainError]] = {
    400: errors.BadRequest,
    401: errors.AuthRequired,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.TooLarge,
    415: errors.UnsupportedMediaType,
    422: errors.ValidationFailed,
    429: errors.RateLimited,
}


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


def configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if app.config["LOG_JSON"]:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                                           json_ensure_ascii=False))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(_RequestIdFilter())
    for name in ("server", "mobile_api", "sync"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(app.config["LOG_LEVEL"])
        logger.propagate = False


def error_response(error: errors.DomainError) -> Any:
    body = error.as_dict()
    body["request_id"] = request_id()
    response = jsonify(body)
    response.status_code = error.status
    return response


def _from_http_exception(exc: HTTPException) -> errors.DomainError:
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if exc.code == 400 and messages and "Invalid JSON body." in str(messages):
        return errors.MalformedJson()
    cls = _HTTP_CODES.get(exc.code or 500)
    if cls is None:
        return errors.InternalError() if (exc.code or 500) >= 500 else errors.BadRequest(exc.description)
    fields = None
    if isinstance(messages, dict):
        # webargs nests by location ("json", "query"); clients want the field names.
        fields = {}
        for location_errors in messages.values():
            if isinstance(location_errors, dict):
                fields.update(location_errors)
            else:
                fields.setdefault("_schema", []).extend(location_errors)
    return cls(fields=fields or None)


class ErrorSchema(ma.Schema):
    """The error contract, as documented in both OpenAPI documents."""

    status = ma.fields.Integer(metadata={"description": "HTTP status"})
    code = ma.fields.String(metadata={"description": "stable dotted machine code, e.g. auth.invalid_credentials"})
    message_zh = ma.fields.String(metadata={"description": "中文说明"})
    message_en = ma.fields.String(metadata={"description": "English message"})
    detail = ma.fields.String(metadata={"description": "what exactly was wrong"})
    fields = ma.fields.Dict(metadata={"description": "validation errors by field"})
    context = ma.fields.Dict(metadata={"description": "machine-readable details"})
    request_id = ma.fields.String(metadata={"description": "quote this when reporting a problem"})


class ContractApi(flask_smorest.Api):
    """flask-smorest Api whose error handler speaks the error contract."""

    ERROR_SCHEMA = ErrorSchema
    # Each operation lists the statuses it answers (server.openapi), not a blanket "default".
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: HTTPException) -> Any:  # type: ignore[override]
        return handle_http_exception(error)


def handle_http_exception(exc: HTTPException) -> Any:
    if (exc.code or 500) >= 500:
        log.error("http error %s", exc.code, exc_info=exc)
    return error_response(_from_http_exception(exc))


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` limited to what an INTEGER column holds (PostgreSQL binds it as int4): a larger id
    matches no route (404) instead of failing in the driver (500). A BIGINT id in a URL says so:
    ``<int(max=9223372036854775807):idx>``."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = 2**31 - 1, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class _BodyJson:
    """What ``Request.get_json`` parses with: the limits of ``server.core.inputs``."""

    loads = staticmethod(inputs.loads)


class ContractRequest(Request):
    json_module = _BodyJson  # type: ignore[assignment]


def _load_json_body(req: Request, _schema: ma.Schema) -> Any:
    """webargs' ``json`` location (every ``@blp.arguments`` body) parsed by the same function."""
    if not webargs_core.is_json(req.mimetype):
        return webargs_core.missing
    data = req.get_data(cache=True)
    return inputs.loads(data) if data.strip() else webargs_core.missing


def _refuse_bad_text() -> None:
    """NUL in a path, query string or form field is refused before any view runs."""
    inputs.check_text(request.path)
    sources = [request.args, request.form] if request.mimetype in _FORM_TYPES else [request.args]
    for values in sources:
        for key, value in values.items(multi=True):
            inputs.check_text(key)
            inputs.check_text(value)


_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def _rollback() -> None:
    """Leave no half-written transaction behind a failed statement."""
    from server.extensions import db

    try:
        db.session.rollback()
    except sqlalchemy.exc.SQLAlchemyError:
        log.warning("rollback after a failed statement also failed", exc_info=True)


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedIntConverter
    app.request_class = ContractRequest
    flask_smorest.Blueprint.ARGUMENTS_PARSER.location_loader("json")(_load_json_body)
    inputs.install_string_check()

    @app.before_request
    def _assign_request_id() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        _refuse_bad_text()

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if request.method == "OPTIONS" and response.status_code == 200 and not response.content_length:
            response.status_code = 204  # Flask's automatic answer: nothing but the Allow header
        if response.status_code == 204:
            response.headers.pop("Content-Type", None)  # no content, so no type (not Flask's text/html)
        return response

    @app.errorhandler(errors.DomainError)
    def _domain_error(exc: errors.DomainError) -> Any:
        return error_response(exc)

    @app.errorhandler(OverflowError)
    @app.errorhandler(sqlalchemy.exc.DataError)
    def _out_of_range(exc: Exception) -> Any:
        # A number the database cannot store (a 10^30 id in a body or query string) is the
        # client's mistake, not a server fault: the driver refuses it before anything is written.
        log.info("value out of range: %s", exc.__class__.__name__)
        _rollback()
        if "NUL" in str(exc):  # psycopg: "PostgreSQL text fields cannot contain NUL (0x00) bytes"
            return error_response(errors.InvalidText())
        return error_response(errors.ValueOutOfRange())

    @app.errorhandler(sqlalchemy.exc.IntegrityError)
    def _integrity_error(exc: sqlalchemy.exc.IntegrityError) -> Any:
        from server.extensions import db

        _rollback()
        violated = integrity.kind(exc)
        fields = integrity.missing_references(db.session, exc)
        if fields:  # an unknown id given by the client
            log.info("unknown reference: %s", sorted(fields))
            return error_response(errors.ValidationFailed(fields=fields))
        if violated in (integrity.UNIQUE, integrity.FOREIGN_KEY):  # a duplicate, or a row still referenced
            log.warning("integrity conflict (%s)", violated, exc_info=exc)
            return error_response(errors.Conflict())
        if violated == integrity.CHECK:
            log.warning("check constraint refused a value", exc_info=exc)
            return error_response(errors.ValidationFailed("a value breaks a rule of the database"))
        log.exception("integrity error")
        return error_response(errors.InternalError())

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(sqlalchemy.exc.InterfaceError)
    def _database_down(exc: Exception) -> Any:
        log.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
        return error_response(errors.DatabaseUnavailable())

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return handle_http_exception(exc)
        log.exception("unhandled exception")
        return error_response(errors.InternalError())

    app.register_error_handler(HTTPException, handle_http_exception)
