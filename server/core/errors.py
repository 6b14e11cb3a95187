"""One error contract for every endpoint and every item of a sync batch.

A domain error is an exception class with a stable dotted code, an HTTP status and a message in
Chinese and English. It does not depend on Flask: a sync batch turns one into a per-item result
with ``as_dict()``, a request turns one into a JSON response in ``server.core.http``.
"""
from __future__ import annotations

from typing import Any, ClassVar

CATALOG: dict[str, type["DomainError"]] = {}


class DomainError(Exception):
    code: ClassVar[str] = "server.error"
    status: ClassVar[int] = 400
    message_zh: ClassVar[str] = "请求无法处理"
    message_en: ClassVar[str] = "The request cannot be processed"

    def __init__(self, detail: str | None = None, *, fields: dict[str, Any] | None = None,
                 **context: Any) -> None:
        super().__init__(detail or self.message_en)
        self.detail = detail
        self.fields = fields
        self.context = context

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.fields:
            body["fields"] = self.fields
        if self.context:
            body["context"] = self.context
        return body


def error_code(code: str, status: int, zh: str, en: str) -> type[DomainError]:
    """Declare a domain error; codes are unique, dotted and never change meaning."""
    if code in CATALOG:
        raise ValueError(f"error code {code} declared twice")
    if "." not in code or code != code.lower():
        raise ValueError(f"error code {code!r} must be dotted lower case")
    name = "".join(part.title() for part in code.replace(".", "_").split("_")) + "Error"
    cls = type(name, (DomainError,), {"code": code, "status": status, "message_zh": zh, "message_en": en})
    CATALOG[code] = cls
    return cls


# Request-level errors shared by every endpoint.
BadRequest = error_code("request.bad_request", 400, "请求格式错误", "Malformed request")
MalformedJson = error_code("request.malformed_json", 400, "请求体不是有效的 JSON", "The request body is not valid JSON")
ValidationFailed = error_code("request.validation_failed", 422, "请求参数校验失败", "The request failed validation")
NotFound = error_code("request.not_found", 404, "请求的资源不存在", "The requested resource does not exist")
MethodNotAllowed = error_code("request.method_not_allowed", 405, "不支持该请求方法", "Method not allowed")
TooLarge = error_code("request.too_large", 413, "请求体过大", "The request body is too large")
UnsupportedMediaType = error_code("request.unsupported_media_type", 415, "不支持的内容类型", "Unsupported content type")
InvalidText = error_code("request.invalid_text", 400, "文本含有不允许的字符（NUL 或孤立的 UTF-16 代理项）",
                         "Text contains a character that is not allowed (NUL or a lone UTF-16 surrogate)")
NestedTooDeep = error_code("request.nested_too_deep", 400, "JSON 嵌套层数过多", "The JSON body is nested too deeply")
NumberTooLong = error_code("request.number_too_long", 400, "数字位数过多或超出范围", "A number in the body has too many digits")
ValueOutOfRange = error_code("request.value_out_of_range", 422, "数值超出允许范围", "A number is out of the allowed range")
Conflict = error_code("request.conflict", 409, "与现有数据冲突", "Conflicts with existing data")
RateLimited = error_code("request.rate_limited", 429, "请求过于频繁", "Too many requests")
AuthRequired = error_code("auth.required", 401, "需要登录或有效令牌", "Authentication is required")
Forbidden = error_code("auth.forbidden", 403, "无权执行此操作", "You are not allowed to do this")
InternalError = error_code("server.internal_error", 500, "服务器内部错误，已记录", "Internal server error; it has been logged")
DatabaseUnavailable = error_code("server.database_unavailable", 503, "数据库暂不可用，请稍后重试", "The database is unavailable; retry later")
