"""Tests of the hello-python HTTP routes, through FastAPI's TestClient."""

import pytest
from fastapi.testclient import TestClient

from app.main import COMMIT_VARIABLE, app


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as test_client:
        yield test_client


def test_root_greets_world(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, world!", "service": "hello-python"}


def test_root_greets_given_name(client):
    response = client.get("/", params={"name": "Aiko"})
    assert response.json()["message"] == "Hello, Aiko!"


def test_healthz_reports_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_version_unknown_from_source(client, monkeypatch):
    monkeypatch.delenv(COMMIT_VARIABLE, raising=False)
    assert client.get("/version").json() == {"service": "hello-python", "commit": "unknown"}


def test_version_reports_build_commit(client, monkeypatch):
    monkeypatch.setenv(COMMIT_VARIABLE, "3f9c2ab1")
    assert client.get("/version").json()["commit"] == "3f9c2ab1"


def test_version_blank_commit_is_unknown(client, monkeypatch):
    monkeypatch.setenv(COMMIT_VARIABLE, "  ")
    assert client.get("/version").json()["commit"] == "unknown"


def test_openapi_describes_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/", "/healthz", "/version"}
