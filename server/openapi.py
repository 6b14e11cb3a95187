"""What both OpenAPI documents say beyond flask-smorest's defaults, derived in one place.

* **Statuses.** No blanket ``default`` response: each operation lists the statuses it can answer,
  derived from what decides them — the policy table (403 unless public), records named in the
  path, a filter or the body (404), arguments and bodies (400 malformed input, 413, 422), unsafe
  methods (409 state conflicts and duplicates, 422 domain rules), the few blueprints with
  statuses of their own (tus, sync, sign-in), and what any request can meet (401 for a bad
  token, 400 for NUL in a query string, 503 when the database is down). Every error status
  refers to the one error contract. The API fuzzer (``tests/test_api_fuzz.py``) checks every
  answer against this list.
* **Types.** A ``Decimal(as_string=True)`` is a string in JSON (apispec wrote a number whose
  bounds were strings, an invalid document); a ``Raw`` field can name the schema that documents
  it (``metadata={"openapi_schema": Schema}``) when the view checks its items itself.
* **Forms.** flask-smorest writes a form next to a file upload as an OpenAPI 2 ``formData``
  parameter; it belongs in the multipart body.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any

import marshmallow as ma
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin

from server.core.access import PUBLIC

METHODS = {"get", "put", "post", "delete", "options", "head", "patch"}
UNSAFE = {"put", "post", "delete", "patch"}

# Statuses that belong to one blueprint's protocol (by blueprint name, then method or "*").
PROTOCOL_STATUSES: dict[str, dict[str, set[int]]] = {
    # tus 1.0: 410 expired, 412 Tus-Resumable, 413 beyond Upload-Length, 415 PATCH content type,
    # 423 upload locked by another request, 460 checksum mismatch, 507 the upload disk is full
    "mobile_uploads": {"*": {409, 410, 412, 413, 415, 423, 460, 507}},
    # compressed bodies (413 once inflated, 415 unknown Content-Encoding); 410 expired cursor
    "mobile_sync": {"*": {413, 415}, "get": {410}},
    # sign-ins and token refreshes are rate limited (a locked account answers 401, like an unknown name)
    "auth": {"post": {429}},
    "mobile_devices": {"post": {429}},
    # the public API is rate limited per address
    "audit_public": {"*": {429}},
    "disclosure_public": {"*": {429}},
}

CUSTOM_PHRASES = {460: "Checksum Mismatch (tus)"}


class ContractDocs(BasePlugin):
    """apispec plugin; added to both ``Api`` objects in ``create_app``."""

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        for plugin in spec.plugins:
            if isinstance(plugin, MarshmallowPlugin):
                plugin.converter.add_attribute_function(_field_properties)

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            _form_parameters_into_body(operation)
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)
            for status in sorted(statuses(rule.endpoint, set(rule.arguments), method, operation)):
                responses.setdefault(str(status), self._error_response(status))

    def _error_response(self, status: int) -> Any:
        if status in CUSTOM_PHRASES:
            name = f"STATUS_{status}"
            if name not in self.spec.components.responses:
                self.spec.components.response(name, {
                    "description": CUSTOM_PHRASES[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
            return name
        return HTTPStatus(status).name  # flask-smorest registers one (lazily) per status, with the error schema


def statuses(endpoint: str, path_arguments: set[str], method: str, operation: dict[str, Any]) -> set[int]:
    from server import policy

    if method == "options":
        return set()  # answered before authentication, from the route alone

    rules = policy.TABLE.get(endpoint, {})
    roles = rules.get(method.upper(), rules.get("*", frozenset()))
    found = {400, 401, 503}
    if PUBLIC not in roles:
        found.add(403)
    query = any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict))
    if path_arguments or query or "requestBody" in operation:
        found.add(404)  # a record named in the path, a filter or the body does not exist
    if "requestBody" in operation:
        found |= {413, 422}
    if query:
        found.add(422)
    if method in UNSAFE:
        found |= {409, 422}
    protocol = PROTOCOL_STATUSES.get(endpoint.split(".")[0], {})
    found |= protocol.get("*", set()) | protocol.get(method, set())
    success = {int(code) for code in operation.get("responses", {}) if str(code).isdigit() and int(code) < 400}
    return found - success


def _field_properties(_converter: Any, field: ma.fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    if isinstance(field, ma.fields.Decimal) and field.as_string:
        ret.update(type="string", format="decimal", pattern=r"^-?\d+(\.\d+)?$")
        for bound in ("minimum", "maximum"):
            if bound in ret:  # kept for the reader; a string's bounds are checked by the server
                ret[f"x-{bound}"] = float(ret.pop(bound))
        ret.pop("exclusiveMinimum", None)
        ret.pop("exclusiveMaximum", None)
    schema = field.metadata.get("openapi_schema")
    if schema is not None:
        return _converter.resolve_nested_schema(schema)
    return {}


def _form_parameters_into_body(operation: dict[str, Any]) -> None:
    form = [p for p in operation.get("parameters", []) if isinstance(p, dict) and p.get("in") == "formData"]
    if not form:
        return
    operation["parameters"] = [p for p in operation["parameters"] if p not in form]
    extra = {"type": "object", "properties": {
        p["name"]: {**p.get("schema", {}), **({"description": p["description"]} if "description" in p else {})}
        for p in form}}
    required = [p["name"] for p in form if p.get("required")]
    if required:
        extra["required"] = required
    content = operation.setdefault("requestBody", {"required": True, "content": {}}).setdefault("content", {})
    media = content.setdefault("multipart/form-data", {})
    media["schema"] = {"allOf": [media["schema"], extra]} if "schema" in media else extra
