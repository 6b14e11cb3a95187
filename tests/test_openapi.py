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
