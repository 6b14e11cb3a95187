def test_healthz_reports_every_dependency(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json
    assert set(response.json["checks"]) == {"database", "broker", "storage"}
    assert all(check["ok"] for check in response.json["checks"].values())
