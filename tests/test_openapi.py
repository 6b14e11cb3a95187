"""Two OpenAPI documents (web and device API) with disjoint paths, and Swagger UI served offline."""
from __future__ import annotations

import re

import pytest

DOCS = {"web": "/api/v1", "mobile": "/mobile/v1"}


@pytest.fixture()
def specs(client):
    found = {}
    for name, prefix in DOCS.items():
        response = client.get(f"{prefix}/openapi.json")
        assert response.status_code == 200
        found[name] = response.json
    return found


def test_both_documents_are_openapi_3(specs):
    for name, spec in specs.items():
        assert spec["openapi"].startswith("3."), name
        assert spec["info"]["title"] and spec["info"]["version"] == "v1"
        assert spec["paths"], name
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if method == "parameters":
                    continue
                assert operation.get("responses"), f"{name} {method} {path} documents no response"
                assert operation.get("summary") or operation.get("description"), f"{method} {path} undocumented"
        # Every $ref points at a defined component.
        text = str(spec)
        for ref in set(re.findall(r"#/components/(\w+)/([\w.-]+)", text)):
            assert ref[1] in spec["components"][ref[0]], f"{name}: dangling $ref {ref}"


def test_paths_are_disjoint_and_prefixed(specs):
    web, mobile = set(specs["web"]["paths"]), set(specs["mobile"]["paths"])
    assert all(path.startswith("/api/v1/") for path in web), sorted(p for p in web if not p.startswith("/api/v1/"))
    assert all(path.startswith("/mobile/v1/") for path in mobile)
    assert not web & mobile
    assert "/api/v1/auth/login" in web and "/mobile/v1/devices" in mobile and "/mobile/v1/auth/refresh" in mobile


def test_documents_declare_bearer_auth(specs):
    for spec in specs.values():
        assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_the_documents_match_the_routes(app, specs):
    """Everything routed under a prefix is documented in that prefix's document (and nothing else)."""
    for name, prefix in DOCS.items():
        routed = {re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules()
                  if rule.rule.startswith(prefix + "/") and rule.endpoint.split(".")[-1]
                  not in {"openapi_json", "openapi_swagger_ui"}}
        assert routed == set(specs[name]["paths"]), name


@pytest.mark.parametrize("prefix", DOCS.values())
def test_docs_pages_load_local_swagger_ui_assets(client, prefix):
    page = client.get(f"{prefix}/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert f"{prefix}/openapi.json" in html
    assets = re.findall(r'(?:src|href)="(/static/swagger-ui/[^"]+)"', html)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js",
                                                     "swagger-ui-standalone-preset.js"}
    assert "unpkg.com" not in html and "cdn" not in html.lower()  # works with no internet
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.get_data()) > 1000, asset
        response.close()


def test_missing_swagger_asset_is_404_in_the_contract(client):
    response = client.get("/static/swagger-ui/no-such-file.js")
    assert response.status_code == 404
    assert response.json["code"] == "request.not_found"


# ---- issue 14, item 11: valid documents, real statuses, described sync bodies ----------------

def test_documents_pass_the_openapi_validator(specs):
    """openapi-spec-validator (OpenAPI 3.0 meta-schema and semantic checks): a client generator
    can read both documents (a Decimal's bounds were strings: `"maximum": "1.000"`)."""
    from openapi_spec_validator import OpenAPIV30SpecValidator

    for name, spec in specs.items():
        problems = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in OpenAPIV30SpecValidator(spec).iter_errors()]
        assert not problems, (name, problems)


def _operations(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method != "parameters":
                yield path, method, operation


def test_every_operation_lists_its_statuses_not_a_blanket_default(specs):
    error_refs = set()
    for name, spec in specs.items():
        for path, method, operation in _operations(spec):
            responses = operation["responses"]
            assert "default" not in responses, (name, method, path)
            assert any(code.startswith("2") for code in responses), (name, method, path, sorted(responses))
            for code, response in responses.items():
                if int(code) >= 400:
                    error_refs.add(response["$ref"])
        for ref in error_refs & set(f"#/components/responses/{n}" for n in spec["components"]["responses"]):
            schema = spec["components"]["responses"][ref.rsplit("/", 1)[1]]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, ref  # the one error contract


def test_statuses_follow_policy_arguments_and_method(specs):
    web, mobile = specs["web"]["paths"], specs["mobile"]["paths"]
    create_case = web["/api/v1/cases"]["post"]["responses"]
    assert {"201", "400", "401", "403", "404", "409", "413", "422", "503"} <= set(create_case)
    assert "404" in web["/api/v1/cases/{case_id}"]["get"]["responses"]  # in the path
    assert "404" not in web["/api/v1/cases/workflow"]["get"]["responses"]  # names no record
    assert "409" not in web["/api/v1/cases/workflow"]["get"]["responses"]  # changes nothing
    public = web["/api/v1/public/audit/checkpoint"]["get"]["responses"]
    assert "403" not in public and "200" in public  # anyone may call it
    assert "410" in mobile["/mobile/v1/sync/changes"]["get"]["responses"]  # expired cursor
    assert {"412", "460"} <= set(mobile["/mobile/v1/uploads/{upload_id}"]["patch"]["responses"])


def test_sync_bodies_are_described_as_schemas(specs):
    schemas = specs["mobile"]["components"]["schemas"]
    assert schemas["Push"]["properties"]["ops"]["items"] == {"$ref": "#/components/schemas/Operation"}
    assert set(schemas["Operation"]["required"]) == {"op_id", "seq", "entity", "action", "data"}
    assert schemas["PushResult"]["properties"]["results"]["items"] == {"$ref": "#/components/schemas/OperationResult"}
    assert "rejected" in schemas["OperationResult"]["properties"]["status"]["enum"]
    assert schemas["OperationResult"]["properties"]["error"]["allOf"] == [{"$ref": "#/components/schemas/Error"}]
    assert schemas["PushResult"]["properties"]["device"] == {"$ref": "#/components/schemas/DeviceSequence"}
    assert schemas["PullResult"]["properties"]["changes"]["items"] == {"$ref": "#/components/schemas/Change"}
    assert schemas["Change"]["properties"]["op"]["enum"] == ["upsert", "append", "tombstone"]


def test_tus_options_answers_its_capabilities_without_an_html_type(client, app):
    response = client.options("/mobile/v1/uploads/")
    assert response.status_code == 204
    assert "Content-Type" not in response.headers and response.data == b""
    assert response.headers["Tus-Resumable"] == response.headers["Tus-Version"] == "1.0.0"
    assert "creation" in response.headers["Tus-Extension"].split(",")
    assert int(response.headers["Tus-Max-Size"]) == app.config["UPLOAD_MAX_BYTES"]
    automatic = client.options("/api/v1/cases")  # Flask's own OPTIONS answer
    assert automatic.status_code == 204 and "Content-Type" not in automatic.headers
    assert {"GET", "POST"} <= set(automatic.headers["Allow"].split(", "))
