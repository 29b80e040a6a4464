def test_health(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.get_json()


def test_project_roundtrip(world, project_id):
    r = world.get("auditor", f"/api/v1/projects/{project_id}")
    assert r.status_code == 200
    assert r.get_json()["label_classes"] == ["positive", "negative", "neutral"]
